//! Log files end to end: the real binary tails files into the emulator (moto behind the bridge,
//! started by `scripts/test`), and every line arrives exactly once and in order, across rename
//! rotation, with multi-line events kept together; after `kill -9` nothing is missing.

mod common;

use std::path::Path;

use common::{Daemon, append};
use serde_json::json;

fn start(dir: &Path, log: &Path, group: &str) -> Daemon {
    let config = json!({
        "agent": {"region": "us-east-1"},
        "logs": {
            "endpoint_override": common::emulator_endpoint(),
            "force_flush_interval": 1,
            "logs_collected": {"files": {"collect_list": [
                {"file_path": log.display().to_string(), "log_group_name": group, "log_stream_name": "stream"}
            ]}}
        }
    });
    common::start_daemon(dir, &dir.join("state"), &config, "AKIDLOGS")
}

/// Every message in the stream, oldest first.
fn received(runtime: &tokio::runtime::Runtime, group: &str) -> Vec<String> {
    runtime.block_on(async {
        let client = aws_sdk_cloudwatchlogs::Client::from_conf(
            aws_sdk_cloudwatchlogs::config::Builder::new()
                .http_client(common::sdk_http_client())
                .behavior_version(aws_sdk_cloudwatchlogs::config::BehaviorVersion::latest())
                .region(aws_sdk_cloudwatchlogs::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_cloudwatchlogs::config::Credentials::new(
                    "AKIDTEST", "s", None, None, "test",
                ))
                .endpoint_url(common::emulator_endpoint())
                .build(),
        );
        let mut messages = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = client
                .get_log_events()
                .log_group_name(group)
                .log_stream_name("stream")
                .start_from_head(true)
                .set_next_token(token.clone())
                .send()
                .await;
            let Ok(page) = page else { return messages };
            let events = page.events();
            messages.extend(events.iter().filter_map(|e| e.message().map(str::to_owned)));
            let next = page.next_forward_token().map(str::to_owned);
            if events.is_empty() || next == token {
                return messages;
            }
            token = next;
        }
    })
}

fn lines(from: usize, to: usize) -> Vec<String> {
    (from..to)
        .map(|i| format!("2026-11-25 line-{i:05} some payload to make it realistic"))
        .collect()
}

#[test]
fn lines_arrive_exactly_once_and_in_order_across_rename_rotation() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let group = common::unique("cwlite-logs");
    append(&log, &format!("{}\n", lines(0, 300).join("\n")));
    let mut daemon = start(dir.path(), &log, &group);
    daemon.wait_stderr_any("tailing");
    // A multi-line event: a start line and two indented continuation lines.
    append(
        &log,
        "2026-11-25 exception thrown\n    at a.b(C.java:1)\n    at d.e(F.java:2)\n",
    );
    append(&log, &format!("{}\n", lines(300, 600).join("\n")));
    // Rename rotation: the old file is finished, the new one read from its start.
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, &format!("{}\n", lines(600, 1000).join("\n")));

    let mut expected = lines(0, 300);
    expected
        .push("2026-11-25 exception thrown\n    at a.b(C.java:1)\n    at d.e(F.java:2)".to_owned());
    expected.extend(lines(300, 1000));
    let got = common::eventually("every line in the emulator", || {
        let got = received(&runtime, &group);
        (got.len() >= expected.len()).then_some(got)
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert_eq!(got.len(), expected.len(), "nothing twice");
    let mut sorted_got = got.clone();
    sorted_got.sort();
    let mut sorted_expected = expected.clone();
    sorted_expected.sort();
    assert_eq!(
        sorted_got, sorted_expected,
        "every line once, the multi-line event whole"
    );
    // Each file's lines in the file's order. Across the rotation, lines read in the same
    // millisecond carry equal timestamps and may travel in concurrent batches, and CloudWatch
    // orders only by timestamp: the two files may interleave at the seam.
    let (old_file, new_file) = expected.split_at(301 + 300);
    let in_order = |part: &[String]| -> Vec<String> {
        got.iter().filter(|l| part.contains(l)).cloned().collect()
    };
    assert_eq!(in_order(old_file), old_file, "the old file in order");
    assert_eq!(in_order(new_file), new_file, "the new file in order");
}

#[test]
fn after_kill_dash_9_a_restart_loses_no_line() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let group = common::unique("cwlite-kill");
    append(&log, &format!("{}\n", lines(0, 500).join("\n")));
    let first = start(dir.path(), &log, &group);
    common::eventually("some lines delivered", || {
        (received(&runtime, &group).len() >= 100).then_some(())
    });
    append(&log, &format!("{}\n", lines(500, 1500).join("\n")));
    // No drain, no final checkpoint: the hard way.
    let (status, _) = first.stop("KILL");
    assert!(!status.success());
    append(&log, &format!("{}\n", lines(1500, 2000).join("\n")));
    let second = start(dir.path(), &log, &group);
    let expected = lines(0, 2000);
    let got = common::eventually("every line after the restart", || {
        let got = received(&runtime, &group);
        expected
            .iter()
            .all(|line| got.contains(line))
            .then_some(got)
    });
    let (status, stderr) = second.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    // At least once: lines in flight at the kill may come twice, but never out of the file's
    // order within one delivery, and never missing.
    assert!(got.len() >= expected.len());
}

/// A writer that never ends its last line: the line is sent after about five seconds of quiet
/// instead of being held for ever.
#[test]
fn a_last_line_without_newline_is_sent_after_quiet() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let group = common::unique("cwlite-partial");
    append(&log, "2026-11-25 complete line\n2026-11-25 no newline yet");
    let daemon = start(dir.path(), &log, &group);
    let got = common::eventually("the unterminated line delivered", || {
        let got = received(&runtime, &group);
        (got.len() >= 2).then_some(got)
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert_eq!(
        got,
        ["2026-11-25 complete line", "2026-11-25 no newline yet"]
    );
}

fn rotation_with_logrotate(mode: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let group = common::unique(&format!("cwlite-{mode}"));
    append(&log, &format!("{}\n", lines(0, 300).join("\n")));
    let daemon = start(dir.path(), &log, &group);
    // logrotate's copytruncate loses what is written between its copy and its truncate, for any
    // reader; so the rotation happens once the first part is delivered and nothing is writing.
    common::eventually("the first part delivered", || {
        (received(&runtime, &group).len() >= 300).then_some(())
    });
    common::logrotate(dir.path(), &log, &format!("{mode};rotate 3;nocompress"));
    assert!(
        dir.path().join("app.log.1").exists(),
        "logrotate rotated the file"
    );
    append(&log, &format!("{}\n", lines(300, 700).join("\n")));
    let expected = lines(0, 700);
    let got = common::eventually("every line delivered", || {
        let got = received(&runtime, &group);
        (got.len() >= expected.len()).then_some(got)
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert_eq!(got, expected, "every line once and in order");
}

#[test]
fn logrotate_copytruncate_loses_and_repeats_nothing() {
    rotation_with_logrotate("copytruncate");
}

#[test]
fn logrotate_create_loses_and_repeats_nothing() {
    rotation_with_logrotate("create");
}
