//! The `cwlite` binary as an operator uses it: `validate`, `run --dry-run`, `run`, `--version`,
//! exit codes, and what it prints (never a secret).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::json;

const SECRET: &str = "wJalrXUtnFEMIK7MDENGbPxRfiCYSECRETKEY";

fn cwlite() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cwlite"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

fn output(command: &mut Command) -> (Output, String, String) {
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

#[test]
fn validate_prints_the_effective_seed_configuration() {
    let (out, stdout, stderr) = output(cwlite().args(["validate", "config/cwlite.json"]));
    assert!(out.status.success(), "{stderr}");
    let effective: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(effective["metrics"]["namespace"], "CWAgent");
    assert_eq!(effective["metrics"]["force_flush_interval_secs"], 60);
    assert_eq!(
        effective["metrics"]["plugins"][0]["measurements"][0]["metric_name"],
        "cpu_usage_idle"
    );
    assert_eq!(
        effective["metrics"]["plugins"][0]["measurements"][0]["unit"],
        "Percent"
    );
    assert_eq!(
        effective["logs"]["files"][0]["log_group_name"]["named"],
        "syslog"
    );
    assert_eq!(
        effective["logs"]["files"][0]["multi_line_start"]["pattern"],
        r"^[\S]"
    );
    assert_eq!(effective["logs"]["force_flush_interval_secs"], 5);
    let stream = effective["logs"]["files"][0]["log_stream_name"]
        .as_str()
        .unwrap();
    assert!(
        !stream.is_empty() && !stream.contains('{'),
        "placeholder resolved: {stream}"
    );
}

#[test]
fn validate_accepts_the_stock_config_directory_layout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("amazon-cloudwatch-agent.d");
    std::fs::create_dir(&d).unwrap();
    common::write_json(
        &d,
        "file_metrics.json",
        &json!({"metrics": {"metrics_collected": {"mem": {"measurement": ["mem_used_percent"]}}}}),
    );
    common::write_json(&d, "default", &json!({"agent": {"region": "eu-west-1"}}));
    let (out, stdout, stderr) = output(cwlite().arg("validate").arg("--config").arg(&d));
    assert!(out.status.success(), "{stderr}");
    let effective: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(effective["region"]["name"], "eu-west-1");
    assert_eq!(effective["sources"].as_array().unwrap().len(), 2);
}

#[test]
fn validate_reports_every_error_with_its_place_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_json(
        dir.path(),
        "bad.json",
        &json!({
            "metrics": {"metrics_collected": {"cpu": {"measurement": ["usage_idle", "usage_user", "usage_foo"]}}},
            "logs": {"logs_collected": {"files": {"collect_list": [{"file_path": "/var/log/a", "retention_in_days": 8}]}}}
        }),
    );
    let (out, _, stderr) = output(cwlite().arg("validate").arg(&config));
    assert_eq!(out.status.code(), Some(1));
    let shown = config.display();
    assert!(stderr.contains(&format!("error: {shown}: metrics.metrics_collected.cpu.measurement[2]: unknown measurement \"usage_foo\" for cpu")), "{stderr}");
    assert!(stderr.contains(&format!("error: {shown}: logs.logs_collected.files.collect_list[0].retention_in_days: 8 is not an allowed retention")), "{stderr}");
    assert!(stderr.contains("2 error(s)"), "{stderr}");
}

