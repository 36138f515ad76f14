//! The systemd journal as a source, end to end: real journal files written by systemd's own
//! `systemd-journal-remote`, read by cwlite's journalctl child from a `directory`, delivered to
//! the project's fake endpoint. No journald runs. Covers units, priority, matches, filters,
//! rotation and vacuuming while followed, a journal that appears after the start, journalctl
//! killed, and `kill -9` of cwlite (the cursor moves only after acknowledgement).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use common::Daemon;
use common::fake_logs::{Accepted, FakeLogs};
use serde_json::{Value, json};

const BOOT: &str = "0123456789abcdef0123456789abcdef";

fn journal_remote() -> PathBuf {
    let path = std::env::var("CWLITE_TEST_JOURNAL_REMOTE")
        .unwrap_or_else(|_| "/lib/systemd/systemd-journal-remote".into());
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: install systemd-journal-remote (scripts/test does)"
    );
    path.into()
}

/// One entry to write: its MESSAGE and other fields.
struct Entry<'a> {
    message: String,
    fields: &'a [(&'a str, &'a str)],
}

fn entry<'a>(message: impl Into<String>, fields: &'a [(&'a str, &'a str)]) -> Entry<'a> {
    Entry {
        message: message.into(),
        fields,
    }
}

/// Appends `entries` to `dir/file` (created if missing) through systemd-journal-remote, with
/// now as their time.
fn write_journal(dir: &Path, file: &str, entries: &[Entry<'_>]) {
    static MONOTONIC: AtomicU64 = AtomicU64::new(1_000_000);
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let mut export = String::new();
    for (i, entry) in entries.iter().enumerate() {
        let monotonic = MONOTONIC.fetch_add(1, Ordering::Relaxed);
        export.push_str(&format!(
            "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={monotonic}\n_BOOT_ID={BOOT}\n_HOSTNAME=test-host\nMESSAGE={}\n",
            now_us + i as u64,
            entry.message
        ));
        for (field, value) in entry.fields {
            export.push_str(&format!("{field}={value}\n"));
        }
        export.push('\n');
    }
    let input = dir.join(format!("{file}.export"));
    std::fs::write(&input, export).unwrap();
    let output = std::process::Command::new(journal_remote())
        .arg(format!("--output={}", dir.join(file).display()))
        .arg(&input)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    std::fs::remove_file(input).unwrap();
}

/// Writes entries `"<prefix> <i>"` for `range` to `dir/file`, as an `app.service` at info.
fn write_app(dir: &Path, file: &str, prefix: &str, range: std::ops::Range<usize>) {
    let unit = [("_SYSTEMD_UNIT", "app.service"), ("PRIORITY", "6")];
    let lines = numbered(prefix, range);
    let entries: Vec<Entry<'_>> = lines.iter().map(|m| entry(m.clone(), &unit)).collect();
    write_journal(dir, file, &entries);
}

/// The fake endpoint (with the runtime it runs on), and a scratch directory holding an empty
/// `journal` directory.
fn setup() -> (
    tokio::runtime::Runtime,
    std::sync::Arc<FakeLogs>,
    tempfile::TempDir,
    PathBuf,
) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    (runtime, fake, dir, journal)
}

fn start(dir: &Path, endpoint: &str, entries: Value) -> Daemon {
    let config = json!({
        "agent": {"region": "us-east-1"},
        "logs": {"endpoint_override": endpoint, "force_flush_interval": 1,
                 "logs_collected": {"journald": {"collect_list": entries}}}
    });
    common::start_daemon(dir, &dir.join("state"), &config, "AKIDFAKE")
}

/// The MESSAGE field of each event, after checking the event is the stock `{"body":…}` form.
fn messages(events: &[Accepted]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let parsed: Value = serde_json::from_str(&e.message).unwrap();
            let body = &parsed["body"];
            assert!(body["__CURSOR"].is_string(), "{}", e.message);
            assert!(body.get("__REALTIME_TIMESTAMP").is_none());
            body["MESSAGE"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix} {i}")).collect()
}

/// Polls until `group` holds `count` events, then returns their messages.
fn wait_for(fake: &FakeLogs, group: &str, count: usize) -> Vec<String> {
    common::eventually(&format!("{count} events in {group}"), || {
        let events = fake.events(group, "s");
        (events.len() >= count).then(|| messages(&events))
    })
}

