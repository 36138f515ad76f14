//! `cwlite ctl -c ssm:<name>` against a moto server of the test's own with IAM enforcement on:
//! each request is checked against the signing user's least-privilege policy and signature.
//! The configuration comes from Parameter Store through the `ssm` endpoint the common-config
//! names, the daemon it starts ships with the same key, and every refusal (a missing
//! parameter, a denied GetParameter, a malformed stored configuration, no region) is one line
//! naming the parameter and changes nothing.

mod common;

use common::OwnMoto;
use common::host::Host;
use serde_json::json;

/// What the agent's IAM user may do: read its configuration and ship logs, nothing else.
const AGENT_ACTIONS: &[&str] = &[
    "ssm:GetParameter",
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "logs:PutRetentionPolicy",
];

/// Everything the agent needs but the configuration: the mistake the error must name.
const NO_SSM_ACTIONS: &[&str] = &["logs:PutLogEvents", "cloudwatch:PutMetricData"];

/// The ManageAgent flow: the configuration in Parameter Store, fetched with the agent's own
/// least-privilege key through the `ssm` endpoint, applied and started with -s; the daemon
/// ships with that key. A SecureString parameter is decrypted on the way.
#[test]
fn fetch_config_from_parameter_store_starts_a_daemon_under_a_least_privilege_policy() {
    let moto = OwnMoto::start();
    let host_dir = tempfile::tempdir().unwrap();
    let log = host_dir.path().join("app.log");
    common::append(&log, "from parameter store\n");
    let config = json!({
        "agent": {"region": "eu-west-1"},
        "logs": {"endpoint_override": moto.url, "force_flush_interval": 1, "logs_collected": {"files": {"collect_list": [
            {"file_path": log.display().to_string(), "log_group_name": "ssm-app", "log_stream_name": "s", "retention_in_days": 7}
        ]}}}
    })
    .to_string();
    let secure = json!({"agent": {"region": "eu-west-1", "debug": true}}).to_string();
    let keys = moto.least_privilege(
        &[("agent", AGENT_ACTIONS), ("reader", &["logs:GetLogEvents"])],
        &[
            ("AmazonCloudWatch-linux", &config, "String"),
            ("/cw/secure", &secure, "SecureString"),
        ],
    );
    let agent = &keys["agent"];
    let host = Host::with_credentials(
        &agent.0,
        &agent.1,
        &format!("[endpoints]\nssm = \"{}\"\n", moto.url),
    );

    let out = host.ok(&[
        "-a",
        "fetch-config",
        "-m",
        "onPremise",
        "-c",
        "ssm:AmazonCloudWatch-linux",
        "-s",
    ]);
    assert!(out.contains("Configuration validation succeeded"), "{out}");
    assert_eq!(host.names(), ["ssm_AmazonCloudWatch-linux"]);
    let stored = std::fs::read_to_string(
        host.etc
            .join("amazon-cloudwatch-agent.d/ssm_AmazonCloudWatch-linux"),
    )
    .unwrap();
    assert_eq!(stored, config, "stored as fetched, byte for byte");
    let status = host.status();
    assert_eq!(status["status"], "running");
    assert_eq!(status["configstatus"], "configured");
    common::eventually("the line in CloudWatch Logs", || {
        (moto.messages(&keys["reader"], "ssm-app") == ["from parameter store"]).then_some(())
    });

    // A SecureString, appended under its escaped name.
    host.ok(&["-a", "append-config", "-c", "ssm:/cw/secure"]);
    assert_eq!(
        host.names(),
        ["ssm_AmazonCloudWatch-linux", "ssm__cw_secure"]
    );
    let stored =
        std::fs::read_to_string(host.etc.join("amazon-cloudwatch-agent.d/ssm__cw_secure")).unwrap();
    assert_eq!(stored, secure);
    host.ok(&["-a", "stop"]);
}

/// Each way a fetch from Parameter Store goes wrong is one line naming the parameter (and the
/// region or the permission), and the configuration in place stays as it was.
#[test]
fn parameter_store_failures_are_one_line_and_change_nothing() {
    let moto = OwnMoto::start();
    let keys = moto.least_privilege(
        &[("agent", AGENT_ACTIONS), ("nossm", NO_SSM_ACTIONS)],
        &[
            ("good", r#"{"agent": {"region": "eu-west-1"}}"#, "String"),
            (
                "malformed",
                r#"{"agent": {"region": "eu-west-1",}"#,
                "String",
            ),
            (
                "wrong",
                r#"{"logs": {"force_flush_interval": "soon"}}"#,
                "String",
            ),
        ],
    );
    let endpoints = format!("[endpoints]\nssm = \"{}\"\n", moto.url);
    let agent = &keys["agent"];
    let host = Host::with_credentials(&agent.0, &agent.1, &endpoints);
    host.ok(&["-a", "fetch-config", "-c", "ssm:good"]);
    let before =
        std::fs::read_to_string(host.etc.join("amazon-cloudwatch-agent.d/ssm_good")).unwrap();

    let error = host.refused(&["-a", "fetch-config", "-c", "ssm:missing"]);
    assert!(
        error.contains("ssm:missing")
            && error.contains("no such parameter")
            && error.contains("eu-west-1"),
        "{error}"
    );
    let error = host.refused(&["-a", "fetch-config", "-c", "ssm:malformed"]);
    assert!(
        error.contains("ssm:malformed") && error.contains(":1:"),
        "{error}"
    );
    let error = host.refused(&["-a", "append-config", "-c", "ssm:wrong"]);
    assert!(
        error.contains("ssm:wrong") && error.contains("logs.force_flush_interval"),
        "{error}"
    );

    let denied = &keys["nossm"];
    let denied_host = Host::with_credentials(&denied.0, &denied.1, &endpoints);
    let error = denied_host.refused(&["-a", "fetch-config", "-c", "ssm:good"]);
    assert!(
        error.contains("ssm:good")
            && error.contains("access denied in eu-west-1")
            && error.contains("ssm:GetParameter"),
        "{error}"
    );
    assert!(denied_host.names().is_empty());

    // No region anywhere: said before any request, with where it looked.
    let mut no_region = host.command(
        std::path::Path::new(env!("CARGO_BIN_EXE_cwlite")),
        &["ctl", "-a", "fetch-config", "-c", "ssm:good"],
    );
    no_region
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION");
    let out = no_region.output().unwrap();
    let error = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(error.contains("ssm:good: no region found"), "{error}");

    assert_eq!(host.names(), ["ssm_good"]);
    assert_eq!(
        std::fs::read_to_string(host.etc.join("amazon-cloudwatch-agent.d/ssm_good")).unwrap(),
        before
    );
}