/// The stock agent's journald and EMF configurations (its translator's sample shapes), and
/// their mistakes, through the command an operator runs.
#[test]
fn validate_takes_the_stock_journald_and_emf_configurations_and_names_their_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let good = common::write_json(
        dir.path(),
        "journald.json",
        &json!({"logs": {
            "logs_collected": {"journald": {"collect_list": [
                {"log_group_name": "journald-units", "units": ["sshd.service", "cron"], "priority": "warning"},
                {"log_group_name": "journald-matches", "matches": [{"_UID": "0"}, {"_TRANSPORT": "kernel"}]},
                {"log_group_name": "journald-filters", "filters": [{"type": "exclude", "expression": "DEBUG"}]}
            ]}},
            "metrics_collected": {"emf": {}}
        }}),
    );
    let (out, stdout, stderr) = output(cwlite().arg("validate").arg(&good));
    assert!(out.status.success(), "{stderr}");
    let effective: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let journald = &effective["logs"]["journald"];
    assert_eq!(journald[0]["units"], json!(["sshd.service", "cron"]));
    assert_eq!(journald[1]["priority"], "info");
    assert_eq!(
        journald[1]["matches"],
        json!([[["_UID", "0"]], [["_TRANSPORT", "kernel"]]])
    );
    assert_eq!(effective["logs"]["emf"]["tcp"], "127.0.0.1:25888");
    assert_eq!(effective["logs"]["emf"]["udp"], "127.0.0.1:25888");

    let bad = common::write_json(
        dir.path(),
        "bad-journald.json",
        &json!({"logs": {
            "logs_collected": {"journald": {"collect_list": [
                {"units": ["sshd"]},
                {"log_group_name": "g", "priority": "verbose", "matches": [{"_uid": "0"}]}
            ]}},
            "metrics_collected": {"emf": {"service_address": "udp:25888"}}
        }}),
    );
    let (out, _, stderr) = output(cwlite().arg("validate").arg(&bad));
    assert_eq!(out.status.code(), Some(1));
    let at = format!(
        "{}: logs.logs_collected.journald.collect_list",
        bad.display()
    );
    for wanted in [
        format!("error: {at}[0].log_group_name: required"),
        format!("error: {at}[1].priority: \"verbose\" is not a priority"),
        format!("error: {at}[1].matches[0]._uid: \"_uid\" is not a journal field name"),
        format!(
            "error: {}: logs.metrics_collected.emf.service_address: \"udp:25888\" is not",
            bad.display()
        ),
    ] {
        assert!(stderr.contains(&wanted), "no {wanted:?} in {stderr}");
    }
    assert!(stderr.contains("4 error(s)"), "{stderr}");
}

#[test]
fn malformed_json_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.json");
    std::fs::write(&path, "{\n  \"agent\": {\n    \"debug\": tru\n  }\n}\n").unwrap();
    let (out, _, stderr) = output(cwlite().arg("validate").arg(&path));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains(&format!("{}:3:17: invalid json", path.display())),
        "{stderr}"
    );
}

#[test]
fn unsupported_keys_are_warnings_that_say_what_cwlite_does() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_json(
        dir.path(),
        "c.json",
        &json!({
            "agent": {"region": "eu-west-1"},
            "metrics": {"metrics_collected": {"ethtool": {"interface_include": ["eth0"]}, "mem": {"measurement": ["used_percent"]}}},
            "traces": {"traces_collected": {}}
        }),
    );
    let (out, _, stderr) = output(cwlite().arg("validate").arg(&config));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("warning: ") && stderr.contains("metrics.metrics_collected.ethtool: ignored: cwlite does not support the ethtool plugin; ethtool metrics are not collected"), "{stderr}");
    assert!(
        stderr.contains("traces: ignored: cwlite does not collect traces"),
        "{stderr}"
    );
}

#[test]
fn version_is_printed() {
    let (out, stdout, _) = output(cwlite().arg("--version"));
    assert!(out.status.success());
    assert_eq!(
        stdout.trim(),
        format!("cwlite {}", env!("CARGO_PKG_VERSION"))
    );
}

/// The README's first command: a dry run of config/demo.json prints PutMetricData requests and
/// needs no AWS account; nothing is written.
#[test]
fn the_demo_dry_run_prints_requests_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let mut daemon = common::Daemon::spawn(
        cwlite()
            .args([
                "run",
                "--config",
                "config/demo.json",
                "--dry-run",
                "--state-dir",
            ])
            .arg(&state_dir)
            .env("HOME", "/nonexistent")
            .env_remove("AWS_ACCESS_KEY_ID"),
    );
    let line = daemon.wait_stdout(|l| l.contains("PutMetricData"));
    let request: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(request["operation"], "PutMetricData");
    assert_eq!(request["Namespace"], "CWAgent");
    let data = request["MetricData"].as_array().unwrap();
    let mem = data
        .iter()
        .find(|d| d["MetricName"] == "mem_used_percent")
        .expect("mem_used_percent in the first publish");
    assert_eq!(mem["Unit"], "Percent");
    assert_eq!(mem["StorageResolution"], 1, "the demo collects every 10 s");
    assert_eq!(mem["Dimensions"][0]["Name"], "host");
    let (status, stderr) = daemon.stop("INT");
    assert!(status.success(), "{stderr:?}");
    assert!(!state_dir.exists(), "a dry run writes nothing");
}

