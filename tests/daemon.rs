//! The daemon's lifecycle as systemd and operators see it, with the real binary as a child
//! process and the project's fake CloudWatch Logs endpoint: a drain on SIGTERM, SIGHUP with a
//! broken and with a changed configuration, the `sd_notify` messages on a test NOTIFY_SOCKET,
//! and `cwlite status` against what the endpoint received.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use common::fake_logs::FakeLogs;
use common::{Daemon, append};
use serde_json::json;

fn config(endpoint: &str, files: &[(&Path, &str)], flush_secs: u64) -> serde_json::Value {
    let collect_list: Vec<serde_json::Value> = files
        .iter()
        .map(|(path, group)| json!({"file_path": path.display().to_string(), "log_group_name": group, "log_stream_name": "stream"}))
        .collect();
    json!({
        "agent": {"region": "us-east-1"},
        "logs": {"endpoint_override": endpoint, "force_flush_interval": flush_secs, "logs_collected": {"files": {"collect_list": collect_list}}}
    })
}

fn messages(fake: &FakeLogs, group: &str) -> Vec<String> {
    fake.events(group, "stream")
        .into_iter()
        .map(|e| e.message)
        .collect()
}

fn numbered(prefix: &str, from: usize, to: usize) -> Vec<String> {
    (from..to)
        .map(|i| format!("2026-11-27 {prefix} {i:04}"))
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    append(path, &format!("{}\n", lines.join("\n")));
}

fn status_json(state: &Path) -> (serde_json::Value, Option<i32>) {
    let out = common::cwlite()
        .args(["status", "--json", "--state-dir"])
        .arg(state)
        .output()
        .unwrap();
    let value = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (value, out.status.code())
}

fn kill(daemon: &Daemon, signal: &str) {
    assert!(
        std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(daemon.child.id().to_string())
            .status()
            .unwrap()
            .success()
    );
}

/// Lines the tailer has read sit in an open batch (the flush interval is long); SIGTERM must
/// send them before the process exits, and exit 0.
#[test]
fn sigterm_drains_what_was_read_before_exiting() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let state = dir.path().join("state");
    write_lines(&log, &numbered("drain", 0, 100));
    let daemon = common::start_daemon(
        dir.path(),
        &state,
        &config(&fake.url(), &[(&log, "drain")], 600),
        "AKIDFAKE",
    );
    common::eventually("the tailer has read every line", || {
        let (status, _) = status_json(&state);
        (status["logs"]["events_read"].as_u64() == Some(100)).then_some(())
    });
    assert!(
        messages(&fake, "drain").is_empty(),
        "nothing sent yet: the batch waits for its flush interval"
    );
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert_eq!(messages(&fake, "drain"), numbered("drain", 0, 100));
    let (report, code) = status_json(&state);
    assert_eq!(code, Some(3), "not running any more");
    assert_eq!(report["running"], false);
    assert_eq!(report["logs"]["events_shipped"], 100);
}

