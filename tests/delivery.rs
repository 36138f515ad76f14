//! Delivery under the failures real fleets meet, against the project's fake endpoint: a group
//! CloudWatch refuses for good (a least-privilege policy that does not cover it) never stalls
//! another group and is sent once it is allowed; a request refused as a whole is retried, not
//! split and given up; retention that failed is set later, for each group by its exact name;
//! and a process over its account's PutLogEvents quota merges what waits and slows down
//! instead of falling behind.

mod common;

use std::path::Path;

use common::fake_logs::FakeLogs;
use common::{Daemon, append, eventually};
use serde_json::{Value, json};

fn lines(prefix: &str, range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("{prefix} {i:06}\n")).collect()
}

fn messages(fake: &FakeLogs, group: &str) -> Vec<String> {
    fake.group_events(group)
        .into_iter()
        .map(|(_, e)| e.message)
        .collect()
}

fn start(dir: &Path, logs: Value, extra: &[&str]) -> Daemon {
    let config = json!({"agent": {"region": "us-east-1"}, "logs": logs});
    let mut command = common::run_command(dir, &dir.join("state"), &config, "AKIDFAKE", "secret");
    command.args(extra);
    let mut daemon = Daemon::spawn(&mut command);
    daemon.wait_stderr("started");
    daemon
}

fn entry(path: &Path, group: &str) -> Value {
    json!({"file_path": path.display().to_string(), "log_group_name": group, "log_stream_name": "s"})
}

/// Two files, two groups; CloudWatch refuses one group for good. Its data is more than the
/// whole log budget, yet every line of the other file arrives while it is refused; the refusal
/// is logged once, with the action and the permission, and shown in the status; once the
/// policy covers the group, all of its lines arrive, none given up.
#[test]
fn a_refused_group_pauses_only_its_own_files_and_is_delivered_once_allowed() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    fake.refuse_group("refused");
    let dir = tempfile::tempdir().unwrap();
    let (refused_log, healthy_log) = (
        dir.path().join("refused.log"),
        dir.path().join("healthy.log"),
    );
    // 3 MB, more than the 2 MiB budget: with a shared budget it would take all of it.
    let refused_lines = 30_000;
    append(&refused_log, &lines(&"r".repeat(90), 0..refused_lines));
    append(&healthy_log, "");
    let logs = json!({
        "endpoint_override": fake.url(),
        "force_flush_interval": 1,
        "logs_collected": {"files": {"collect_list": [entry(&refused_log, "refused"), entry(&healthy_log, "healthy")]}}
    });
    let mut daemon = start(dir.path(), logs, &["--log-buffer-mib", "2"]);
    daemon.wait_stderr("CloudWatch refuses this destination");
    let state = dir.path().join("state");
    let report = eventually("the refused destination in the status", || {
        let status = common::status_json(&state);
        (status["logs"]["destinations_refused"] == 1).then_some(status)
    });
    let refused = &report["logs"]["refused"][0];
    assert_eq!(refused["group"], "refused");
    assert_eq!(refused["operation"], "PutLogEvents");
    assert_eq!(refused["permission"], "logs:PutLogEvents");
    assert!(
        report["logs"]["queue"]["bytes"].as_u64().unwrap() <= 2 * 1024 * 1024,
        "{report}"
    );
    // The healthy file is written while the other group is refused, 100 lines at a time.
    for round in 0..10 {
        append(
            &healthy_log,
            &lines("healthy", round * 100..(round + 1) * 100),
        );
        eventually("the healthy lines written so far", || {
            (messages(&fake, "healthy").len() == (round + 1) * 100).then_some(())
        });
    }
    assert_eq!(
        messages(&fake, "healthy"),
        lines("healthy", 0..1000).lines().collect::<Vec<_>>()
    );
    assert!(messages(&fake, "refused").is_empty());
    let summary = common::cwlite()
        .args(["status", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&summary.stdout);
    assert!(text.contains("refused            1 destinations"), "{text}");
    // The policy now covers the group: everything arrives, once, in order.
    fake.allow_group("refused");
    // The refused destination is tried again on its own backoff (at most REFUSED_RETRY_CAP,
    // five minutes, after the last refusal; usually within a minute here).
    let allowed_at = std::time::Instant::now();
    while messages(&fake, "refused").len() < refused_lines {
        assert!(
            allowed_at.elapsed() < std::time::Duration::from_secs(330),
            "every refused line within the longest backoff once allowed: {} of {refused_lines}",
            messages(&fake, "refused").len()
        );
        // Polling the fake for what the daemon sends on its own schedule.
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    eprintln!(
        "the refused group's lines arrived {:?} after it was allowed",
        allowed_at.elapsed()
    );
    assert_eq!(
        messages(&fake, "refused"),
        lines(&"r".repeat(90), 0..refused_lines)
            .lines()
            .collect::<Vec<_>>()
    );
    eventually("no refused destination left in the status", || {
        (common::status_json(&state)["logs"]["destinations_refused"] == 0).then_some(())
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success());
    let warnings = stderr
        .iter()
        .filter(|l| l.contains("CloudWatch refuses this destination"))
        .count();
    assert_eq!(
        warnings,
        1,
        "logged once when it starts:\n{}",
        stderr.join("\n")
    );
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("accepts this destination again")),
        "{}",
        stderr.join("\n")
    );
    assert_eq!(common::status_json(&state)["logs"]["given_up_invalid"], 0);
}

