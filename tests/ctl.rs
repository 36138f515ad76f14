//! `cwlite ctl` as `AmazonCloudWatch-ManageAgent` and operators run it: the stock
//! configuration directory rules, validation before anything changes, the status JSON, and a
//! real daemon started, restarted and stopped by it, shipping to the project's fake endpoint.
//! The systemd path runs against a `systemctl` on PATH that records what it was asked.

mod common;

use std::path::Path;

use common::fake_logs::FakeLogs;
use common::host::Host;
use serde_json::json;

fn logs_config(endpoint: &str, files: &[(&Path, &str)]) -> serde_json::Value {
    let collect_list: Vec<serde_json::Value> = files
        .iter()
        .map(|(path, group)| json!({"file_path": path.display().to_string(), "log_group_name": group, "log_stream_name": "s"}))
        .collect();
    json!({
        "agent": {"region": "eu-west-1"},
        "logs": {"endpoint_override": endpoint, "force_flush_interval": 1, "logs_collected": {"files": {"collect_list": collect_list}}}
    })
}

fn messages(fake: &FakeLogs, group: &str) -> Vec<String> {
    fake.events(group, "s")
        .into_iter()
        .map(|e| e.message)
        .collect()
}

/// fetch-config replaces every configuration (the single file too), append-config adds one or
/// replaces its namesake, remove-config deletes one or all; each result shows in `configstatus`.
#[test]
fn configuration_actions_follow_the_stock_directory_rules() {
    let host = Host::new();
    std::fs::write(
        host.etc.join("cwlite.json"),
        r#"{"agent": {"region": "eu-west-1"}}"#,
    )
    .unwrap();
    let status = host.status();
    assert_eq!(status["configstatus"], "configured");

    let a = host.source("a.json", &json!({"agent": {"region": "eu-west-1"}}));
    let out = host.ok(&["-a", "fetch-config", "-m", "onPremise", "-c", &a]);
    assert!(out.contains("Configuration validation succeeded"), "{out}");
    assert!(!host.etc.join("cwlite.json").exists());
    assert_eq!(host.names(), ["file_a.json"]);

    let b = host.source(
        "b.json",
        &json!({"metrics": {"metrics_collected": {"mem": {"measurement": ["mem_used_percent"]}}}}),
    );
    host.ok(&["-a", "append-config", "-c", &b]);
    assert_eq!(host.names(), ["file_a.json", "file_b.json"]);
    // The same name again replaces it rather than merging with it: otherwise the two different
    // measurement lists would both be in force.
    let b2 = host.source(
        "b.json",
        &json!({"metrics": {"metrics_collected": {"disk": {"measurement": ["used_percent"]}}}}),
    );
    host.ok(&["-a", "append-config", "-c", &b2]);
    assert_eq!(host.names(), ["file_a.json", "file_b.json"]);
    let kept: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(host.etc.join("amazon-cloudwatch-agent.d/file_b.json")).unwrap(),
    )
    .unwrap();
    assert!(kept["metrics"]["metrics_collected"].get("disk").is_some());

    host.ok(&["-a", "fetch-config", "-c", "default", "-m", "onPremise"]);
    assert_eq!(host.names(), ["default"]);
    let default: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(host.etc.join("amazon-cloudwatch-agent.d/default")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        default["metrics"]["metrics_collected"]["mem"]["measurement"],
        json!(["mem_used_percent"])
    );
    assert_eq!(
        std::process::Command::new(env!("CARGO_BIN_EXE_cwlite"))
            .args(["validate", "--etc"])
            .arg(&host.etc)
            .env("AWS_REGION", "eu-west-1")
            .output()
            .unwrap()
            .status
            .code(),
        Some(0)
    );

    let error = host.refused(&["-a", "remove-config", "-c", &a]);
    assert!(
        error.contains("file_a.json") && error.contains("does not exist"),
        "{error}"
    );
    assert_eq!(host.names(), ["default"]);
    let out = host.ok(&["-a", "fetch-config", "-c", "all"]);
    assert!(
        out.contains("only supported by action \"remove-config\""),
        "{out}"
    );
    assert_eq!(host.names(), ["default"]);
    let out = host.ok(&["-a", "remove-config", "-c", "all"]);
    assert!(out.contains("have been removed"), "{out}");
    assert!(host.names().is_empty());
    let status = host.status();
    assert_eq!(status["configstatus"], "not configured");
}

/// The status JSON is the stock one: four keys in the stock order, an empty start time when
/// stopped, and exit 0 either way.
#[test]
fn status_prints_the_stock_json() {
    let host = Host::new();
    let text = host.ok(&["-a", "status"]);
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"')?.split('"').next())
        .collect();
    assert_eq!(keys, ["status", "starttime", "configstatus", "version"]);
    assert!(
        text.starts_with("{\n  \"status\": \"stopped\",\n  \"starttime\": \"\",\n"),
        "{text}"
    );
    let status: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
}