#[test]
fn units_priority_matches_and_filters_select_entries_as_journalctl_and_the_stock_agent_do() {
    let (_runtime, fake, dir, journal) = setup();
    let cron = [("_SYSTEMD_UNIT", "cron.service"), ("PRIORITY", "6")];
    let cron_err = [("_SYSTEMD_UNIT", "cron.service"), ("PRIORITY", "3")];
    let ssh = [
        ("_SYSTEMD_UNIT", "ssh.service"),
        ("PRIORITY", "6"),
        ("_UID", "0"),
    ];
    let kernel = [("_TRANSPORT", "kernel"), ("PRIORITY", "4")];
    let debug = [("_SYSTEMD_UNIT", "cron.service"), ("PRIORITY", "7")];
    write_journal(
        &journal,
        "system.journal",
        &[
            entry("cron ran", &cron),
            entry("cron failed", &cron_err),
            entry("ssh login", &ssh),
            entry("kernel oops", &kernel),
            entry("cron debug", &debug),
            entry("ssh debug line", &ssh),
        ],
    );
    let at = journal.display().to_string();
    let daemon = start(
        dir.path(),
        &fake.url(),
        json!([
            {"log_group_name": "units", "log_stream_name": "s", "directory": at, "start_at": "beginning", "units": ["cron"]},
            {"log_group_name": "errors", "log_stream_name": "s", "directory": at, "start_at": "beginning", "priority": "err"},
            {"log_group_name": "matches", "log_stream_name": "s", "directory": at, "start_at": "beginning",
             "matches": [{"_SYSTEMD_UNIT": "ssh.service", "_UID": "0"}, {"_TRANSPORT": "kernel"}]},
            {"log_group_name": "filtered", "log_stream_name": "s", "directory": at, "start_at": "beginning",
             "filters": [{"type": "exclude", "expression": "debug"}, {"type": "include", "expression": "ssh|kernel"}]},
        ]),
    );
    // `--unit cron` is cron.service; priority info (the default) leaves the debug entry out.
    assert_eq!(wait_for(&fake, "units", 2), ["cron ran", "cron failed"]);
    assert_eq!(wait_for(&fake, "errors", 1), ["cron failed"]);
    assert_eq!(
        wait_for(&fake, "matches", 3),
        ["ssh login", "kernel oops", "ssh debug line"]
    );
    // The filter sees the whole entry: "ssh" matches ssh.service, "debug" the message.
    assert_eq!(wait_for(&fake, "filtered", 2), ["ssh login", "kernel oops"]);
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    let event = &fake.events("units", "s")[0];
    let body: Value = serde_json::from_str(&event.message).unwrap();
    assert_eq!(body["body"]["_SYSTEMD_UNIT"], "cron.service");
    assert_eq!(body["body"]["PRIORITY"], "6");
    assert_eq!(body["body"]["_BOOT_ID"], BOOT);
    let keys: Vec<&String> = body["body"].as_object().unwrap().keys().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "fields sorted, as Go's encoder sorts them");
    assert!(
        fake.events("units", "s").iter().all(|e| !e.emf),
        "journal entries are not EMF"
    );
    for group in ["units", "errors", "matches", "filtered"] {
        assert!(
            fake.events(group, "s").len() <= 3,
            "nothing twice in {group}"
        );
    }
}

#[test]
fn a_journal_that_appears_later_rotates_and_is_vacuumed_while_followed_arrives_whole_and_once() {
    let (_runtime, fake, dir, journal) = setup();
    // Empty at the start, and no cursor: from now on.
    let mut daemon = start(
        dir.path(),
        &fake.url(),
        json!([{"log_group_name": "live", "log_stream_name": "s", "directory": journal.display().to_string()}]),
    );
    daemon.wait_stderr_any("reading the journal");
    let write = |file: &str, range| write_app(&journal, file, "line", range);
    write("system.journal", 0..50);
    wait_for(&fake, "live", 50);
    write("system.journal", 50..100);
    wait_for(&fake, "live", 100);
    // Rotation: journald starts a new file; then vacuuming deletes the old one.
    write("system@2.journal", 100..150);
    wait_for(&fake, "live", 150);
    std::fs::remove_file(journal.join("system.journal")).unwrap();
    write("system@2.journal", 150..200);
    let got = wait_for(&fake, "live", 200);
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    assert_eq!(got, numbered("line", 0..200), "every entry once, in order");
    assert_eq!(fake.events("live", "s").len(), 200);
}