/// A PutLogEvents refused as a whole (a stream name CloudWatch does not take) says nothing
/// about the events: it is retried with a long backoff and shown in the status, never split
/// down to single events that are given up.
#[test]
fn a_request_refused_as_a_whole_is_retried_and_never_given_up() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    fake.refuse_group_with(
        "whole",
        "InvalidParameterException",
        "1 validation error detected: Value 'a:b' at 'logStreamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [^:*]*",
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, &lines("line", 0..8));
    let logs = json!({
        "endpoint_override": fake.url(),
        "force_flush_interval": 1,
        "logs_collected": {"files": {"collect_list": [entry(&log, "whole")]}}
    });
    let daemon = start(dir.path(), logs, &[]);
    let state = dir.path().join("state");
    let report = eventually("the refusal in the status", || {
        let status = common::status_json(&state);
        (status["logs"]["destinations_refused"] == 1).then_some(status)
    });
    assert!(
        report["logs"]["refused"][0]["error"]
            .as_str()
            .unwrap()
            .contains("logStreamName"),
        "{report}"
    );
    assert_eq!(fake.refused_group_calls("PutLogEvents"), 1, "not split");
    fake.allow_group("whole");
    eventually("every line", || {
        (messages(&fake, "whole").len() == 8).then_some(())
    });
    let (_, stderr) = daemon.stop("TERM");
    assert_eq!(
        common::status_json(&state)["logs"]["given_up_invalid"],
        0,
        "{}",
        stderr.join("\n")
    );
    assert_eq!(
        messages(&fake, "whole"),
        lines("line", 0..8).lines().collect::<Vec<_>>()
    );
}

/// PutRetentionPolicy has a low quota: a throttled call is tried again until the retention is
/// set, and groups whose names differ only in case each get theirs.
#[test]
fn retention_that_failed_is_set_later_for_each_group_by_its_exact_name() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    fake.throttle_retention(3);
    let dir = tempfile::tempdir().unwrap();
    let (upper, lower) = (dir.path().join("upper.log"), dir.path().join("lower.log"));
    append(&upper, "one\n");
    append(&lower, "two\n");
    let mut upper_entry = entry(&upper, "App");
    upper_entry["retention_in_days"] = json!(7);
    // The stock translator refuses two retentions for names that differ only in case; the
    // same retention on both is fine, and each group must get it.
    let mut lower_entry = entry(&lower, "app");
    lower_entry["retention_in_days"] = json!(7);
    let logs = json!({
        "endpoint_override": fake.url(),
        "force_flush_interval": 1,
        "logs_collected": {"files": {"collect_list": [upper_entry, lower_entry]}}
    });
    let daemon = start(dir.path(), logs, &[]);
    eventually("both retentions set", || {
        (fake.retention("App") == Some(7) && fake.retention("app") == Some(7)).then_some(())
    });
    let (status, _) = daemon.stop("TERM");
    assert!(status.success());
}