/// The stock command line's mistakes are refused on one line naming the value, and nothing is
/// written.
#[test]
fn bad_command_lines_are_refused_on_one_line() {
    let host = Host::new();
    for (args, named) in [
        (&["-a", "reload"][..], "\"reload\""),
        (&["-a", "fetch-config", "-m", "cloud"][..], "\"cloud\""),
        (&["-a", "fetch-config", "-c", "s3:x"][..], "\"s3:x\""),
        (&["-a", "set-log-level", "-l", "TRACE"][..], "\"TRACE\""),
        (
            &["-a", "fetch-config", "-c", "file:/tmp/cw.tmp"][..],
            "file_cw.tmp",
        ),
        (
            &["-a", "fetch-config", "-c", "file:/nonexistent/x.json"][..],
            "file:/nonexistent/x.json",
        ),
    ] {
        let error = host.refused(args);
        assert!(error.contains(named), "{args:?}: {error}");
    }
    assert!(host.names().is_empty());
    assert!(!host.etc.join("env-config.json").exists());
}

/// The whole lifecycle without systemd: fetch-config -s starts a daemon that ships; a broken
/// configuration is refused while it keeps running, untouched; append-config -s restarts it
/// with both; set-log-level reaches it; stop stops it.
#[test]
fn the_ctl_starts_restarts_and_stops_a_daemon_and_refuses_a_broken_configuration() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let host = Host::new();
    let first_log = host.dir.path().join("first.log");
    let second_log = host.dir.path().join("second.log");
    common::append(&first_log, "one\n");
    common::append(&second_log, "two\n");
    let first = host.source(
        "app.json",
        &logs_config(&fake.url(), &[(&first_log, "first")]),
    );
    host.ok(&["-c", &first, "-s", "-a", "fetch-config", "-m", "onPremise"]);
    let status = host.status();
    assert_eq!(status["status"], "running");
    assert_eq!(status["configstatus"], "configured");
    assert_eq!(
        status["starttime"].as_str().unwrap().len(),
        "2026-12-05T01:45:30+00:00".len()
    );
    common::eventually("the first file's line", || {
        (messages(&fake, "first") == ["one"]).then_some(())
    });
    let pid = host.pid();

    // Broken: a region of the wrong type, merged with what is there.
    let broken = host.source("broken.json", &json!({"agent": {"region": 5}}));
    let error = host.refused(&["-c", &broken, "-s", "-a", "append-config"]);
    assert!(
        error.contains(&broken) && error.contains("agent.region"),
        "{error}"
    );
    assert_eq!(host.names(), ["file_app.json"]);
    assert_eq!(host.pid(), pid);
    assert_eq!(host.status()["status"], "running");

    // Appended under another name and restarted: both files ship, from a new process.
    let second = host.source(
        "more.json",
        &logs_config(&fake.url(), &[(&second_log, "second")]),
    );
    host.ok(&["-a", "append-config", "-c", &second, "-s"]);
    assert_ne!(host.pid(), pid);
    assert_eq!(host.names(), ["file_app.json", "file_more.json"]);
    common::eventually("the second file's line", || {
        (messages(&fake, "second") == ["two"]).then_some(())
    });
    common::append(&first_log, "three\n");
    common::eventually("the first file's next line, once", || {
        (messages(&fake, "first") == ["one", "three"]).then_some(())
    });

    let out = host.ok(&["-a", "set-log-level", "-l", "DEBUG"]);
    assert!(out.contains("Set CWAGENT_LOG_LEVEL to DEBUG"), "{out}");
    // Readable by the service's own user, whatever the ctl's umask.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(host.etc.join("env-config.json"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o644);
    common::eventually("the daemon at debug level", || {
        host.log().contains("log level set to DEBUG").then_some(())
    });

    host.ok(&["-a", "stop"]);
    let status = host.status();
    assert_eq!(status["status"], "stopped");
    assert_eq!(status["starttime"], "");
    assert!(host.log().contains("stopped"));
    let out = host.ok(&["-a", "stop"]);
    assert!(out.contains("already been stopped"), "{out}");
}

/// A daemon that cannot start (its credentials file is gone) makes `start` fail with the
/// daemon's own reason, and no pid file is left behind.
#[test]
fn a_daemon_that_fails_to_start_is_reported_with_its_reason() {
    let host = Host::new();
    let config = host.source("app.json", &json!({"agent": {"region": "eu-west-1"}, "metrics": {"endpoint_override": "http://127.0.0.1:9", "metrics_collected": {"mem": {"measurement": ["mem_used_percent"]}}}}));
    host.ok(&["-a", "fetch-config", "-c", &config]);
    std::fs::remove_file(host.dir.path().join("credentials")).unwrap();
    let error = host.refused(&["-a", "start"]);
    assert!(
        error.contains("while starting") && error.contains("credentials"),
        "{error}"
    );
    assert!(!host.state.join("ctl.pid").exists());
    assert_eq!(host.status()["status"], "stopped");
}