/// A configuration broken on disk: SIGHUP logs why and the running one keeps shipping.
#[test]
fn sighup_with_a_broken_configuration_keeps_the_running_one() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    write_lines(&log, &numbered("before", 0, 3));
    let mut daemon = common::start_daemon(
        dir.path(),
        &dir.path().join("state"),
        &config(&fake.url(), &[(&log, "broken")], 1),
        "AKIDFAKE",
    );
    common::eventually("the first lines", || {
        (messages(&fake, "broken").len() == 3).then_some(())
    });
    std::fs::write(dir.path().join("config.json"), "{\"agent\": {").unwrap();
    kill(&daemon, "HUP");
    daemon.wait_stderr("reload refused: the configuration is invalid");
    write_lines(&log, &numbered("after", 0, 3));
    let got = common::eventually("the lines written after the failed reload", || {
        let got = messages(&fake, "broken");
        (got.len() >= 6).then_some(got)
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    let mut expected = numbered("before", 0, 3);
    expected.extend(numbered("after", 0, 3));
    assert_eq!(got, expected);
}

/// A changed configuration takes effect on SIGHUP; the file tailed before and after keeps its
/// checkpoint, so nothing of it is sent twice.
#[test]
fn sighup_with_a_changed_configuration_takes_effect_without_resending() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join("kept.log");
    let added = dir.path().join("added.log");
    write_lines(&kept, &numbered("kept", 0, 5));
    write_lines(&added, &numbered("added", 0, 2));
    let mut daemon = common::start_daemon(
        dir.path(),
        &dir.path().join("state"),
        &config(&fake.url(), &[(&kept, "kept")], 1),
        "AKIDFAKE",
    );
    common::eventually("the kept file's lines", || {
        (messages(&fake, "kept").len() == 5).then_some(())
    });
    common::write_json(
        dir.path(),
        "config.json",
        &config(&fake.url(), &[(&kept, "kept"), (&added, "added")], 1),
    );
    kill(&daemon, "HUP");
    daemon.wait_stderr("reloaded: the new configuration runs");
    write_lines(&kept, &numbered("kept", 5, 7));
    let added_got = common::eventually("the added file's lines", || {
        let got = messages(&fake, "added");
        (got.len() >= 2).then_some(got)
    });
    let kept_got = common::eventually("the kept file's new lines", || {
        let got = messages(&fake, "kept");
        (got.len() >= 7).then_some(got)
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert_eq!(added_got, numbered("added", 0, 2));
    assert_eq!(kept_got, numbered("kept", 0, 7), "nothing sent twice");
}

/// What systemd hears on NOTIFY_SOCKET: READY=1 with a STATUS= line, WATCHDOG=1 at least twice
/// per watchdog timeout, RELOADING=1 (with MONOTONIC_USEC) and READY=1 again around a reload,
/// and STOPPING=1 on SIGTERM.
#[test]
fn sd_notify_messages_reach_the_notify_socket() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    write_lines(&log, &numbered("notify", 0, 1));
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(common::DEADLINE)).unwrap();
    let watchdog = Duration::from_secs(4);
    let mut daemon = Daemon::spawn(
        common::run_command(
            dir.path(),
            &dir.path().join("state"),
            &config(&fake.url(), &[(&log, "notify")], 1),
            "AKIDFAKE",
            "secret",
        )
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", watchdog.as_micros().to_string()),
    );
    let mut buffer = [0u8; 4096];
    let mut next = || {
        let n = socket
            .recv(&mut buffer)
            .expect("a notification before the deadline");
        (
            Instant::now(),
            String::from_utf8_lossy(&buffer[..n]).into_owned(),
        )
    };
    let (_, ready) = next();
    assert!(ready.contains("READY=1"), "{ready:?}");
    assert!(
        ready.contains("STATUS=") && ready.contains(" files tailed, "),
        "{ready:?}"
    );
    let mut pings = Vec::new();
    while pings.len() < 3 {
        let (at, message) = next();
        if message.contains("WATCHDOG=1") {
            assert!(message.contains("STATUS="), "{message:?}");
            pings.push(at);
        }
    }
    for pair in pings.windows(2) {
        assert!(
            pair[1] - pair[0] < watchdog,
            "pings {:?} apart with a {watchdog:?} watchdog",
            pair[1] - pair[0]
        );
    }
    kill(&daemon, "HUP");
    let reloading = loop {
        let (_, message) = next();
        if message.contains("RELOADING=1") {
            break message;
        }
    };
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading:?}");
    loop {
        let (_, message) = next();
        if message.contains("READY=1") {
            break;
        }
    }
    daemon.wait_stderr("reloaded");
    kill(&daemon, "TERM");
    loop {
        let (_, message) = next();
        if message.contains("STOPPING=1") {
            break;
        }
    }
    let status = daemon.child.wait().unwrap();
    assert!(status.success());
}

