//! cwlite against the project's own fake CloudWatch Logs endpoint, which enforces every
//! PutLogEvents rule and injects faults: volume within the limits, faults retried, retention set,
//! over-long lines split, and the fake itself checked against the rules it must enforce.

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::fake_logs::{FakeLogs, Fault};
use common::{Daemon, append};
use serde_json::json;

fn start(dir: &Path, endpoint: &str, entry: serde_json::Value) -> Daemon {
    let config = json!({
        "agent": {"region": "us-east-1"},
        "logs": {"endpoint_override": endpoint, "force_flush_interval": 1, "logs_collected": {"files": {"collect_list": [entry]}}}
    });
    common::start_daemon(dir, &dir.join("state"), &config, "AKIDFAKE")
}

fn client(endpoint: &str) -> aws_sdk_cloudwatchlogs::Client {
    aws_sdk_cloudwatchlogs::Client::from_conf(
        aws_sdk_cloudwatchlogs::config::Builder::new()
            .http_client(common::sdk_http_client())
            .behavior_version(aws_sdk_cloudwatchlogs::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudwatchlogs::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_cloudwatchlogs::config::Credentials::new(
                "AKID", "s", None, None, "test",
            ))
            .endpoint_url(endpoint)
            .retry_config(aws_sdk_cloudwatchlogs::config::retry::RetryConfig::disabled())
            .build(),
    )
}

fn messages(fake: &FakeLogs, group: &str) -> Vec<String> {
    fake.events(group, "stream")
        .into_iter()
        .map(|e| e.message)
        .collect()
}

fn entry(log: &Path, group: &str) -> serde_json::Value {
    json!({"file_path": log.display().to_string(), "log_group_name": group, "log_stream_name": "stream"})
}

/// The fake must refuse what CloudWatch refuses, or the other tests prove nothing.
#[test]
fn the_fake_enforces_the_put_log_events_rules() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let fake = FakeLogs::start().await;
        let logs = client(&fake.url());
        logs.create_log_group()
            .log_group_name("g")
            .send()
            .await
            .unwrap();
        logs.create_log_stream()
            .log_group_name("g")
            .log_stream_name("stream")
            .send()
            .await
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let event = |ts: i64, message: &str| {
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(ts)
                .message(message)
                .build()
                .unwrap()
        };
        let put = |events: Vec<aws_sdk_cloudwatchlogs::types::InputLogEvent>| {
            logs.put_log_events()
                .log_group_name("g")
                .log_stream_name("stream")
                .set_log_events(Some(events))
                .send()
        };
        let code = |result: Result<_, aws_sdk_cloudwatchlogs::error::SdkError<_, _>>| {
            use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;
            result.err().and_then(
                |e: aws_sdk_cloudwatchlogs::error::SdkError<
                    aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsError,
                    _,
                >| e.code().map(str::to_owned),
            )
        };
        assert_eq!(
            code(put((0..10_001).map(|_| event(now, "x")).collect()).await).as_deref(),
            Some("InvalidParameterException")
        );
        assert_eq!(
            code(put(vec![event(now, "b"), event(now - 1, "a")]).await).as_deref(),
            Some("InvalidParameterException")
        );
        assert_eq!(
            code(put(vec![event(now - 25 * 3600 * 1000, "a"), event(now, "b")]).await).as_deref(),
            Some("InvalidParameterException")
        );
        let big = "x".repeat(600_000);
        assert_eq!(
            code(put(vec![event(now, &big), event(now, &big)]).await).as_deref(),
            Some("InvalidParameterException")
        );
        assert!(
            put((0..10_000).map(|_| event(now, "x")).collect())
                .await
                .is_ok(),
            "exactly 10,000 events are fine"
        );
        let answer = put(vec![
            event(now - 15 * 24 * 3600 * 1000, "old"),
            event(now, "new"),
        ])
        .await
        .unwrap();
        assert_eq!(
            answer
                .rejected_log_events_info()
                .and_then(|r| r.too_old_log_event_end_index()),
            Some(1)
        );
        assert_eq!(fake.events("g", "stream").last().unwrap().message, "new");
        let missing = logs
            .put_log_events()
            .log_group_name("g")
            .log_stream_name("nope")
            .log_events(event(now, "x"))
            .send()
            .await;
        assert!(missing.is_err());
    });
}