/// One process, four streams written at 20 lines a second each with a 1 s flush, against an
/// account quota of one PutLogEvents a second: four times what the quota takes without
/// merging. What waits goes out merged and the process slows down to the quota, so it
/// finishes soon after the writers stop, in requests that grew to fit the quota.
#[test]
fn over_its_quota_a_process_merges_what_waits_and_keeps_up() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    fake.cap_puts(1);
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = (0..4)
        .map(|i| dir.path().join(format!("w{i}.log")))
        .collect();
    for path in &paths {
        append(path, "");
    }
    let list: Vec<Value> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| entry(p, &format!("quota{i}")))
        .collect();
    let logs = json!({
        "endpoint_override": fake.url(),
        "force_flush_interval": 1,
        "logs_collected": {"files": {"collect_list": list}}
    });
    let daemon = start(dir.path(), logs, &[]);
    // 20 lines a second for 12 s on each file, in ticks of a tenth of a second.
    let ticks = 120;
    let started = std::time::Instant::now();
    for tick in 0..ticks {
        for path in &paths {
            append(path, &lines("q", tick * 2..tick * 2 + 2));
        }
        // Pacing a writer in real time, as a program logs: not a wait for the code under test.
        let next = started + std::time::Duration::from_millis(100 * (tick as u64 + 1));
        std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
    }
    let stopped = std::time::Instant::now();
    let state = dir.path().join("state");
    let limited = common::status_json(&state);
    eventually("every line of every stream", || {
        (0..4)
            .all(|i| messages(&fake, &format!("quota{i}")).len() == ticks * 2)
            .then_some(())
    });
    let drained = stopped.elapsed();
    let (accepted, throttled) = fake.put_outcomes();
    assert!(accepted > 0);
    let (_, stderr) = daemon.stop("TERM");
    for i in 0..4 {
        assert_eq!(
            messages(&fake, &format!("quota{i}")),
            lines("q", 0..ticks * 2).lines().collect::<Vec<_>>(),
            "stream {i} whole and in order"
        );
    }
    let events_per_request = (4 * ticks * 2) as f64 / accepted as f64;
    eprintln!(
        "accepted {accepted}, throttled {throttled}, {events_per_request:.1} events per request, drained {drained:?}, status {}",
        limited["logs"]
    );
    // Without merging each request carries one flush of one stream: 20 events.
    assert!(
        events_per_request >= 40.0,
        "{events_per_request}; {}",
        stderr.join("\n")
    );
    assert!(
        drained < std::time::Duration::from_secs(15),
        "drained {drained:?} after the writers stopped"
    );
    // How many were throttled is the fleet bench's figure (benches/fleet.rs): with four
    // streams opening at once against a quota of one a second, the first few always are.
    assert!(
        limited["logs"]["throttles"].as_u64().unwrap() > 0
            && limited["logs"]["rate_limit_millis"].as_u64().unwrap() > 0,
        "the status shows the throttles and the pace: {}",
        limited["logs"]
    );
}