/// `cwlite status` shows what the endpoint actually received, and the delivery position of
/// each file.
#[test]
fn status_counters_match_what_the_endpoint_received() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let state = dir.path().join("state");
    write_lines(&log, &numbered("status", 0, 250));
    let daemon = common::start_daemon(
        dir.path(),
        &state,
        &config(&fake.url(), &[(&log, "status")], 1),
        "AKIDFAKE",
    );
    common::eventually("every line delivered", || {
        (messages(&fake, "status").len() == 250).then_some(())
    });
    let size = std::fs::metadata(&log).unwrap().len();
    let report = common::eventually("the status file catching up", || {
        let (report, code) = status_json(&state);
        let files = report["logs"]["files"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (code == Some(0)
            && report["logs"]["events_shipped"] == 250
            && files.first().is_some_and(|f| f["delivered"] == size))
        .then_some(report)
    });
    assert_eq!(report["running"], true);
    assert_eq!(report["logs"]["lines_read"], 250);
    assert_eq!(report["logs"]["files_tailed"], 1);
    assert_eq!(report["logs"]["files"][0]["lag_bytes"], 0);
    assert_eq!(report["logs"]["retries"], 0);
    let human = common::cwlite()
        .args(["status", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(human.status.success());
    assert!(text.contains("shipped            250 events"), "{text}");
    assert!(
        text.contains(&format!("app.log: delivered to {size}, 0 bytes behind")),
        "{text}"
    );
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
}

/// The recommended way to hand credentials to the service: systemd's `LoadCredential=`. The
/// file it passes in `$CREDENTIALS_DIRECTORY` signs the requests, not the file common-config
/// names.
#[test]
fn a_systemd_credential_signs_the_requests() {
    let endpoint = common::emulator_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let from_systemd = common::unique("AKIDSYSTEMD");
    let credentials_dir = dir.path().join("systemd-credentials");
    std::fs::create_dir(&credentials_dir).unwrap();
    std::fs::write(
        credentials_dir.join("aws-credentials"),
        format!(
            "[AmazonCloudWatchAgent]\naws_access_key_id = {from_systemd}\naws_secret_access_key = secret\n"
        ),
    )
    .unwrap();
    let config = json!({
            "agent": {"region": "us-east-1", "metrics_collection_interval": 1},
            "metrics": {
                "namespace": common::unique("CWLiteCredential"),
                "endpoint_override": endpoint,
                "force_flush_interval": 1,
                "metrics_collected": {"mem": {"measurement": ["mem_used_percent"]}}
            }
    });
    // The file common-config names holds other keys: they must not be the ones used.
    let mut daemon = Daemon::spawn(
        common::run_command(
            dir.path(),
            &dir.path().join("state"),
            &config,
            "AKIDNOTTHISONE",
            "secret",
        )
        .env("CREDENTIALS_DIRECTORY", &credentials_dir),
    );
    daemon.wait_stderr("started");
    common::eventually("a request signed with the systemd credential", || {
        common::access_keys_seen()
            .iter()
            .any(|(_, key)| *key == from_systemd)
            .then_some(())
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("is not read: systemd passes the credential aws-credentials")),
        "{stderr:?}"
    );
}

/// `agent.run_as_user` when started as root: the process gives up root for that user and the
/// state directory is handed to it. Started as another user, the setting is ignored with a
/// warning.
#[test]
fn run_as_user_gives_up_root() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    // The user must be able to reach its state directory and read the credentials.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.path().join("app.log");
    write_lines(&log, &numbered("user", 0, 2));
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    let state = dir.path().join("state");
    let mut settings = config(&fake.url(), &[(&log, "user")], 1);
    settings["agent"]["run_as_user"] = json!("nobody");
    let credentials = common::write_credentials(
        dir.path(),
        &[("AmazonCloudWatchAgent", "AKIDUSER", "secret")],
    );
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o644)).unwrap();
    let common_config =
        common::write_common_config(dir.path(), &credentials, "AmazonCloudWatchAgent", "");
    std::fs::set_permissions(&common_config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config_file = common::write_json(dir.path(), "config.json", &settings);
    let mut daemon = Daemon::spawn(
        common::cwlite()
            .arg("run")
            .arg("--config")
            .arg(&config_file)
            .arg("--common-config")
            .arg(&common_config)
            .arg("--state-dir")
            .arg(&state),
    );
    daemon.wait_stderr("started");
    let root = nix_uid() == 0;
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.child.id())).unwrap();
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_owned();
    common::eventually("the lines, shipped as that user", || {
        (messages(&fake, "user").len() == 2).then_some(())
    });
    let (exit, stderr) = daemon.stop("TERM");
    assert!(exit.success(), "{stderr:?}");
    if root {
        assert_eq!(
            uid_line.split_whitespace().nth(1),
            Some("65534"),
            "{uid_line}"
        );
        assert_eq!(std::fs::metadata(&state).unwrap().uid(), 65534);
        assert!(
            stderr
                .iter()
                .any(|l| l.contains("running as agent.run_as_user"))
        );
    } else {
        assert!(
            stderr
                .iter()
                .any(|l| l.contains("agent.run_as_user is ignored: cwlite was not started as root")),
            "{stderr:?}"
        );
    }
}