fn journalctl_children(daemon: &Daemon) -> Vec<u32> {
    let pid = daemon.child.id();
    let mut found = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let children =
            std::fs::read_to_string(task.unwrap().path().join("children")).unwrap_or_default();
        for child in children.split_whitespace() {
            let child: u32 = child.parse().unwrap();
            let comm = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
            if comm.trim() == "journalctl" {
                found.push(child);
            }
        }
    }
    found
}

fn cursor_file(state: &Path) -> String {
    std::fs::read_to_string(state.join("journal-state/journald-0")).unwrap_or_default()
}

#[test]
fn journalctl_killed_and_cwlite_killed_lose_nothing_and_repeat_only_what_was_in_flight() {
    let (_runtime, fake, dir, journal) = setup();
    let write = |range| write_app(&journal, "system.journal", "entry", range);
    write(0..100);
    let entries = json!([{"log_group_name": "kept", "log_stream_name": "s",
                          "directory": journal.display().to_string(), "start_at": "beginning"}]);
    let mut daemon = start(dir.path(), &fake.url(), entries.clone());
    wait_for(&fake, "kept", 100);

    // journalctl dies: started again from the last entry read, nothing lost or repeated.
    let children = journalctl_children(&daemon);
    assert_eq!(children.len(), 1, "one journalctl for one entry");
    std::process::Command::new("kill")
        .args(["-9", &children[0].to_string()])
        .status()
        .unwrap();
    daemon.wait_stderr("journalctl ended");
    daemon.wait_stderr("reading the journal");
    write(100..150);
    wait_for(&fake, "kept", 150);

    // The cursor file reaches the last delivered entry, then cwlite is killed.
    let state = dir.path().join("state");
    let last_cursor = {
        let events = fake.events("kept", "s");
        let body: Value = serde_json::from_str(&events.last().unwrap().message).unwrap();
        body["body"]["__CURSOR"].as_str().unwrap().to_owned()
    };
    common::eventually("the delivered cursor on disk", || {
        cursor_file(&state).starts_with(&last_cursor).then_some(())
    });
    daemon.child.kill().unwrap();
    let _ = daemon.child.wait();

    // Written while cwlite is down, and while the endpoint swallows every request: those are
    // in flight when cwlite is killed again, so they may come twice, never zero times.
    write(150..200);
    fake.black_hole(true);
    let mut daemon = start(dir.path(), &fake.url(), entries.clone());
    common::eventually("requests swallowed", || {
        (fake.black_holed() > 0).then_some(())
    });
    daemon.child.kill().unwrap();
    let _ = daemon.child.wait();
    fake.black_hole(false);
    write(200..220);
    let daemon = start(dir.path(), &fake.url(), entries);
    let got = wait_for(&fake, "kept", 220);
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");

    let mut counts: HashMap<&str, usize> = HashMap::new();
    for message in &got {
        *counts.entry(message.as_str()).or_default() += 1;
    }
    for expected in numbered("entry", 0..220) {
        let count = counts.get(expected.as_str()).copied().unwrap_or(0);
        assert!(count >= 1, "{expected} lost");
        let index: usize = expected["entry ".len()..].parse().unwrap();
        if !(150..200).contains(&index) {
            assert_eq!(
                count, 1,
                "{expected} was delivered before a kill or after: once"
            );
        }
    }
}

/// The stock default, from now on: what the journal held at the first start is not sent, and
/// "now" is kept, so entries written while cwlite was stopped before sending anything arrive.
#[test]
fn the_first_start_reads_from_now_and_keeps_that_place_across_a_restart() {
    let (_runtime, fake, dir, journal) = setup();
    let write = |prefix: &str, range| write_app(&journal, "system.journal", prefix, range);
    write("old", 0..20);
    let entries = json!([{"log_group_name": "now", "log_stream_name": "s",
                          "directory": journal.display().to_string()}]);
    let mut daemon = start(dir.path(), &fake.url(), entries.clone());
    daemon.wait_stderr_any("reading the journal");
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    write("while stopped", 0..5);
    let mut daemon = start(dir.path(), &fake.url(), entries);
    daemon.wait_stderr_any("reading the journal");
    write("live", 0..5);
    let got = wait_for(&fake, "now", 10);
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    let mut expected = numbered("while stopped", 0..5);
    expected.extend(numbered("live", 0..5));
    assert_eq!(
        got, expected,
        "nothing from before the first start, nothing lost since"
    );
}
