//! `cwlite wizard` as an operator runs it: typed answers in a pseudo-terminal (the stock
//! prompts and defaults), an answers file for scripts, an existing file never replaced without
//! asking, and the result stored in Parameter Store (moto, with IAM enforced) and applied on a
//! host with `cwlite ctl -c ssm:`.

mod common;

use std::path::Path;

use common::OwnMoto;
use common::host::Host;
use serde_json::json;

/// Runs `args` in a pseudo-terminal, typing each answer once its question is shown; the
/// terminal's text and the exit code.
fn typed(args: &[&str], dialogue: &[(&str, &str)], env: &[(&str, &str)]) -> (String, i32) {
    let mut command = vec![env!("CARGO_BIN_EXE_cwlite").to_owned()];
    command.extend(args.iter().map(|a| (*a).to_owned()));
    let spec = json!({"command": command, "dialogue": dialogue});
    let out = std::process::Command::new(common::venv_bin("python"))
        .arg(format!(
            "{}/tests/support/pty_answers.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(spec.to_string())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn validate(file: &Path) -> (i32, String) {
    let out = common::cwlite()
        .args(["validate"])
        .arg(file)
        .env("AWS_REGION", "eu-west-1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The whole flow: the wizard asked in a terminal, its result in Parameter Store (with the
/// agent's key, allowed ssm:PutParameter only for this), then applied on a host by the ctl.
#[test]
fn typed_answers_make_a_configuration_that_validates_and_reaches_a_host_through_parameter_store() {
    let moto = OwnMoto::start();
    let keys = moto.least_privilege(&[("admin", &["ssm:PutParameter", "ssm:GetParameter"])], &[]);
    let admin = &keys["admin"];
    let host = Host::with_credentials(
        &admin.0,
        &admin.1,
        &format!("[endpoints]\nssm = \"{}\"\n", moto.url),
    );
    let output = host.dir.path().join("config.json");
    let etc = host.etc.display().to_string();
    let (shown, code) = typed(
        &[
            "wizard",
            "--output",
            &output.display().to_string(),
            "--etc",
            &etc,
        ],
        &[
            ("Are you using EC2 or On-Premises hosts?", ""),
            ("Which user are you planning to run the agent?", "2"),
            ("Do you want to turn on StatsD daemon?", "2"),
            ("Do you want to monitor metrics from CollectD?", "2"),
            ("Do you want to monitor any host metrics?", ""),
            ("Do you want to monitor cpu metrics per core?", "2"),
            (
                "Would you like to collect your metrics at high resolution",
                "2",
            ),
            ("Which default metrics config do you want?", "9"),
            ("Please retry to answer:", "3"),
            ("Are you satisfied with the above config?", ""),
            ("Do you want to monitor any log files?", ""),
            ("Log file path:", "/var/log/app/server.log"),
            ("Log group name:", ""),
            ("Log group class:", "2"),
            ("Log stream name:", ""),
            ("Log Group Retention in days", "5"),
            (
                "Do you want to specify any additional log files to monitor?",
                "2",
            ),
            ("Do you want to monitor journald logs?", ""),
            ("Do you want to collect logs from all units?", "2"),
            ("Do you want to monitor systemd unit logs?", "2"),
            ("Do you want to monitor kernel unit logs?", "2"),
            ("Do you want to monitor sshd unit logs?", ""),
            ("Do you want to monitor docker unit logs?", "2"),
            ("Do you want to monitor nginx unit logs?", "2"),
            ("Do you want to monitor apache2 unit logs?", "2"),
            ("Do you want to monitor NetworkManager unit logs?", "2"),
            ("Do you want to monitor firewalld unit logs?", "2"),
            ("Do you want to monitor audit unit logs?", "2"),
            ("Do you want to monitor custom units?", "2"),
            ("Log group name:", ""),
            ("Log stream name:", ""),
            ("Do you want to add regex filters", ""),
            ("Filter type:", "2"),
            ("Enter regex pattern:", "(unclosed"),
            ("Error: Invalid regex pattern", ""),
            ("Enter regex pattern:", "session (opened|closed)"),
            ("Do you want to add another regex filter?", "2"),
            ("Log Group Retention in days", ""),
            (
                "Do you want to specify any additional journald configurations to monitor?",
                "2",
            ),
            (
                "Do you want to store the config in the SSM parameter store?",
                "",
            ),
            ("What parameter store name do you want to use", ""),
            ("Which region do you want to store the config in", ""),
        ],
        &[("AWS_REGION", "eu-west-1")],
    );
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains("Successfully put config to parameter store AmazonCloudWatch-linux"),
        "{shown}"
    );
    let written = std::fs::read_to_string(&output).unwrap();
    assert!(written.starts_with("{\n\t\"agent\": {"), "{written}");
    let config: serde_json::Value = serde_json::from_str(&written).unwrap();
    assert_eq!(config["agent"]["run_as_user"], "root");
    assert_eq!(config["agent"]["metrics_collection_interval"], 10);
    let cpu = &config["metrics"]["metrics_collected"]["cpu"];
    assert_eq!(cpu["measurement"].as_array().unwrap().len(), 6, "advanced");
    assert!(cpu.get("resources").is_none(), "not per core");
    assert!(
        config["metrics"]["metrics_collected"]
            .get("statsd")
            .is_none()
    );
    let file = &config["logs"]["logs_collected"]["files"]["collect_list"][0];
    assert_eq!(file["log_group_name"], "server.log");
    assert_eq!(file["log_group_class"], "INFREQUENT_ACCESS");
    assert_eq!(file["log_stream_name"], "{hostname}");
    assert_eq!(file["retention_in_days"], 7);
    let journal = &config["logs"]["logs_collected"]["journald"]["collect_list"][0];
    assert_eq!(journal["units"], json!(["sshd"]));
    assert_eq!(
        journal["filters"],
        json!([{"type": "exclude", "expression": "session (opened|closed)"}])
    );
    let (code, stderr) = validate(&output);
    assert_eq!(code, 0, "{stderr}");

    // On a host: the ManageAgent command line, from Parameter Store.
    host.ok(&[
        "-a",
        "fetch-config",
        "-m",
        "onPremise",
        "-c",
        "ssm:AmazonCloudWatch-linux",
    ]);
    let fetched = std::fs::read_to_string(
        host.etc
            .join("amazon-cloudwatch-agent.d/ssm_AmazonCloudWatch-linux"),
    )
    .unwrap();
    assert_eq!(fetched, written);
    assert_eq!(host.status()["configstatus"], "configured");
}

/// An answers file gives a script the same result without a terminal, and an existing output
/// is replaced only when asked to (with --force, or a yes in the terminal).
#[test]
fn an_answers_file_writes_without_asking_and_an_existing_file_is_kept_unless_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("config.json");
    let answers = common::write_json(
        dir.path(),
        "answers.json",
        &json!({
            "host": "ec2",
            "statsd": null,
            "host_metrics": {"level": "standard", "per_core": false},
            "log_files": [{"path": "/var/log/syslog", "retention": 30}],
            "journald": []
        }),
    );
    let run = |extra: &[&str]| {
        let mut command = common::cwlite();
        command
            .args(["wizard", "--output"])
            .arg(&output)
            .args(extra)
            .stdin(std::process::Stdio::null());
        command.output().unwrap()
    };
    let out = run(&["--answers", answers.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    assert_eq!(
        config["metrics"]["metrics_collected"]["cpu"]["totalcpu"], false,
        "the EC2 standard preset"
    );
    assert_eq!(
        config["logs"]["logs_collected"]["files"]["collect_list"][0]["log_stream_name"],
        "{instance_id}"
    );
    assert_eq!(validate(&output).0, 0);

    // Already there: kept, with a one-line error, unless --force.
    let before = std::fs::read_to_string(&output).unwrap();
    let out = run(&["--defaults"]);
    assert_eq!(out.status.code(), Some(1));
    let error = String::from_utf8(out.stderr).unwrap();
    assert!(
        error.contains("exists: not replaced") && error.lines().count() == 1,
        "{error}"
    );
    assert_eq!(std::fs::read_to_string(&output).unwrap(), before);
    assert!(run(&["--defaults", "--force"]).status.success());
    assert_ne!(std::fs::read_to_string(&output).unwrap(), before);

    // In a terminal, the question decides; the default is no.
    let changed = std::fs::read_to_string(&output).unwrap();
    let (shown, code) = typed(
        &["wizard", "--output", output.to_str().unwrap()],
        &[
            ("Are you using EC2 or On-Premises hosts?", ""),
            ("Which user", ""),
            ("StatsD daemon?", "2"),
            ("CollectD?", "2"),
            ("any host metrics?", "2"),
            ("any log files?", "2"),
            ("journald logs?", "2"),
            ("SSM parameter store?", "2"),
            ("exists. Do you want to replace it?", ""),
        ],
        &[],
    );
    assert_eq!(code, 1, "{shown}");
    assert_eq!(std::fs::read_to_string(&output).unwrap(), changed);

    // A mistake in the answers file names its key.
    let bad = common::write_json(
        dir.path(),
        "bad.json",
        &json!({"log_files": [{"path": "/a", "retention": 8}]}),
    );
    let out = run(&["--answers", bad.to_str().unwrap(), "--force"]);
    let error = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        error.contains("bad.json") && error.contains("log_files[0].retention"),
        "{error}"
    );
}
