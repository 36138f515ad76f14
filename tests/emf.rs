//! Embedded Metric Format end to end against the project's fake endpoint: EMF lines in a
//! tailed file switch their destination to EMF (the header on every later request), a plain
//! destination never carries the header, and the EMF listener takes documents from the real
//! client library (`aws-embedded-metrics` from PyPI) over TCP and UDP.

mod common;

use std::path::Path;

use common::fake_logs::FakeLogs;
use common::{Daemon, append};
use serde_json::json;

fn start(dir: &Path, endpoint: &str, logs: serde_json::Value) -> Daemon {
    let mut section = json!({"endpoint_override": endpoint, "force_flush_interval": 1});
    for (key, value) in logs.as_object().unwrap() {
        section[key] = value.clone();
    }
    let config = json!({"agent": {"region": "us-east-1"}, "logs": section});
    common::start_daemon(dir, &dir.join("state"), &config, "AKIDFAKE")
}

const EMF_LINE: &str = r#"{"_aws":{"Timestamp":1764892800000,"CloudWatchMetrics":[{"Namespace":"App","Dimensions":[["Service"]],"Metrics":[{"Name":"Latency","Unit":"Milliseconds"}]}]},"Service":"api","Latency":42}"#;

#[test]
fn emf_lines_in_a_tailed_file_switch_their_destination_to_emf_and_plain_files_stay_plain() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let (mixed, plain) = (dir.path().join("mixed.log"), dir.path().join("plain.log"));
    append(&mixed, "plain before\n");
    append(&plain, "{\"not\":\"emf\"}\nplain\n");
    let files = json!({"collect_list": [
        {"file_path": mixed.display().to_string(), "log_group_name": "mixed", "log_stream_name": "s"},
        {"file_path": plain.display().to_string(), "log_group_name": "plain", "log_stream_name": "s"},
    ]});
    let daemon = start(
        dir.path(),
        &fake.url(),
        json!({"logs_collected": {"files": files}}),
    );
    common::eventually("the first plain lines", || {
        (fake.events("mixed", "s").len() == 1 && fake.events("plain", "s").len() == 2).then_some(())
    });
    append(&mixed, &format!("{EMF_LINE}\nplain after\n"));
    let events = common::eventually("the EMF line and the next", || {
        let events = fake.events("mixed", "s");
        (events.len() == 3).then_some(events)
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert_eq!(events[0].message, "plain before");
    assert!(!events[0].emf, "no EMF seen yet: a plain request");
    assert_eq!(events[1].message, EMF_LINE, "sent byte for byte");
    assert!(
        events[1].emf && events[2].emf,
        "sticky from the first EMF line on"
    );
    assert!(
        fake.events("plain", "s").iter().all(|e| !e.emf),
        "JSON that names no CloudWatchMetrics is not EMF"
    );
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("embedded metric format seen") && l.contains("mixed")),
        "{stderr:?}"
    );
}