#[test]
fn a_large_volume_arrives_exactly_once_within_every_limit() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("big.log");
    let mut expected = Vec::new();
    let mut text = String::new();
    let mut rng = fastrand::Rng::with_seed(3);
    for i in 0..40_000 {
        let line = format!(
            "2026-11-25 event-{i:06} {}",
            "p".repeat(rng.usize(0..if i % 500 == 0 { 3000 } else { 80 }))
        );
        text.push_str(&line);
        text.push('\n');
        expected.push(line);
    }
    append(&log, &text);
    let daemon = start(dir.path(), &fake.url(), entry(&log, "volume"));
    let got = common::eventually("every event at the fake", || {
        let got = messages(&fake, "volume");
        (got.len() >= expected.len()).then_some(got)
    });
    // The tailer and the runtime threads have all allocated by now; without the one-arena
    // setting each had a heap of its own, each with its own high-water mark.
    let arenas = common::malloc_arena_heaps(daemon.child.id());
    assert!(
        arenas.is_empty(),
        "malloc arenas besides the main one: {arenas:?}"
    );
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert!(
        fake.refusals().is_empty(),
        "a rule was broken: {:?}",
        fake.refusals()
    );
    assert_eq!(got.len(), expected.len(), "no duplicates");
    let mut sorted_got = got.clone();
    sorted_got.sort();
    let mut sorted_expected = expected.clone();
    sorted_expected.sort();
    assert_eq!(sorted_got, sorted_expected, "every event exactly once");
    assert!(
        fake.put_calls() >= 4,
        "40,000 events need several calls: {}",
        fake.put_calls()
    );
}

/// Streaming takes its read chunks and request bodies from the heap it already has. With
/// glibc's default thresholds the heap gave its top back to the system whenever a body was
/// freed there, and the next batch faulted fresh pages in (which the kernel zeroes): about
/// 1,500 page faults for each 2.8 MB volume, however many came before. Once the first volumes
/// have grown the heap, the next must fault in almost nothing.
#[test]
fn later_volumes_stream_through_the_heap_the_first_ones_grew() {
    const LINES: usize = 20_000;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stream.log");
    let volume = |round: usize| {
        let mut text = String::new();
        for i in 0..LINES {
            text.push_str(&format!(
                "2026-11-25 round-{round} event-{i:06} {}\n",
                "v".repeat(100)
            ));
        }
        text
    };
    let daemon = start(dir.path(), &fake.url(), entry(&log, "heap"));
    let pid = daemon.child.id();
    let page_faults = || common::minor_page_faults(pid).expect("the daemon's /proc stat");
    let mut faults = Vec::new();
    for round in 1..=4 {
        let before = page_faults();
        append(&log, &volume(round));
        common::eventually("the volume at the fake", || {
            (messages(&fake, "heap").len() >= round * LINES).then_some(())
        });
        faults.push(page_faults() - before);
    }
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert_eq!(messages(&fake, "heap").len(), 4 * LINES, "no duplicates");
    assert!(
        faults[3] < 200,
        "page faults per volume, the fourth in a heap grown by three: {faults:?}"
    );
}

