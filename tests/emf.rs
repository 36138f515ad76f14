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

/// Runs the real client library: `count` documents to `endpoint`, into group `app-metrics`.
fn emf_client(endpoint: &str, count: usize) {
    let output = std::process::Command::new(common::venv_bin("python"))
        .arg(format!(
            "{}/tests/support/emf_client.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(endpoint)
        .arg(count.to_string())
        .env("AWS_EMF_LOG_GROUP_NAME", "app-metrics")
        .env("AWS_EMF_LOG_STREAM_NAME", "s")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Checks the documents the client library sent arrived whole, as EMF, in its group.
fn assert_library_documents(fake: &FakeLogs, count: usize) {
    let events = common::eventually("the client library's documents", || {
        let events = fake.events("app-metrics", "s");
        (events.len() >= count).then_some(events)
    });
    assert_eq!(events.len(), count, "each once");
    let mut numbers: Vec<i64> = events
        .iter()
        .map(|e| {
            assert!(e.emf, "sent with x-amzn-logs-format: json/emf");
            let document: serde_json::Value = serde_json::from_str(&e.message).unwrap();
            assert_eq!(
                document["_aws"]["CloudWatchMetrics"][0]["Namespace"],
                "CwliteTest"
            );
            assert_eq!(document["_aws"]["LogGroupName"], "app-metrics");
            assert_eq!(document["Service"], "api");
            document["Number"].as_i64().unwrap()
        })
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..count as i64).collect::<Vec<_>>());
}

#[test]
fn the_client_librarys_documents_over_tcp_arrive_as_emf_and_invalid_ones_are_counted() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let mut daemon = start(
        dir.path(),
        &fake.url(),
        json!({"log_stream_name": "host-stream",
               "metrics_collected": {"emf": {"service_address": format!("tcp://127.0.0.1:{port}")}}}),
    );
    // Bound before "started", which `start` waited for.
    daemon.wait_stderr_any("emf: listening on tcp");
    emf_client(&format!("tcp://127.0.0.1:{port}"), 25);
    // A raw client: a document naming no group goes to the stock default, invalid JSON is
    // dropped and counted, a top-level name is the stock v0 form.
    {
        use std::io::Write;
        let mut raw = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        raw.write_all(b"{\"Latency\":1}\nnot json at all\n{\"log_group_name\":\"v0\",\"log_stream_name\":\"old\",\"x\":2}\n")
            .unwrap();
    }
    assert_library_documents(&fake, 25);
    let default = common::eventually("the document naming no group", || {
        let events = fake.events("emf/logs/default", "host-stream");
        (!events.is_empty()).then_some(events)
    });
    assert_eq!(default[0].message, "{\"Latency\":1}");
    common::eventually("the v0 document", || {
        (!fake.events("v0", "old").is_empty()).then_some(())
    });
    daemon.wait_stderr("emf: a document is dropped: not a JSON object");
    // The status file is written every 5 s.
    let emf = common::eventually("the counts in the status file", || {
        let emf = common::status_json(&dir.path().join("state"))["logs"]["emf"].clone();
        (emf["datagrams"] == 28).then_some(emf)
    });
    assert_eq!(emf["malformed"], 1, "{emf}");
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
}

#[test]
fn the_client_librarys_documents_over_udp_arrive_as_emf() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_udp_port();
    let mut daemon = start(
        dir.path(),
        &fake.url(),
        json!({"metrics_collected": {"emf": {"service_address": format!("udp://127.0.0.1:{port}")}}}),
    );
    // Bound before "started", which `start` waited for.
    daemon.wait_stderr_any("emf: listening on udp");
    emf_client(&format!("udp://127.0.0.1:{port}"), 25);
    assert_library_documents(&fake, 25);
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
}

/// A daemon whose only input is an EMF listener at `address`, with a 2 MiB log budget (one
/// destination may hold 1 MiB), started once it listens on `protocol`.
fn start_small(dir: &Path, fake: &FakeLogs, address: &str, protocol: &str) -> Daemon {
    let config = json!({"agent": {"region": "us-east-1"}, "logs": {
        "endpoint_override": fake.url(), "force_flush_interval": 1,
        "metrics_collected": {"emf": {"service_address": address}}}});
    let mut command = common::run_command(dir, &dir.join("state"), &config, "AKIDFAKE", "s");
    command.args(["--log-buffer-mib", "2"]);
    let mut daemon = Daemon::spawn(&mut command);
    daemon.wait_stderr(&format!("emf: listening on {protocol}"));
    daemon
}

