//! The fleet harness: N `cwlite` processes, each tailing its own file, against one fake
//! CloudWatch Logs endpoint that accepts at most a given number of PutLogEvents a second over
//! all of them (an account's quota shared by a fleet) and throttles the rest.
//!
//! ```text
//! cargo bench --bench fleet                          # 40 processes x 20 lines/s for 60 s, cap 10/s
//! cargo bench --bench fleet -- --processes 20 --cap 5 --seconds 40
//! cargo bench --bench fleet -- --cwlite /tmp/cwlite.old   # another build, for comparison
//! cargo bench --bench fleet -- --existing            # the streams exist (a fleet restarting)
//! ```
//!
//! It reports the requests offered and accepted a second while the writers write, the share
//! throttled, the mean events per accepted request, lines lost, and the time from the writers'
//! stop until everything arrived (or the give-up after `--drain-limit` seconds). Under
//! `cargo test` (no `--bench`) it runs a few seconds with four processes, to check that the
//! harness works.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::fake_logs::FakeLogs;
use serde_json::json;

struct Options {
    processes: usize,
    lines_per_second: usize,
    seconds: usize,
    cap: u32,
    drain_limit: Duration,
    cwlite: PathBuf,
    /// The groups and streams exist already (a fleet restarting), rather than being created
    /// by the first requests (a new fleet).
    existing: bool,
}

fn options() -> Options {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let mut options = Options {
        processes: if smoke { 4 } else { 40 },
        lines_per_second: 20,
        seconds: if smoke { 4 } else { 60 },
        cap: if smoke { 2 } else { 10 },
        drain_limit: Duration::from_secs(if smoke { 60 } else { 300 }),
        cwlite: PathBuf::from(env!("CARGO_BIN_EXE_cwlite")),
        existing: std::env::args().any(|a| a == "--existing"),
    };
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let number = |name: &str| value(name).map(|v| v.parse::<usize>().expect(name));
    if let Some(n) = number("--processes") {
        options.processes = n;
    }
    if let Some(n) = number("--lines-per-second") {
        options.lines_per_second = n;
    }
    if let Some(n) = number("--seconds") {
        options.seconds = n;
    }
    if let Some(n) = number("--cap") {
        options.cap = n as u32;
    }
    if let Some(n) = number("--drain-limit") {
        options.drain_limit = Duration::from_secs(n as u64);
    }
    if let Some(path) = value("--cwlite") {
        options.cwlite = PathBuf::from(path);
    }
    options
}

fn main() {
    let options = options();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeLogs::start());
    fake.cap_puts(options.cap);
    let dir = tempfile::tempdir().unwrap();
    if options.existing {
        for i in 0..options.processes {
            fake.create_stream(&format!("fleet-{i}"), "s");
        }
    }
    let mut children = Vec::new();
    let mut files = Vec::new();
    for i in 0..options.processes {
        let home = dir.path().join(format!("host{i}"));
        std::fs::create_dir_all(&home).unwrap();
        let log = home.join("app.log");
        common::append(&log, "");
        let config = json!({
            "agent": {"region": "us-east-1"},
            "logs": {
                "endpoint_override": fake.url(),
                "force_flush_interval": 1,
                "logs_collected": {"files": {"collect_list": [
                    {"file_path": log.display().to_string(), "log_group_name": format!("fleet-{i}"), "log_stream_name": "s"}
                ]}}
            }
        });
        let command =
            common::run_command(&home, &home.join("state"), &config, "AKIDFAKE", "secret");
        let mut real = std::process::Command::new(&options.cwlite);
        real.args(command.get_args())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(home.join("stderr")).unwrap());
        children.push(real.spawn().expect("cwlite starts"));
        files.push(log);
    }
    // Every process has started tailing once its file is registered: give them the moment a
    // start takes, measured rather than guessed.
    for (i, _) in files.iter().enumerate() {
        let stderr = dir.path().join(format!("host{i}/stderr"));
        common::eventually("a process started", || {
            std::fs::read_to_string(&stderr)
                .ok()
                .filter(|s| s.contains("tailing"))
                .map(|_| ())
        });
    }
    let per_tick = options.lines_per_second / 10;
    let ticks = options.seconds * 10;
    let started = Instant::now();
    let before = fake.put_outcomes();
    for tick in 0..ticks {
        for (i, log) in files.iter().enumerate() {
            let text: String = (tick * per_tick..(tick + 1) * per_tick)
                .map(|n| format!("host {i} line {n:07}\n"))
                .collect();
            common::append(log, &text);
        }
        // The writers' own pace, as programs log in real time.
        let next = started + Duration::from_millis(100 * (tick as u64 + 1));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let stopped = Instant::now();
    let during = fake.put_outcomes();
    let expected = ticks * per_tick;
    let complete = |fake: &FakeLogs| {
        (0..options.processes)
            .map(|i| fake.group_events(&format!("fleet-{i}")).len())
            .sum::<usize>()
    };
    let mut drained = None;
    while stopped.elapsed() < options.drain_limit {
        if complete(&fake) >= expected * options.processes {
            drained = Some(stopped.elapsed());
            break;
        }
        // Polling the fake for a state the processes reach on their own schedule.
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = fake.put_outcomes();
    for child in &mut children {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
    }
    for child in &mut children {
        let _ = child.wait();
    }
    let received = complete(&fake);
    let mut lost = 0;
    let mut duplicates = 0;
    for i in 0..options.processes {
        let mut got: Vec<String> = fake
            .group_events(&format!("fleet-{i}"))
            .into_iter()
            .map(|(_, e)| e.message)
            .collect();
        let all = got.len();
        got.sort();
        got.dedup();
        duplicates += all - got.len();
        lost += expected.saturating_sub(got.len());
    }
    let window = stopped.duration_since(started).as_secs_f64();
    let offered = (during.0 - before.0 + during.1 - before.1) as f64 / window;
    let accepted = (during.0 - before.0) as f64 / window;
    let total_accepted = after.0 - before.0;
    let total_throttled = after.1 - before.1;
    let throttled_share = total_throttled as f64 / (total_accepted + total_throttled).max(1) as f64;
    let per_request = received as f64 / total_accepted.max(1) as f64;
    println!(
        "fleet: {} processes x {} lines/s for {} s, cap {}/s, streams {}, {}",
        options.processes,
        options.lines_per_second,
        options.seconds,
        options.cap,
        if options.existing {
            "existing"
        } else {
            "created by the first requests"
        },
        options.cwlite.display()
    );
    println!("| Figure | Value |");
    println!("|---|---|");
    println!("| requests offered while writing | {offered:.1}/s |");
    println!("| requests accepted while writing | {accepted:.1}/s |");
    println!(
        "| throttled, of all requests | {:.1} % ({total_throttled} of {}) |",
        throttled_share * 100.0,
        total_accepted + total_throttled
    );
    println!("| mean events per accepted request | {per_request:.1} |");
    println!(
        "| lines delivered | {received} of {} ({lost} lost, {duplicates} duplicates) |",
        expected * options.processes
    );
    match drained {
        Some(at) => println!(
            "| drained after the writers stopped | {:.1} s |",
            at.as_secs_f64()
        ),
        None => println!(
            "| drained after the writers stopped | not within {} s |",
            options.drain_limit.as_secs()
        ),
    }
    if !std::env::args().any(|a| a == "--bench") {
        assert!(drained.is_some(), "the smoke run delivers everything");
        assert_eq!(lost, 0);
    }
}