/// A file that cannot be opened at the first try after a restart (here: unreadable to the
/// user cwlite runs as) keeps its checkpoint: once it can be opened, it goes on from there,
/// and nothing delivered before the restart is sent again.
#[test]
fn a_file_that_cannot_be_opened_at_first_goes_on_from_its_checkpoint() {
    use std::os::unix::fs::PermissionsExt;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    // The user must be able to reach its state directory and read the credentials.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.path().join("app.log");
    append(&log, &lines("open", 0..100));
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = json!({
        "agent": {"region": "us-east-1", "run_as_user": "nobody"},
        "logs": {
            "endpoint_override": fake.url(),
            "force_flush_interval": 1,
            "logs_collected": {"files": {"collect_list": [entry(&log, "reopen")]}}
        }
    });
    let start = || {
        let mut command = common::run_command(
            dir.path(),
            &dir.path().join("state"),
            &config,
            "AKIDFAKE",
            "secret",
        );
        for name in ["credentials", "common-config.toml", "config.json"] {
            std::fs::set_permissions(
                dir.path().join(name),
                std::fs::Permissions::from_mode(0o644),
            )
            .unwrap();
        }
        let mut daemon = Daemon::spawn(&mut command);
        daemon.wait_stderr("started");
        daemon
    };
    let daemon = start();
    eventually("the first 100 lines", || {
        (messages(&fake, "reopen").len() == 100).then_some(())
    });
    let (status, _) = daemon.stop("TERM");
    assert!(status.success());
    append(&log, &lines("open", 100..150));
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut daemon = start();
    daemon.wait_stderr_any("cannot open");
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    // A new name in the directory makes the tailer look at its globs again.
    append(&dir.path().join("trigger"), "");
    eventually("the 50 lines written while stopped", || {
        (messages(&fake, "reopen").len() >= 150).then_some(())
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{}", stderr.join("\n"));
    assert_eq!(
        messages(&fake, "reopen"),
        lines("open", 0..150).lines().collect::<Vec<_>>(),
        "each line once, in order"
    );
}

/// libfaketime, which `scripts/test` installs (Debian's `faketime`).
fn libfaketime() -> std::path::PathBuf {
    std::env::var_os("CWLITE_TEST_LIBFAKETIME")
        .map(std::path::PathBuf::from)
        .expect("CWLITE_TEST_LIBFAKETIME is not set: run the tests with scripts/test")
}

/// Metrics spooled during an outage with a clock 15 days behind (an outage long enough to
/// leave datums older than CloudWatch takes) are dropped at the next start with one warning
/// that counts them, instead of a refused request per stale datum; fresh datums go out at once.
#[test]
fn metrics_outside_the_time_window_are_dropped_without_a_request_storm() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let config = |endpoint: &str| {
        json!({
            "agent": {"region": "us-east-1", "metrics_collection_interval": 1},
            "metrics": {
                "namespace": "CWLiteWindow",
                "endpoint_override": endpoint,
                "force_flush_interval": 1,
                "metrics_collected": {"cpu": {"measurement": ["usage_idle", "usage_user", "usage_system"], "totalcpu": true, "percpu": true}}
            }
        })
    };
    let state = dir.path().join("state");
    // An outage 15 days ago: the endpoint refuses connections, batches go to the spool.
    let closed = format!("http://127.0.0.1:{}", common::closed_port());
    let mut command =
        common::run_command(dir.path(), &state, &config(&closed), "AKIDFAKE", "secret");
    command
        .env("LD_PRELOAD", libfaketime())
        .env("FAKETIME", "-15d")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    let mut daemon = Daemon::spawn(&mut command);
    daemon.wait_stderr("started");
    let spooled = eventually("stale batches in the spool", || {
        let status = common::status_json(&state);
        (status["metrics"]["retries"].as_u64() >= Some(4)).then_some(status)
    });
    assert!(
        spooled["metrics"]["spool_bytes"].as_u64() > Some(0),
        "{spooled}"
    );
    let (_, _) = daemon.stop("TERM");
    // Back, with the real clock.
    let mut command = common::run_command(
        dir.path(),
        &state,
        &config(&fake.url()),
        "AKIDFAKE",
        "secret",
    );
    let mut daemon = Daemon::spawn(&mut command);
    daemon.wait_stderr("started");
    daemon.wait_stderr("more than two weeks old");
    eventually("fresh datums", || (!fake.datums().is_empty()).then_some(()));
    let report = eventually("the stale datums counted", || {
        let status = common::status_json(&state);
        (status["metrics"]["datums_sent"].as_u64() > Some(0)).then_some(status)
    });
    let (_, stderr) = daemon.stop("TERM");
    assert_eq!(fake.metric_refused(), 0, "nothing stale was sent");
    assert!(
        report["metrics"]["datums_out_of_window"].as_u64() >= Some(4),
        "{report}"
    );
    let warnings = stderr
        .iter()
        .filter(|l| l.contains("more than two weeks old"))
        .count();
    assert_eq!(warnings, 1, "{}", stderr.join("\n"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(fake.datums().iter().all(|d| d.timestamp > now - 3600.0));
}

/// A newest-only glob over dated files (`app-*.log`, no `publish_multi_logs`): lines appended
/// to the older file while cwlite was stopped, and lines read but not acknowledged when it
/// stopped during an outage, still arrive once a newer file is the newest match, each once.
#[test]
fn a_dated_file_superseded_while_stopped_is_finished_from_its_checkpoint() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let (first, second, third) = (
        dir.path().join("app-2026-12-01.log"),
        dir.path().join("app-2026-12-02.log"),
        dir.path().join("app-2026-12-03.log"),
    );
    append(&first, &lines("first", 0..100));
    let logs = json!({
        "endpoint_override": fake.url(),
        "force_flush_interval": 1,
        "logs_collected": {"files": {"collect_list": [
            {"file_path": dir.path().join("app-*.log").display().to_string(), "log_group_name": "dated", "log_stream_name": "s"}
        ]}}
    });
    let daemon = start(dir.path(), logs.clone(), &[]);
    eventually("the first file", || {
        (messages(&fake, "dated").len() == 100).then_some(())
    });
    let (status, _) = daemon.stop("TERM");
    assert!(status.success());
    // Stopped: the old file grows, and a new day's file appears.
    append(&first, &lines("first", 100..150));
    append(&second, &lines("second", 0..30));
    // The new day's file is the newest match (appends within one clock tick share an mtime).
    let day = std::time::Duration::from_secs(86_400);
    set_mtime(&first, std::time::SystemTime::now() - day);
    let mut daemon = start(dir.path(), logs.clone(), &[]);
    eventually("the rest of the first file and the second", || {
        (messages(&fake, "dated").len() >= 180).then_some(())
    });
    // An outage: lines of the second file are read but never acknowledged before the stop.
    fake.refuse_group("dated");
    append(&second, &lines("second", 30..60));
    daemon.wait_stderr("CloudWatch refuses this destination");
    let (status, _) = daemon.stop("KILL");
    assert!(!status.success());
    fake.allow_group("dated");
    append(&third, &lines("third", 0..10));
    set_mtime(&second, std::time::SystemTime::now() - day);
    let daemon = start(dir.path(), logs, &[]);
    eventually("every line of the three files", || {
        (messages(&fake, "dated").len() >= 220).then_some(())
    });
    let (status, _) = daemon.stop("TERM");
    assert!(status.success());
    let mut got = messages(&fake, "dated");
    got.sort();
    let mut expected: Vec<String> = [
        lines("first", 0..150),
        lines("second", 0..60),
        lines("third", 0..10),
    ]
    .concat()
    .lines()
    .map(str::to_owned)
    .collect();
    expected.sort();
    assert_eq!(got, expected, "every line once");
}

fn set_mtime(path: &Path, when: std::time::SystemTime) {
    std::fs::File::options()
        .append(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

/// `publish_multi_logs` over a deep tree: the stream name built from a path is longer than
/// the 512 characters CloudWatch takes (the fake refuses it, as CloudWatch does). Each file's
/// lines arrive under a fitted name of its own, none given up.
#[test]
fn a_stream_name_built_from_a_deep_path_is_fitted_and_its_lines_arrive() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let mut deep = dir.path().to_owned();
    for _ in 0..30 {
        deep.push("a_rather_long_directory_name");
    }
    std::fs::create_dir_all(&deep).unwrap();
    let (one, two) = (deep.join("one.log"), deep.join("two.log"));
    append(&one, &lines("one", 0..20));
    append(&two, &lines("two", 0..20));
    let logs = json!({
        "endpoint_override": fake.url(),
        "force_flush_interval": 1,
        "logs_collected": {"files": {"collect_list": [
            {"file_path": deep.join("*.log").display().to_string(), "log_group_name": "deep", "log_stream_name": "host", "publish_multi_logs": true}
        ]}}
    });
    let daemon = start(dir.path(), logs, &[]);
    eventually("both files' lines", || {
        (messages(&fake, "deep").len() >= 40).then_some(())
    });
    let (_, stderr) = daemon.stop("TERM");
    let events = fake.group_events("deep");
    let streams: std::collections::BTreeSet<&str> =
        events.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(streams.len(), 2, "a stream per file: {streams:?}");
    assert!(
        streams.iter().all(|s| s.chars().count() == 512),
        "{streams:?}"
    );
    assert!(
        streams.iter().any(|s| s.ends_with("_one.log")),
        "{streams:?}"
    );
    assert!(fake.refusals().is_empty(), "{:?}", fake.refusals());
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("longer than CloudWatch takes")),
        "{}",
        stderr.join("\n")
    );
    let mut got = messages(&fake, "deep");
    got.sort();
    let mut expected: Vec<String> = [lines("one", 0..20), lines("two", 0..20)]
        .concat()
        .lines()
        .map(str::to_owned)
        .collect();
    expected.sort();
    assert_eq!(got, expected);
}

/// The daemon's resident memory now, in MiB (VmRSS).
fn rss_mib(daemon: &Daemon) -> f64 {
    std::fs::read_to_string(format!("/proc/{}/status", daemon.child.id()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .expect("VmRSS in /proc/PID/status")
        / 1024.0
}

/// Short-lived files one after another, a stream each (`publish_multi_logs` over per-job
/// logs): the shipper forgets a destination a minute after it was last used, so what it
/// remembers, and its memory, level off instead of growing with every file ever seen.
#[test]
fn short_lived_files_one_after_another_are_forgotten() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    let logs = json!({
        "endpoint_override": fake.url(),
        "force_flush_interval": 1,
        "logs_collected": {"files": {"collect_list": [
            {"file_path": jobs.join("*.log").display().to_string(), "log_group_name": "churn", "log_stream_name": "job", "publish_multi_logs": true}
        ]}}
    });
    let daemon = start(dir.path(), logs, &[]);
    // 30 jobs a second for 100 s, each logging one line and gone two seconds later.
    let per_second = 30;
    let seconds = 100;
    let started = std::time::Instant::now();
    let mut created: std::collections::VecDeque<(std::time::Instant, std::path::PathBuf)> =
        std::collections::VecDeque::new();
    let mut rss = Vec::new();
    for second in 0..seconds {
        for j in 0..per_second {
            let n = second * per_second + j;
            let path = jobs.join(format!("job-{n:06}.log"));
            append(&path, &format!("job {n:06} done\n"));
            created.push_back((std::time::Instant::now(), path));
        }
        while created
            .front()
            .is_some_and(|(at, _)| at.elapsed() >= std::time::Duration::from_secs(2))
        {
            let (_, path) = created.pop_front().unwrap();
            std::fs::remove_file(path).unwrap();
        }
        if second == 75 || second == seconds - 1 {
            rss.push(rss_mib(&daemon));
        }
        // The jobs' own pace, in real time.
        let next = started + std::time::Duration::from_secs(second as u64 + 1);
        std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
    }
    let total = per_second * seconds;
    eventually("every job's line", || {
        (fake.group_events("churn").len() >= total).then_some(())
    });
    let state = dir.path().join("state");
    let report = eventually("a status written after the last job", || {
        let status = common::status_json(&state);
        (status["logs"]["events_shipped"].as_u64() >= Some(total as u64)).then_some(status)
    });
    let (_, _) = daemon.stop("TERM");
    assert_eq!(fake.group_events("churn").len(), total);
    let remembered = report["logs"]["destinations"].as_u64().unwrap();
    eprintln!(
        "{total} streams, {remembered} remembered at the end; RSS {:.1} MiB after 75 s, {:.1} MiB after {seconds} s",
        rss[0], rss[1]
    );
    // Only the streams of about the last 70 s (a minute idle, then the next sweep) remain.
    assert!(
        remembered <= (per_second * 75) as u64,
        "{remembered} of {total} streams remembered"
    );
    assert!(
        rss[1] - rss[0] < 2.0,
        "RSS grew from {:.1} to {:.1} MiB",
        rss[0],
        rss[1]
    );
}

/// Many streams, each with less than a full batch, more data than the budget, and a long
/// `force_flush_interval`: the batches that hold the whole budget go out as soon as the files
/// wait for room, not when their timer ends. They waited for the timer (here 120 s, the
/// stock default is 5 s), so 40 streams moved one budget per interval. The last round, less
/// than the budget, does wait for its timer, as it should.
#[test]
fn batches_that_hold_the_whole_budget_go_out_without_waiting_for_their_timer() {
    const FILES: usize = 40;
    const BUDGET_MIB: usize = 2;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("streams");
    std::fs::create_dir(&logs).unwrap();
    let pad = "x".repeat(2000);
    let mut written = 0;
    for f in 0..FILES {
        let text: String = (0..100)
            .map(|i| format!("2026-12-05 file {f:02} line {i:03} {pad}\n"))
            .collect();
        written += text.len();
        std::fs::write(logs.join(format!("s{f:02}.log")), text).unwrap();
    }
    assert!(written > (3 * BUDGET_MIB) << 20);
    let daemon = start(
        dir.path(),
        json!({
            "endpoint_override": fake.url(),
            "force_flush_interval": 120,
            "logs_collected": {"files": {"collect_list": [{
                "file_path": format!("{}/*.log", logs.display()),
                "log_group_name": "streams",
                "publish_multi_logs": true,
            }]}}
        }),
        &["--log-buffer-mib", &BUDGET_MIB.to_string()],
    );
    let arrived =
        |fake: &FakeLogs| -> usize { messages(fake, "streams").iter().map(|m| m.len() + 1).sum() };
    // Well within one 120 s interval: all but the last budget's worth.
    eventually("all but the last round", || {
        (arrived(&fake) + (BUDGET_MIB << 20) >= written).then_some(())
    });
    let (exit, stderr) = daemon.stop("TERM");
    assert!(exit.success(), "{stderr:?}");
    let got = messages(&fake, "streams");
    let distinct: std::collections::HashSet<&String> = got.iter().collect();
    assert_eq!(distinct.len(), got.len(), "nothing twice");
}