/// An EMF document for `group` (stream `s`) numbered `n`, padded to about `pad` bytes more.
fn padded_document(group: &str, n: usize, pad: usize) -> String {
    format!(
        "{{\"_aws\":{{\"LogGroupName\":\"{group}\",\"LogStreamName\":\"s\",\"CloudWatchMetrics\":[]}},\"n\":{n},\"pad\":\"{}\"}}\n",
        "p".repeat(pad)
    )
}

/// Over TCP nothing accepted is dropped: while the endpoint fails, the listener stops
/// reading once the destination's share of the budget is spent, the client's writes block,
/// and everything arrives once the endpoint is back.
#[test]
fn a_tcp_client_is_held_back_while_its_destination_cannot_take_more_and_nothing_is_lost() {
    use std::io::Write;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let daemon = start_small(dir.path(), &fake, &format!("127.0.0.1:{port}"), "tcp");
    fake.fail_randomly(7, 100);
    let total = 100_000usize;
    let document = |i: usize| padded_document("held", i, 200);
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_write_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    // Written until a write blocks for 2 s: the listener has stopped reading.
    let mut sent = 0;
    let mut pending = Vec::new();
    while sent < total {
        if pending.is_empty() {
            pending = document(sent).into_bytes();
            sent += 1;
        }
        match client.write(&pending) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(err)
                if err.kind() == std::io::ErrorKind::WouldBlock
                    || err.kind() == std::io::ErrorKind::TimedOut =>
            {
                break;
            }
            Err(err) => panic!("{err}"),
        }
    }
    assert!(
        sent < total,
        "the listener read all {total} documents ({} MB) while nothing could be delivered",
        total * 250 / 1_000_000
    );
    let status = common::status_json(&dir.path().join("state"));
    assert!(
        status["logs"]["queue"]["bytes"].as_u64().unwrap() <= 2 * 1024 * 1024,
        "held within the budget: {status}"
    );
    fake.fail_randomly(7, 0);
    client.set_write_timeout(None).unwrap();
    client.write_all(&pending).unwrap();
    for i in sent..total {
        client.write_all(document(i).as_bytes()).unwrap();
    }
    drop(client);
    let events = common::eventually("every document", || {
        let events = fake.events("held", "s");
        (events.len() >= total).then_some(events)
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert_eq!(events.len(), total, "each once");
    let mut seen = vec![false; total];
    for event in &events {
        let document: serde_json::Value = serde_json::from_str(&event.message).unwrap();
        seen[document["n"].as_u64().unwrap() as usize] = true;
    }
    assert!(seen.iter().all(|s| *s), "nothing lost");
    assert_eq!(
        status_dropped(&dir.path().join("state")),
        0,
        "tcp never drops"
    );
}

fn status_dropped(state: &Path) -> u64 {
    common::status_json(state)["logs"]["emf"]["dropped_queue_full"]
        .as_u64()
        .unwrap_or(0)
}

/// UDP cannot wait: while its destination's share is spent, datagrams are dropped and
/// counted, and every datagram received is either delivered or counted.
#[test]
fn udp_documents_without_room_are_dropped_and_counted_and_the_rest_delivered() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_udp_port();
    let daemon = start_small(dir.path(), &fake, &format!("udp://127.0.0.1:{port}"), "udp");
    fake.fail_randomly(11, 100);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let total = 8_000u64;
    for i in 0..total {
        let document = padded_document("udp", i as usize, 300);
        socket
            .send_to(document.as_bytes(), ("127.0.0.1", port))
            .unwrap();
    }
    let state = dir.path().join("state");
    common::eventually("drops counted", || {
        let emf = common::status_json(&state)["logs"]["emf"].clone();
        (emf["dropped_queue_full"].as_u64().unwrap_or(0) > 0).then_some(())
    });
    fake.fail_randomly(11, 0);
    let (received, dropped) = common::eventually("every kept document delivered", || {
        let emf = common::status_json(&state)["logs"]["emf"].clone();
        let (received, dropped) = (
            emf["datagrams"].as_u64().unwrap(),
            emf["dropped_queue_full"].as_u64().unwrap(),
        );
        let delivered = fake.events("udp", "s").len() as u64;
        (received >= dropped && delivered == received - dropped && dropped >= 1)
            .then_some((received, dropped))
    });
    assert!(
        dropped > 0 && received <= total,
        "{received} received, {dropped} dropped"
    );
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("udp documents are dropped")),
        "{stderr:?}"
    );
}