#[test]
fn faults_are_retried_until_everything_arrives_exactly_once() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake: Arc<FakeLogs> = runtime.block_on(FakeLogs::start());
    fake.inject([
        Fault::Throttle,
        Fault::Unavailable,
        Fault::Reset,
        Fault::Slow(Duration::from_secs(2)),
        Fault::Throttle,
        Fault::Reset,
    ]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let lines: Vec<String> = (0..3000)
        .map(|i| format!("2026-11-25 line-{i:05}"))
        .collect();
    append(&log, &format!("{}\n", lines[..1500].join("\n")));
    let daemon = start(dir.path(), &fake.url(), entry(&log, "faults"));
    common::eventually("the first half through the faults", || {
        (messages(&fake, "faults").len() >= 1500).then_some(())
    });
    runtime.block_on(fake.refuse());
    append(&log, &format!("{}\n", lines[1500..].join("\n")));
    // Let cwlite meet the refused connections before the endpoint comes back.
    let mut daemon = daemon;
    daemon.wait_stderr("cannot reach the endpoint");
    runtime.block_on(fake.restore());
    let got = common::eventually("everything after the outage", || {
        let got = messages(&fake, "faults");
        (got.len() >= lines.len()).then_some(got)
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, lines, "every line exactly once");
}

#[test]
fn retention_is_set_and_over_long_lines_are_split_not_lost() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("long.log");
    let long = format!("2026-11-25 {}", "y".repeat(3 * 1024 * 1024));
    append(&log, &format!("{long}\nafter\n"));
    let mut with_retention = entry(&log, "retained");
    with_retention["retention_in_days"] = json!(7);
    let daemon = start(dir.path(), &fake.url(), with_retention);
    let got = common::eventually("the long line and the next", || {
        let got = messages(&fake, "retained");
        got.iter().any(|m| m == "after").then_some(got)
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert!(fake.refusals().is_empty(), "{:?}", fake.refusals());
    assert_eq!(fake.retention("retained"), Some(7));
    // Pieces of one line share a timestamp and may be accepted in any order (several requests
    // are in flight per stream), so check content rather than arrival order.
    let pieces: Vec<&String> = got.iter().filter(|m| *m != "after").collect();
    assert!(
        pieces.len() >= 4,
        "3 MiB in pieces of at most 1 MB: {}",
        pieces.len()
    );
    assert!(
        pieces.iter().all(|p| p.len() + 26 <= 1024 * 1024),
        "every piece within the event limit"
    );
    assert_eq!(
        pieces.iter().map(|p| p.len()).sum::<usize>(),
        long.len(),
        "every byte kept"
    );
    assert_eq!(
        pieces
            .iter()
            .filter(|p| p.starts_with("2026-11-25 y"))
            .count(),
        1,
        "the head once"
    );
    assert!(
        pieces
            .iter()
            .filter(|p| !p.starts_with("2026"))
            .all(|p| p.bytes().all(|b| b == b'y')),
        "the rest intact"
    );
}

#[test]
fn a_utf16_file_arrives_as_utf8_text() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("windows-style.log");
    let text = "\u{feff}2026-11-25 первая строка ✓\r\n2026-11-25 second\r\n";
    std::fs::write(
        &log,
        text.encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let mut utf16 = entry(&log, "utf16");
    utf16["encoding"] = json!("utf-16");
    let daemon = start(dir.path(), &fake.url(), utf16);
    let got = common::eventually("both lines", || {
        let got = messages(&fake, "utf16");
        (got.len() >= 2).then_some(got)
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert_eq!(got, ["2026-11-25 первая строка ✓", "2026-11-25 second"]);
}

/// logrotate renames the file, and the application keeps writing to the old one until it is
/// told to reopen: those lines must not be lost.
#[test]
fn lines_written_to_a_renamed_file_before_its_writer_reopens_arrive() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let mut writer = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    writer.write_all(b"2026-11-25 before rotation\n").unwrap();
    let mut daemon = start(dir.path(), &fake.url(), entry(&log, "late"));
    daemon.wait_stderr_any("tailing");
    common::eventually("the first line", || {
        (!messages(&fake, "late").is_empty()).then_some(())
    });
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, "2026-11-25 in the new file\n");
    daemon.wait_stderr("the old file is read until its writer is done");
    // The application has not reopened yet: it still writes to the renamed file.
    writer
        .write_all(b"2026-11-25 late, to the old file\n")
        .unwrap();
    let got = common::eventually("all three lines", || {
        let mut got = messages(&fake, "late");
        got.sort();
        (got.len() >= 3).then_some(got)
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert_eq!(
        got,
        [
            "2026-11-25 before rotation",
            "2026-11-25 in the new file",
            "2026-11-25 late, to the old file"
        ]
    );
}

fn sorted_messages(fake: &FakeLogs, group: &str) -> Vec<String> {
    let mut got = messages(fake, group);
    got.sort();
    got
}

fn numbered(from: usize, to: usize) -> Vec<String> {
    (from..to)
        .map(|i| format!("2026-11-27 line {i:04}"))
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    append(path, &format!("{}\n", lines.join("\n")));
}

/// The stock agent (and cwlite before) lost the end of a file that was rotated while the agent
/// was down: its checkpoint only named the path, which now holds the new file.
#[test]
fn a_file_rotated_while_cwlite_was_stopped_is_finished_after_the_restart() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    write_lines(&log, &numbered(0, 3));
    let daemon = start(dir.path(), &fake.url(), entry(&log, "down"));
    common::eventually("the first lines", || {
        (messages(&fake, "down").len() == 3).then_some(())
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    // While cwlite is down: more lines, then a rename rotation and a new file.
    write_lines(&log, &numbered(3, 6));
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    write_lines(&log, &numbered(6, 8));
    let mut daemon = start(dir.path(), &fake.url(), entry(&log, "down"));
    daemon.wait_stderr_any("resuming the undelivered tail of a rotated file");
    let got = common::eventually("every line", || {
        let got = sorted_messages(&fake, "down");
        (got.len() >= 8).then_some(got)
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert_eq!(got, numbered(0, 8), "every line exactly once");
}

/// A rotated file whose last batches were still failing when the daemon was killed: its own
/// checkpoint (by identity) brings its tail back after the restart, though the path's
/// checkpoint already belongs to the new file.
#[test]
fn a_rotated_file_still_in_flight_at_kill_dash_9_is_finished_after_the_restart() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    write_lines(&log, &numbered(0, 3));
    let mut daemon = start(dir.path(), &fake.url(), entry(&log, "inflight"));
    common::eventually("the first lines", || {
        (messages(&fake, "inflight").len() == 3).then_some(())
    });
    // From now on every put fails and is retried: nothing more is acknowledged.
    fake.inject(std::iter::repeat_n(Fault::Unavailable, 100_000));
    write_lines(&log, &numbered(3, 6));
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    write_lines(&log, &numbered(6, 8));
    daemon.wait_stderr("the old file is read until its writer is done");
    // The new file is tailed, so the path's checkpoint now names it; the old file's position
    // lives in its rotated checkpoint.
    let rotated = dir.path().join("state/logs-state/rotated");
    common::eventually("a rotated checkpoint", || {
        std::fs::read_dir(&rotated)
            .ok()
            .and_then(|mut d| d.next())
            .map(|_| ())
    });
    daemon.wait_stderr("tailing");
    let (status, _) = daemon.stop("KILL");
    assert!(!status.success());
    fake.clear_faults();
    let daemon = start(dir.path(), &fake.url(), entry(&log, "inflight"));
    let got = common::eventually("every line", || {
        let got = sorted_messages(&fake, "inflight");
        (got.len() >= 8).then_some(got)
    });
    assert_eq!(
        got,
        numbered(0, 8),
        "nothing was acknowledged after line 2: each once"
    );
    // Once the old file's writer has been quiet long enough and all of it is delivered.
    common::eventually("the rotated checkpoint removed", || {
        std::fs::read_dir(&rotated)
            .unwrap()
            .next()
            .is_none()
            .then_some(())
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
}

/// A glob matching more files than cwlite keeps open: descriptors stay bounded, and a line
/// appended to a file whose descriptor was closed is still read.
#[test]
fn a_glob_over_many_files_keeps_descriptors_bounded_and_misses_no_append() {
    const FILES: usize = 400;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let many = dir.path().join("many");
    std::fs::create_dir(&many).unwrap();
    for i in 0..FILES {
        append(
            &many.join(format!("f{i:03}.log")),
            &format!("2026-11-27 file {i} first\n"),
        );
    }
    let entry = json!({
        "file_path": format!("{}/*.log", many.display()),
        "log_group_name": "many",
        "log_stream_name": "s",
        "publish_multi_logs": true,
    });
    let daemon = start(dir.path(), &fake.url(), entry);
    common::eventually("a line from every file", || {
        (fake.group_events("many").len() >= FILES).then_some(())
    });
    let descriptors = || {
        std::fs::read_dir(format!("/proc/{}/fd", daemon.child.id()))
            .unwrap()
            .count()
    };
    let limit = cwlite::tail::source::MAX_OPEN_FILES;
    let kinds = || {
        let mut kinds = std::collections::BTreeMap::new();
        for fd in std::fs::read_dir(format!("/proc/{}/fd", daemon.child.id())).unwrap() {
            let target = std::fs::read_link(fd.unwrap().path()).unwrap_or_default();
            let target = target.to_string_lossy();
            let kind = if target.starts_with(&*many.to_string_lossy()) {
                "tailed file".to_owned()
            } else {
                target.split(':').next().unwrap_or_default().to_owned()
            };
            *kinds.entry(kind).or_insert(0) += 1;
        }
        kinds
    };
    // Sockets, the inotify descriptor, pipes, the runtime's own: well under 64.
    assert!(
        descriptors() < limit + 64,
        "{} descriptors open with {FILES} files tailed: {:?}",
        descriptors(),
        kinds()
    );
    // Most descriptors are closed by now: every file gets a line, closed or not.
    for i in 0..FILES {
        append(
            &many.join(format!("f{i:03}.log")),
            &format!("2026-11-27 file {i} second\n"),
        );
    }
    let got = common::eventually("the appended lines", || {
        let seconds: Vec<String> = fake
            .group_events("many")
            .into_iter()
            .map(|(_, e)| e.message)
            .filter(|m| m.ends_with("second"))
            .collect();
        (seconds.len() >= FILES).then_some(seconds)
    });
    assert_eq!(got.len(), FILES);
    assert!(descriptors() < limit + 64);
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert_eq!(fake.group_events("many").len(), 2 * FILES, "each line once");
}

/// `auto_removal`: an older file is deleted once a newer one is tailed, but only after
/// CloudWatch acknowledged every line of it (the stock agent deletes once it has read it).
#[test]
fn auto_removal_deletes_an_older_file_only_after_all_of_it_is_delivered() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("app-1.log");
    let new = dir.path().join("app-2.log");
    write_lines(&old, &numbered(0, 3));
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(60))
        .unwrap();
    // Nothing is acknowledged until the faults are cleared.
    fake.inject(std::iter::repeat_n(Fault::Unavailable, 100_000));
    let entry = json!({
        "file_path": format!("{}/app-*.log", dir.path().display()),
        "log_group_name": "removal",
        "log_stream_name": "stream",
        "auto_removal": true,
    });
    let mut daemon = start(dir.path(), &fake.url(), entry);
    daemon.wait_stderr_any("tailing");
    write_lines(&new, &numbered(3, 5));
    daemon.wait_stderr("auto_removal: a newer file is tailed");
    assert!(old.exists(), "not one line of it is delivered yet");
    fake.clear_faults();
    daemon.wait_stderr("auto_removal: deleted after CloudWatch acknowledged all of it");
    assert!(!old.exists());
    assert!(new.exists(), "the newest file is never removed");
    let got = common::eventually("every line", || {
        let got = sorted_messages(&fake, "removal");
        (got.len() >= 5).then_some(got)
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert_eq!(got, numbered(0, 5));
}

/// Hostile files under one glob: a FIFO (opening it would block the tailer for ever), a
/// directory, a symlink loop, a binary file with NULs and invalid UTF-8, and a file starting
/// with 200,000 empty lines. The good files arrive whole, the binary one as text with
/// replacement characters, the empty lines as one event (under the default multi-line rule an
/// empty line continues the event before it, as in the stock agent), and the daemon stays
/// responsive and stops cleanly.
#[test]
fn hostile_files_under_a_glob_do_not_stop_the_good_ones() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    write_lines(&logs.join("good.log"), &numbered(0, 3));
    assert!(
        std::process::Command::new("mkfifo")
            .arg(logs.join("fifo.log"))
            .status()
            .unwrap()
            .success()
    );
    std::fs::create_dir(logs.join("directory.log")).unwrap();
    std::os::unix::fs::symlink(logs.join("loop.log"), logs.join("loop.log")).unwrap();
    std::fs::write(
        logs.join("binary.log"),
        b"2026-11-27 bin\x00ary \xff\xfe text\n\x00\x00\x00\n",
    )
    .unwrap();
    let mut empty = "\n".repeat(200_000);
    empty.push_str("2026-11-27 after the empty lines\n");
    append(&logs.join("empty.log"), &empty);
    let entry = json!({
        "file_path": format!("{}/*.log", logs.display()),
        "log_group_name": "hostile",
        "log_stream_name": "s",
        "publish_multi_logs": true,
    });
    let daemon = start(dir.path(), &fake.url(), entry);
    let all = |fake: &FakeLogs| -> Vec<String> {
        let mut got: Vec<String> = fake
            .group_events("hostile")
            .into_iter()
            .map(|(_, e)| e.message)
            .collect();
        got.sort();
        got
    };
    common::eventually("the good, binary and empty-lines files", || {
        all(&fake)
            .iter()
            .any(|m| m.ends_with("after the empty lines"))
            .then_some(())
    });
    // Still responsive: a new line in the good file arrives.
    write_lines(&logs.join("good.log"), &numbered(3, 4));
    common::eventually("a line appended afterwards", || {
        all(&fake).contains(&numbered(3, 4)[0]).then_some(())
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    let (blank, got): (Vec<String>, Vec<String>) =
        all(&fake).into_iter().partition(|m| m.trim().is_empty());
    assert_eq!(blank.len(), 1, "the empty lines make one event");
    assert_eq!(blank[0].len(), 199_999, "all of them, joined");
    let mut expected = numbered(0, 4);
    expected.extend([
        "\u{0}\u{0}\u{0}".to_owned(),
        "2026-11-27 after the empty lines".to_owned(),
        "2026-11-27 bin\u{0}ary \u{fffd}\u{fffd} text".to_owned(),
    ]);
    expected.sort();
    assert_eq!(got, expected);
}

/// Rotated while cwlite was stopped, and the application has not created the new file yet:
/// the path names nothing, the old file is found under its new name and finished.
#[test]
fn a_file_rotated_while_stopped_with_no_new_file_yet_is_finished() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    write_lines(&log, &numbered(0, 2));
    let daemon = start(dir.path(), &fake.url(), entry(&log, "nonew"));
    common::eventually("the first lines", || {
        (messages(&fake, "nonew").len() == 2).then_some(())
    });
    let (status, _) = daemon.stop("TERM");
    assert!(status.success());
    write_lines(&log, &numbered(2, 4));
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    let mut daemon = start(dir.path(), &fake.url(), entry(&log, "nonew"));
    daemon.wait_stderr_any("resuming the undelivered tail of a rotated file");
    let got = common::eventually("every line", || {
        let got = sorted_messages(&fake, "nonew");
        (got.len() >= 4).then_some(got)
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert_eq!(got, numbered(0, 4));
}

/// A glob that also matches rotated names (`app.log*` with `publish_multi_logs`): after
/// rotation the old file, fully read, is met again as `app.log.1` and goes on from its end
/// instead of being sent again from 0.
#[test]
fn a_rotated_name_matched_by_the_glob_is_not_sent_again() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    write_lines(&log, &numbered(0, 3));
    let entry = json!({
        "file_path": format!("{}/app.log*", dir.path().display()),
        "log_group_name": "renamed",
        "log_stream_name": "s",
        "publish_multi_logs": true,
    });
    let mut daemon = start(dir.path(), &fake.url(), entry);
    let count = |fake: &FakeLogs| fake.group_events("renamed").len();
    common::eventually("the first lines", || (count(&fake) == 3).then_some(()));
    let old_size = std::fs::metadata(&log).unwrap().len();
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    write_lines(&log, &numbered(3, 5));
    daemon.wait_stderr("rotated or deleted file fully read");
    // The next discovery meets the old file under its new name.
    let reopened = daemon.wait_stderr("app.log.1");
    assert!(
        reopened.contains(&format!("offset={old_size}")),
        "goes on from its end: {reopened}"
    );
    common::eventually("the new file's lines", || (count(&fake) >= 5).then_some(()));
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    let mut got: Vec<String> = fake
        .group_events("renamed")
        .into_iter()
        .map(|(_, e)| e.message)
        .collect();
    got.sort();
    assert_eq!(got, numbered(0, 5), "nothing sent twice");
}

/// Answers CloudWatch never gives (HTTP 200 with an HTML page, a 4 MiB error body, an error
/// type nobody knows): each is logged and the batch sent again, nothing is lost, and the daemon
/// keeps going.
#[test]
fn malformed_and_unexpected_answers_are_retried_and_nothing_is_lost() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake: Arc<FakeLogs> = runtime.block_on(FakeLogs::start());
    fake.inject([
        Fault::Garbage,
        Fault::HugeError,
        Fault::UnknownError,
        Fault::Garbage,
    ]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    write_lines(&log, &numbered(0, 200));
    let daemon = start(dir.path(), &fake.url(), entry(&log, "answers"));
    let got = common::eventually("every line through the bad answers", || {
        let got = sorted_messages(&fake, "answers");
        (got.len() >= 200).then_some(got)
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert_eq!(
        got,
        numbered(0, 200),
        "every line once: the bad answers recorded nothing"
    );
    assert!(
        stderr.iter().any(|l| l.contains("PutLogEvents")),
        "the failures are logged: {stderr:?}"
    );
    assert!(
        stderr.iter().all(|l| l.len() < 10_000),
        "a huge error body is not copied into the log whole"
    );
}