fn nix_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap()
        .parse()
        .unwrap()
}

/// `--self-metrics`: cwlite's own health goes out with the host metrics, with their `host`
/// dimension, so a fleet can alarm on `cwlite_up` going missing.
#[test]
fn self_metrics_are_published_with_the_host_metrics() {
    let endpoint = common::emulator_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let namespace = common::unique("CWLiteSelf");
    let config = json!({
        "agent": {"region": "us-east-1", "metrics_collection_interval": 1, "hostname": "edge-7"},
        "metrics": {
            "namespace": namespace,
            "endpoint_override": endpoint,
            "force_flush_interval": 1,
            "metrics_collected": {"mem": {"measurement": ["mem_used_percent"]}}
        }
    });
    let mut daemon = Daemon::spawn(
        common::run_command(
            dir.path(),
            &dir.path().join("state"),
            &config,
            "AKIDSELF",
            "secret",
        )
        .arg("--self-metrics"),
    );
    daemon.wait_stderr("started");
    let up = common::eventually("cwlite_up in the namespace", || {
        common::metric_data(&namespace)
            .into_iter()
            .find(|d| d["MetricName"] == "cwlite_up")
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert_eq!(up["Value"], 1.0);
    assert_eq!(
        up["Dimensions"],
        json!([{"Name": "host", "Value": "edge-7"}])
    );
    let names: Vec<String> = common::metric_data(&namespace)
        .iter()
        .filter_map(|d| d["MetricName"].as_str().map(str::to_owned))
        .collect();
    for name in [
        "mem_used_percent",
        "cwlite_log_backlog_bytes",
        "cwlite_retries",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
}

/// Under systemd (JOURNAL_STREAM set) each line carries its syslog priority for the journal and
/// no timestamp of its own.
#[test]
fn log_lines_carry_their_priority_for_the_journal() {
    let mut daemon = Daemon::spawn(
        common::cwlite()
            .args(["run", "--dry-run", "--config", "config/demo.json"])
            .env("JOURNAL_STREAM", "8:12345")
            .env_remove("RUST_LOG"),
    );
    let started = daemon.wait_stderr("started");
    assert_eq!(started, "<6> INFO started");
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert!(
        stderr.iter().all(|l| l.starts_with('<')),
        "every line prefixed: {stderr:?}"
    );
}

/// The secret key never shows: not at debug level (cwlite's and the SDK's), not in validate's
/// effective configuration, not in `status`, not on reload.
#[test]
fn the_secret_key_never_appears_in_any_output() {
    const SECRET: &str = "wJalrXUtnFEMIK7MDENGbPxRfiCYSECRETKEY1";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    write_lines(&log, &numbered("secret", 0, 3));
    let state = dir.path().join("state");
    let mut daemon = Daemon::spawn(
        common::run_command(
            dir.path(),
            &state,
            &config(&fake.url(), &[(&log, "secret")], 1),
            "AKIDSECRETTEST",
            SECRET,
        )
        .env("RUST_LOG", "debug"),
    );
    let (config_file, common_config) = (
        dir.path().join("config.json"),
        dir.path().join("common-config.toml"),
    );
    daemon.wait_stderr("started");
    common::eventually("the lines", || {
        (messages(&fake, "secret").len() == 3).then_some(())
    });
    kill(&daemon, "HUP");
    daemon.wait_stderr("reloaded");
    let status = common::cwlite()
        .args(["status", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let validate = common::cwlite()
        .arg("validate")
        .arg(&config_file)
        .arg("--common-config")
        .arg(&common_config)
        .output()
        .unwrap();
    let (exit, stderr) = daemon.stop("TERM");
    assert!(exit.success());
    let mut everything = stderr.join("\n");
    everything.push_str(&daemon_stdout(&status));
    everything.push_str(&daemon_stdout(&validate));
    assert!(
        stderr.iter().any(|l| l.contains("DEBUG")),
        "debug logging was on"
    );
    assert!(!everything.contains(SECRET), "the secret leaked");
    assert!(
        !everything.contains(&SECRET[..16]),
        "part of the secret leaked"
    );
}

fn daemon_stdout(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