#[test]
fn run_without_a_region_refuses_to_start_and_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let credentials =
        common::write_credentials(dir.path(), &[("AmazonCloudWatchAgent", "AKID", SECRET)]);
    let common_config =
        common::write_common_config(dir.path(), &credentials, "AmazonCloudWatchAgent", "");
    let (out, _, stderr) = output(
        cwlite()
            .args(["run", "--config", "config/cwlite.json", "--common-config"])
            .arg(&common_config)
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("agent.region: no region found; looked at agent.region, the region of profile \"AmazonCloudWatchAgent\""), "{stderr}");
}

#[test]
fn run_with_a_missing_profile_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = common::write_credentials(dir.path(), &[("default", "AKID", SECRET)]);
    let common_config =
        common::write_common_config(dir.path(), &credentials, "AmazonCloudWatchAgent", "");
    // The seed configuration without its run_as_user, whose user may not exist here.
    let mut seed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("config/cwlite.json").unwrap()).unwrap();
    seed["agent"].as_object_mut().unwrap().remove("run_as_user");
    let config = common::write_json(dir.path(), "cwlite.json", &seed);
    let (out, _, stderr) = output(
        cwlite()
            .args(["run", "--config"])
            .arg(&config)
            .arg("--common-config")
            .arg(&common_config)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .env("AWS_REGION", "eu-west-1"),
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot load credentials: profile \"AmazonCloudWatchAgent\" not found in {}",
            credentials.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET));
}

/// Environment keys must not override the configured profile; SIGTERM stops the daemon cleanly.
#[test]
fn run_uses_the_profile_not_environment_keys_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // Logs only: this test is about start-up and must not try to reach AWS.
    let config = common::write_json(
        dir.path(),
        "logs-only.json",
        &json!({"logs": {"logs_collected": {"files": {"collect_list": [{"file_path": dir.path().join("absent.log").display().to_string(), "log_group_name": "syslog"}]}}}}),
    );
    let credentials = common::write_credentials(
        dir.path(),
        &[("AmazonCloudWatchAgent", "AKIDFROMPROFILE", SECRET)],
    );
    let common_config =
        common::write_common_config(dir.path(), &credentials, "AmazonCloudWatchAgent", "");
    let state_dir = dir.path().join("state");
    let mut child = cwlite()
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--common-config")
        .arg(&common_config)
        .arg("--state-dir")
        .arg(&state_dir)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRONMENT")
        .env("AWS_SECRET_ACCESS_KEY", "environment-secret")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "cwlite exited before starting: {seen}"
        );
        seen.push_str(&line);
        if line.contains("started") {
            break;
        }
    }
    assert!(seen.contains("access_key_id=AKIDFROMPROFILE"), "{seen}");
    assert!(state_dir.is_dir());
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("SIGTERM received"), "{rest}");
    let everything = format!("{seen}{rest}");
    assert!(
        !everything.contains(SECRET) && !everything.contains("environment-secret"),
        "a secret was printed"
    );
}

#[test]
fn validate_never_prints_secrets_and_warns_about_loose_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let credentials =
        common::write_credentials(dir.path(), &[("AmazonCloudWatchAgent", "AKID", SECRET)]);
    std::fs::set_permissions(
        &credentials,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let common_config = common::write_common_config(
        dir.path(),
        &credentials,
        "AmazonCloudWatchAgent",
        "[proxy]\nhttps_proxy = \"http://proxyuser:proxypassword@proxy.internal:3128\"\n",
    );
    let (out, stdout, stderr) = output(
        cwlite()
            .args(["validate", "config/cwlite.json", "--common-config"])
            .arg(&common_config),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("is readable by group or others (mode 644)"),
        "{stderr}"
    );
    assert!(
        stdout.contains("proxyuser:***@proxy.internal:3128"),
        "{stdout}"
    );
    for text in [&stdout, &stderr] {
        assert!(!text.contains(SECRET) && !text.contains("proxypassword"));
    }
    assert!(Path::new(&credentials).exists());
}
