//! Clients built from the stock agent's files reach a real emulator (moto, started by
//! `scripts/test`) with the configured profile's keys, and each way of getting the set-up wrong
//! fails with a message that says what to fix.

mod common;

use cwlite::aws::{AwsError, AwsErrorKind, Clients};
use cwlite::config::{self, Environment, RegionPolicy};
use serde_json::json;

fn host() -> cwlite::config::expand::HostFacts {
    cwlite::config::expand::HostFacts {
        hostname: "h".into(),
        ip_address: None,
        date: "2026-11-25".into(),
    }
}

fn config_for(endpoint: &str, region: Option<&str>) -> serde_json::Value {
    let mut agent = json!({"metrics_collection_interval": 60});
    if let Some(region) = region {
        agent["region"] = json!(region);
    }
    json!({
        "agent": agent,
        "metrics": {
            "endpoint_override": endpoint,
            "metrics_collected": {"mem": {"measurement": ["mem_used_percent"]}}
        },
        "logs": {
            "endpoint_override": endpoint,
            "logs_collected": {"files": {"collect_list": [{"file_path": "/var/log/syslog", "log_group_name": "syslog"}]}}
        }
    })
}

async fn clients_for(
    dir: &std::path::Path,
    endpoint: &str,
    profiles: &[(&str, &str, &str)],
) -> Clients {
    let credentials = common::write_credentials(dir, profiles);
    let common_config = common::write_common_config(dir, &credentials, "AmazonCloudWatchAgent", "");
    let config = common::write_json(dir, "config.json", &config_for(endpoint, Some("us-east-1")));
    let loaded = config::load(
        &[config],
        Some(&common_config),
        // Fixed: proxy or CA variables of the machine running the tests must not leak in.
        &Environment::fixed(&[], host()),
        RegionPolicy::Required,
    )
    .unwrap();
    Clients::build(&loaded.config).await.unwrap()
}

#[tokio::test]
async fn clients_reach_the_emulator_with_the_profile_keys() {
    let endpoint = common::emulator_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let key = common::unique("AKIDCWLITE").replace('-', "");
    let clients = clients_for(
        dir.path(),
        &endpoint,
        &[
            ("default", "AKIDWRONGPROFILE", "x"),
            ("AmazonCloudWatchAgent", &key, "secret"),
        ],
    )
    .await;

    let group = common::unique("cwlite-foundation");
    clients
        .logs
        .create_log_group()
        .log_group_name(&group)
        .send()
        .await
        .unwrap();
    let described = clients
        .logs
        .describe_log_groups()
        .log_group_name_prefix(&group)
        .send()
        .await
        .unwrap();
    let names: Vec<_> = described
        .log_groups()
        .iter()
        .filter_map(|g| g.log_group_name())
        .collect();
    assert_eq!(names, [group.as_str()]);

    let namespace = common::unique("CWLiteTest");
    let datum = aws_sdk_cloudwatch::types::MetricDatum::builder()
        .metric_name("mem_used_percent")
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name("host")
                .value("web-01")
                .build(),
        )
        .value(42.5)
        .unit(aws_sdk_cloudwatch::types::StandardUnit::Percent)
        .storage_resolution(60)
        .build();
    clients
        .metrics
        .put_metric_data()
        .namespace(&namespace)
        .metric_data(datum)
        .send()
        .await
        .unwrap();
    let listed = clients
        .metrics
        .list_metrics()
        .namespace(&namespace)
        .send()
        .await
        .unwrap();
    let metrics: Vec<_> = listed
        .metrics()
        .iter()
        .filter_map(|m| m.metric_name())
        .collect();
    assert!(metrics.contains(&"mem_used_percent"), "{metrics:?}");

    let seen = common::access_keys_seen();
    let ours: Vec<_> = seen
        .iter()
        .filter(|(_, k)| *k == key)
        .map(|(service, _)| service.as_str())
        .collect();
    assert!(
        ours.contains(&"logs") && ours.contains(&"monitoring"),
        "requests signed with the profile's key: {ours:?}"
    );
    assert!(
        !seen.iter().any(|(_, k)| k == "AKIDWRONGPROFILE"),
        "the default profile must never be used"
    );
}

#[tokio::test]
async fn a_missing_profile_fails_with_a_clear_message() {
    let endpoint = common::emulator_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let clients = clients_for(dir.path(), &endpoint, &[("someone-else", "AKIDOTHER", "x")]).await;
    let err = clients.check_credentials().await.unwrap_err().to_string();
    let file = dir.path().join("credentials");
    assert!(
        err.contains(&format!(
            "profile \"AmazonCloudWatchAgent\" not found in {}",
            file.display()
        )),
        "{err}"
    );

    let failure = clients.logs.describe_log_groups().send().await.unwrap_err();
    let error = AwsError::from_sdk("DescribeLogGroups", &clients.logs_endpoint, &failure);
    assert_eq!(error.kind, AwsErrorKind::Credentials, "{error}");
    assert!(error.message.contains("AmazonCloudWatchAgent"), "{error}");
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn a_missing_region_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let credentials =
        common::write_credentials(dir.path(), &[("AmazonCloudWatchAgent", "AKID", "s")]);
    let common_config =
        common::write_common_config(dir.path(), &credentials, "AmazonCloudWatchAgent", "");
    let config = common::write_json(
        dir.path(),
        "config.json",
        &config_for("https://logs.example", None),
    );
    let err = config::load(
        std::slice::from_ref(&config),
        Some(&common_config),
        &Environment::fixed(&[], host()),
        RegionPolicy::Required,
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "{}: agent.region: no region found; looked at agent.region",
            config.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&credentials.display().to_string()) && text.contains("AWS_REGION"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{}", common::closed_port());
    let clients = clients_for(
        dir.path(),
        &endpoint,
        &[("AmazonCloudWatchAgent", "AKID", "s")],
    )
    .await;
    let failure = clients.logs.describe_log_groups().send().await.unwrap_err();
    let error = AwsError::from_sdk("DescribeLogGroups", &clients.logs_endpoint, &failure);
    assert_eq!(error.kind, AwsErrorKind::Unreachable, "{error}");
    assert!(error.is_retryable());
    assert!(
        error.message.starts_with(&format!(
            "DescribeLogGroups to {endpoint} cannot reach the endpoint"
        )),
        "{error}"
    );
    assert!(
        error.message.to_lowercase().contains("connection refused"),
        "{error}"
    );

    let failure = clients.metrics.list_metrics().send().await.unwrap_err();
    let error = AwsError::from_sdk("ListMetrics", &clients.metrics_endpoint, &failure);
    assert_eq!(error.kind, AwsErrorKind::Unreachable, "{error}");
}

#[tokio::test]
async fn a_service_refusal_is_classified_and_not_retried() {
    let endpoint = common::emulator_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let clients = clients_for(
        dir.path(),
        &endpoint,
        &[("AmazonCloudWatchAgent", "AKID", "s")],
    )
    .await;
    let failure = clients
        .logs
        .put_log_events()
        .log_group_name(common::unique("cwlite-missing"))
        .log_stream_name("s")
        .log_events(
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(1)
                .message("x")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    let error = AwsError::from_sdk("PutLogEvents", &clients.logs_endpoint, &failure);
    assert_eq!(error.kind, AwsErrorKind::NotFound, "{error}");
    assert_eq!(error.code.as_deref(), Some("ResourceNotFoundException"));
}