/// Makes `host` a systemd host whose `systemctl` is a script: it records each call in the
/// returned file, and is active from a restart to a stop, with this test's own pid as MainPID
/// (so that the start time is a real one).
fn fake_systemd(host: &mut Host) -> std::path::PathBuf {
    let bin = host.dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let calls = host.dir.path().join("calls");
    let active = host.dir.path().join("active");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> {calls}\ncase \"$1\" in\n  is-active) [ -e {active} ]; exit $? ;;\n  show) echo {pid} ;;\n  restart) touch {active} ;;\n  stop) rm -f {active} ;;\nesac\nexit 0\n",
        calls = calls.display(),
        active = active.display(),
        pid = std::process::id()
    );
    let systemctl = bin.join("systemctl");
    std::fs::write(&systemctl, script).unwrap();
    std::fs::set_permissions(
        &systemctl,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    host.init = "systemd";
    host.path = Some(format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap()
    ));
    calls
}

/// Under systemd the ctl goes through systemctl, in the stock order: a configuration action
/// with -s stops, then enables and restarts the unit; status asks is-active and MainPID.
/// `start` with nothing configured applies the stock default first.
#[test]
fn under_systemd_the_ctl_drives_the_unit_through_systemctl() {
    let mut host = Host::new();
    let calls = fake_systemd(&mut host);
    std::fs::write(host.etc.join("credentials"), "").unwrap();

    let out = host.ok(&["-a", "start", "-m", "onPremise"]);
    assert!(out.contains("not configured"), "{out}");
    assert_eq!(host.names(), ["default"]);
    let config = host.source("x.json", &json!({"agent": {"region": "eu-west-1"}}));
    host.ok(&["-c", &config, "-s", "-a", "fetch-config", "-m", "onPremise"]);
    let status = host.status();
    assert_eq!(status["status"], "running");
    assert!(!status["starttime"].as_str().unwrap().is_empty());
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "is-active --quiet cwlite.service\nenable cwlite.service\nrestart cwlite.service\n\
         stop cwlite.service\nenable cwlite.service\nrestart cwlite.service\n\
         is-active --quiet cwlite.service\nshow --property=MainPID --value cwlite.service\n"
    );
    // The unit loads <etc>/credentials: without it the start is refused before systemctl.
    std::fs::remove_file(host.etc.join("credentials")).unwrap();
    host.ok(&["-a", "stop"]);
    let error = host.refused(&["-a", "start"]);
    assert!(error.contains("credentials"), "{error}");
    let out = host.ok(&["-a", "status"]);
    assert!(out.contains("\"stopped\""), "{out}");
}

/// The stock package scripts' helpers: `prep-restart` leaves the marker only when the daemon
/// runs, `cond-restart` restarts it only when the marker is there, then removes the marker.
#[test]
fn an_upgrade_restarts_the_daemon_only_if_it_ran() {
    let mut host = Host::new();
    let calls = fake_systemd(&mut host);
    std::fs::write(host.etc.join("credentials"), "").unwrap();
    let marker = host.etc.join("restart");
    let config = host.source("x.json", &json!({"agent": {"region": "eu-west-1"}}));
    host.ok(&["-a", "fetch-config", "-c", &config]);

    host.ok(&["-a", "prep-restart"]);
    assert!(!marker.exists(), "stopped: nothing to restart");
    host.ok(&["-a", "cond-restart"]);
    assert_eq!(host.status()["status"], "stopped");

    host.ok(&["-a", "start"]);
    host.ok(&["-a", "prep-restart"]);
    assert!(marker.exists());
    std::fs::write(&calls, "").unwrap();
    host.ok(&["-a", "cond-restart"]);
    assert!(!marker.exists());
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "stop cwlite.service\nenable cwlite.service\nrestart cwlite.service\n"
    );
    // A start that cannot happen keeps the marker, for the retry.
    host.ok(&["-a", "prep-restart"]);
    std::fs::remove_file(host.etc.join("credentials")).unwrap();
    let error = host.refused(&["-a", "cond-restart"]);
    assert!(error.contains("credentials"), "{error}");
    assert!(marker.exists());
}

/// The stock path's wrapper passes the ManageAgent document's option order through unchanged.
#[test]
fn the_stock_ctl_wrapper_takes_the_manage_agent_command_line() {
    let host = Host::new();
    let config = host.source("cw.json", &json!({"agent": {"region": "eu-west-1"}}));
    let wrapper =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/stock/amazon-cloudwatch-agent-ctl");
    let out = host
        .command(
            &wrapper,
            &["-c", &config, "-a", "fetch-config", "-m", "onPremise"],
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(host.names(), ["file_cw.json"]);
    let out = host
        .command(&wrapper, &["-a", "status", "-m", "ec2"])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["configstatus"], "configured");
}
