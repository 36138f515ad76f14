//! The end-to-end harness: the release `cwlite` (built by `cargo bench`) as a child process,
//! tailing generated files to the project's fake CloudWatch Logs endpoint over HTTPS, measured
//! from outside through `/proc`.
//!
//! ```text
//! cargo bench --bench e2e                        # every scenario, full size (1 GiB bulk file)
//! cargo bench --bench e2e -- --quick             # smaller inputs, shorter windows
//! cargo bench --bench e2e -- --only bulk,idle    # some: bulk, live, lines, idle, many, metrics, statsd
//! cargo bench --bench e2e -- --readme            # also rewrite the figures in README.md
//! cargo bench --bench e2e -- --against /tmp/cwlite.old --rounds 3   # A/B, runs alternated
//! cargo bench --bench e2e -- --agent 'fluent-bit=fluent-bit -c {dir}/fluent-bit.conf'
//! ```
//!
//! It generates its inputs (syslog-like lines with a realistic length spread and Java stack
//! traces, a tree of many files), starts the fake with TLS (a CA generated here, given to cwlite
//! through `ca_bundle_path`) in digest mode (a count and an order-independent hash sum per group,
//! so a gigabyte is checked for loss and duplicates in constant memory), and measures wall time,
//! MB/s, lines/s, CPU seconds of the agent process (`/proc/<pid>/stat`), peak RSS (`VmHWM`),
//! open descriptors, context switches, and delivery completeness.
//!
//! The same bulk input can be sent by another agent (`--agent NAME=COMMAND`): the command runs
//! through `sh -c` with `{endpoint}`, `{ca}`, `{file}`, `{dir}` and `{group}` replaced, must send
//! the file's lines to group `{group}` of `{endpoint}` (trusting `{ca}`), and is measured the same
//! way, so the stock agent or Fluent Bit can be compared side by side where they are installed.
//! `--against PATH` runs every cwlite scenario with another cwlite binary too (a copy of an
//! earlier build), in turn with this one, `--rounds` times: on a host whose speed drifts by
//! tens of per cent within minutes, only runs alternated in the same minutes tell a change of a
//! few per cent from the drift.
//! Every scenario also runs a baseline in the same run: the same bytes sent by the harness itself
//! as pre-built PutLogEvents bodies through cwlite's own sink (no reading, framing or
//! checkpoints), which is the ceiling of this machine, this TLS stack and this fake.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fake_logs::{Digest, FakeLogs, Record};
use serde_json::json;

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on every Linux target).
const TICKS_PER_SECOND: f64 = 100.0;
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Clone)]
struct Options {
    /// `cargo test` runs bench targets without `--bench`: then a tiny bulk run checks that the
    /// harness still works, in seconds.
    smoke: bool,
    /// The cwlite binaries to measure, in the order each round runs them, and their labels:
    /// this build, then any `--against`.
    cwlites: Vec<(String, PathBuf)>,
    /// The one a scenario runs now.
    cwlite: (String, PathBuf),
    rounds: usize,
    quick: bool,
    only: Option<String>,
    readme: bool,
    agents: Vec<(String, String)>,
}

fn this_cwlite() -> (String, PathBuf) {
    ("cwlite".into(), PathBuf::from(env!("CARGO_BIN_EXE_cwlite")))
}

fn options() -> Options {
    let mut options = Options {
        smoke: !std::env::args().any(|a| a == "--bench"),
        cwlites: vec![this_cwlite()],
        cwlite: this_cwlite(),
        rounds: 1,
        quick: false,
        only: None,
        readme: false,
        agents: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--readme" => options.readme = true,
            "--only" => options.only = args.next(),
            "--against" => {
                if let Some(path) = args.next() {
                    options
                        .cwlites
                        .push((format!("cwlite ({path})"), PathBuf::from(path)));
                }
            }
            "--rounds" => {
                options.rounds = args.next().and_then(|n| n.parse().ok()).unwrap_or(1).max(1)
            }
            "--agent" => {
                if let Some((name, command)) = args
                    .next()
                    .and_then(|a| a.split_once('=').map(|(n, c)| (n.to_owned(), c.to_owned())))
                {
                    options.agents.push((name, command));
                }
            }
            // `cargo bench` passes `--bench`; criterion-style filters are not used here.
            _ => {}
        }
    }
    options
}

/// What was measured of one process.
#[derive(Debug, Clone, Default)]
struct Measured {
    wall: Duration,
    /// When 99 % of the events had arrived, and the fraction that had: the rate of the bulk
    /// of the data, without the last partial batch's `force_flush_interval` wait (by design,
    /// and 1 s of a 128 MiB run's 1.4 s).
    steady: Option<(Duration, f64)>,
    cpu_secs: f64,
    peak_rss_kib: u64,
    rss_kib: u64,
    fds: usize,
    context_switches: u64,
    /// Minor page faults: fresh memory touched for the first time (the kernel zeroes each
    /// page), what an allocator that gives memory back and takes it again costs.
    page_faults: u64,
}

fn proc_cpu_secs(pid: u32) -> f64 {
    stat_cpu_secs(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// User plus system CPU seconds from a `/proc/.../stat` line (of a process or a thread).
fn stat_cpu_secs(stat: &str) -> f64 {
    let fields = common::stat_fields(stat).unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) as f64 / TICKS_PER_SECOND
}

fn proc_status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn proc_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn proc_context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .map(|task| {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|n| n.parse::<u64>().ok())
                })
                .sum::<u64>()
        })
        .sum()
}

fn measure(pid: u32, started: Instant) -> Measured {
    Measured {
        wall: started.elapsed(),
        steady: None,
        cpu_secs: proc_cpu_secs(pid),
        peak_rss_kib: proc_status_kib(pid, "VmHWM:"),
        rss_kib: proc_status_kib(pid, "VmRSS:"),
        fds: proc_fds(pid),
        context_switches: proc_context_switches(pid),
        page_faults: common::minor_page_faults(pid).unwrap_or(0),
    }
}

/// The generated input: syslog-like lines, 40 to 250 bytes, one in fifty a Java exception with
/// an indented stack trace (one multi-line event under the default `^[\S]` rule). Each line
/// starts with its write time to the millisecond, which `timestamp_format` parses, so the fake
/// can tell how long an event took to arrive.
struct Generator {
    rng: fastrand::Rng,
    sequence: u64,
}

impl Generator {
    fn new(seed: u64) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            sequence: 0,
        }
    }

    /// Appends one event's lines to `out` and its message to `digest`.
    fn event(&mut self, now_ms: i64, out: &mut Vec<u8>, digest: &mut Digest) {
        let start = out.len();
        let stamp = jiff::Timestamp::from_millisecond(now_ms)
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M:%S%.3f")
            .to_string();
        self.sequence += 1;
        let seq = self.sequence;
        if self.rng.u8(..50) == 0 {
            let _ = write!(
                out,
                "{stamp} web-01 app[4242]: seq={seq} java.lang.IllegalStateException: order {} not found",
                self.rng.u32(..)
            );
            for depth in 0..self.rng.usize(3..12) {
                let _ = write!(
                    out,
                    "\n    at com.example.orders.Service.method{depth}(Service.java:{})",
                    self.rng.u16(..999)
                );
            }
        } else {
            let _ = write!(
                out,
                "{stamp} web-01 nginx[{}]: seq={seq} GET /api/orders/{} 200 {}ms ",
                self.rng.u16(..),
                self.rng.u32(..),
                self.rng.u8(..)
            );
            let pad = self.rng.usize(0..160);
            out.extend(std::iter::repeat_n(b'x', pad));
        }
        digest.add(std::str::from_utf8(&out[start..]).unwrap());
        out.push(b'\n');
    }
}

/// The number of lines (newlines) in `bytes`.
fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Writes about `bytes` of events to `path`; returns what the endpoint must receive.
fn generate_file(path: &Path, bytes: u64, seed: u64) -> Digest {
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut generator = Generator::new(seed);
    let mut digest = Digest::default();
    let mut chunk = Vec::with_capacity(1 << 20);
    let mut written = 0u64;
    let now = epoch_ms();
    while written < bytes {
        chunk.clear();
        while chunk.len() < 1 << 20 {
            generator.event(now, &mut chunk, &mut digest);
        }
        file.write_all(&chunk).unwrap();
        written += chunk.len() as u64;
    }
    file.flush().unwrap();
    digest
}

struct Setup {
    dir: tempfile::TempDir,
    fake: Arc<FakeLogs>,
    ca: PathBuf,
    credentials: PathBuf,
    common_config: PathBuf,
}

fn setup(runtime: &tokio::runtime::Runtime) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pki = common::test_pki();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let fake = runtime.block_on(FakeLogs::start_with(Some(pki.server), Record::Digest));
    let credentials = common::write_credentials(
        dir.path(),
        &[("AmazonCloudWatchAgent", "AKIDBENCH", "secret")],
    );
    let common_config = common::write_common_config(
        dir.path(),
        &credentials,
        "AmazonCloudWatchAgent",
        &format!("[ssl]\nca_bundle_path = \"{}\"\n", ca.display()),
    );
    Setup {
        dir,
        fake,
        ca,
        credentials,
        common_config,
    }
}

fn logs_entry(file_path: &str, group: &str, multi: bool) -> serde_json::Value {
    json!({
        "file_path": file_path,
        "log_group_name": group,
        "log_stream_name": "bench",
        "timestamp_format": "%Y-%m-%dT%H:%M:%S.%f",
        "timezone": "UTC",
        "publish_multi_logs": multi,
    })
}

fn start_cwlite(options: &Options, setup: &Setup, name: &str, config: &serde_json::Value) -> Child {
    let config_file = common::write_json(setup.dir.path(), &format!("{name}.json"), config);
    Command::new(&options.cwlite.1)
        .arg("run")
        .arg("--config")
        .arg(config_file)
        .arg("--common-config")
        .arg(&setup.common_config)
        .arg("--state-dir")
        .arg(setup.dir.path().join(format!("state-{name}")))
        .args(
            std::env::var("CWLITE_E2E_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .env(
            "RUST_LOG",
            std::env::var("CWLITE_E2E_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {}: {err}", options.cwlite.1.display()))
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

/// Polls until the group holds `expected`; returns the measurement taken when all but the
/// last event had arrived (the last one waits for the 5 s multi-line quiet period, as in the
/// stock agent: only the next line or quiet can tell it is complete), or `None` after `limit`
/// (then prints what arrived).
fn wait_delivered(
    fake: &FakeLogs,
    group: &str,
    expected: &Digest,
    pid: u32,
    started: Instant,
    limit: Duration,
) -> Option<Measured> {
    let mut all_but_last = None;
    let mut steady = None;
    loop {
        let got = fake.digest(group);
        if steady.is_none() && got.events * 100 >= expected.events * 99 {
            steady = Some((
                started.elapsed(),
                got.events as f64 / expected.events.max(1) as f64,
            ));
        }
        if all_but_last.is_none() && got.events + 1 >= expected.events {
            all_but_last = Some(measure(pid, started));
        }
        if got.events >= expected.events {
            let mut measured = all_but_last.unwrap_or_else(|| measure(pid, started));
            measured.steady = steady;
            // Resources over the whole run, time to the bulk of the data.
            let end = measure(pid, started);
            measured.cpu_secs = end.cpu_secs;
            measured.peak_rss_kib = end.peak_rss_kib;
            return Some(measured);
        }
        if started.elapsed() > limit {
            eprintln!(
                "  timed out: {} of {} events arrived",
                got.events, expected.events
            );
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One row of the results.
struct Row {
    scenario: String,
    agent: String,
    figures: Vec<(String, String)>,
    complete: String,
}

fn verdict(expected: &Digest, got: &Digest) -> String {
    if got == expected {
        "every line once".into()
    } else if got.events > expected.events {
        format!("{} extra events (duplicates)", got.events - expected.events)
    } else if got.events < expected.events {
        format!("{} events missing", expected.events - got.events)
    } else {
        "same count, different content".into()
    }
}

/// The bulk file: read a pre-written file to the end and ship it.
fn bulk(options: &Options, runtime: &tokio::runtime::Runtime, rows: &mut Vec<Row>) {
    let size: u64 = if options.smoke {
        2 << 20
    } else if options.quick {
        128 << 20
    } else {
        1 << 30
    };
    let setup = setup(runtime);
    let file = setup.dir.path().join("bulk.log");
    eprintln!("bulk: generating {} MiB", size >> 20);
    let expected = generate_file(&file, size, 7);
    let bytes = std::fs::metadata(&file).unwrap().len();
    let lines = count_lines(&file);
    let mb = bytes as f64 / 1e6;

    // Baseline in the same run: the harness sends the same events through cwlite's own sink.
    let baseline = runtime.block_on(baseline_send(&setup, &file, "baseline"));
    let baseline_mbps = mb / baseline.as_secs_f64();
    let baseline_got = setup.fake.digest("baseline");
    rows.push(Row {
        scenario: "bulk".into(),
        agent: "baseline: pre-framed bodies through cwlite's sink".into(),
        figures: vec![
            ("MB/s".into(), format!("{baseline_mbps:.0}")),
            ("wall s".into(), format!("{:.1}", baseline.as_secs_f64())),
        ],
        complete: verdict(&expected, &baseline_got),
    });

    let mut run = |agent: &str, child: Child, group: &str| {
        let pid = child.id();
        let started = Instant::now();
        let threads = std::thread::spawn(move || thread_profile(pid));
        let measured = wait_delivered(
            &setup.fake,
            group,
            &expected,
            pid,
            started,
            Duration::from_secs(if options.quick { 300 } else { 1200 }),
        );
        stop(child);
        if std::env::var_os("CWLITE_E2E_THREADS").is_some() {
            eprintln!("{}", threads.join().unwrap_or_default());
        }
        let got = setup.fake.digest(group);
        let figures = match measured {
            Some(m) => {
                let (time, fraction) = m.steady.unwrap_or((m.wall, 1.0));
                let mbps = mb * fraction / time.as_secs_f64();
                vec![
                    ("MB/s".into(), format!("{mbps:.0}")),
                    ("x baseline".into(), format!("{:.2}", mbps / baseline_mbps)),
                    (
                        "lines/s".into(),
                        format!("{:.0}", lines as f64 * fraction / time.as_secs_f64()),
                    ),
                    ("all in s".into(), format!("{:.1}", m.wall.as_secs_f64())),
                    (
                        "CPU ms/MB".into(),
                        format!("{:.2}", m.cpu_secs * 1000.0 / mb),
                    ),
                    (
                        "peak RSS MB".into(),
                        format!("{:.1}", m.peak_rss_kib as f64 / 1024.0),
                    ),
                    ("fds".into(), m.fds.to_string()),
                ]
            }
            None => vec![("MB/s".into(), "timed out".into())],
        };
        rows.push(Row {
            scenario: "bulk".into(),
            agent: agent.into(),
            figures,
            complete: verdict(&expected, &got),
        });
    };
    eprintln!(
        "bulk: {}, {} MiB, {lines} lines",
        options.cwlite.0,
        bytes >> 20
    );
    let config = json!({
        "agent": {"region": "us-east-1"},
        "logs": {
            "endpoint_override": setup.fake.url(),
            "force_flush_interval": 1,
            "logs_collected": {"files": {"collect_list": [logs_entry(&file.display().to_string(), "cwlite", false)]}}
        }
    });
    let child = start_cwlite(options, &setup, "bulk", &config);
    run(&options.cwlite.0, child, "cwlite");
    // Other agents run once a round, with this build's turn.
    let agents = if options.cwlite == options.cwlites[0] {
        &options.agents[..]
    } else {
        &[]
    };
    for (name, command) in agents {
        eprintln!("bulk: {name}");
        let command = command
            .replace("{endpoint}", &setup.fake.url())
            .replace("{ca}", &setup.ca.display().to_string())
            .replace("{file}", &file.display().to_string())
            .replace("{dir}", &setup.dir.path().display().to_string())
            .replace("{group}", name);
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {command}"))
            .env("AWS_SHARED_CREDENTIALS_FILE", &setup.credentials)
            .env("AWS_ACCESS_KEY_ID", "AKIDBENCH")
            .env("AWS_SECRET_ACCESS_KEY", "secret")
            .stdout(Stdio::null())
            .spawn()
            .expect("the agent's command");
        run(name, child, name);
    }
}

/// CPU seconds per thread name, sampled until the process ends (`CWLITE_E2E_THREADS=1`
/// prints it: which thread a scenario is bound by).
fn thread_profile(pid: u32) -> String {
    let mut last: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
    while Path::new(&format!("/proc/{pid}/stat")).exists() {
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            let mut now: std::collections::BTreeMap<String, f64> =
                std::collections::BTreeMap::new();
            for task in tasks.flatten() {
                let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
                let tid: u32 = task.file_name().to_string_lossy().parse().unwrap_or(0);
                let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
                *now.entry(format!("{} ({tid})", comm.trim())).or_default() += stat_cpu_secs(&stat);
            }
            if !now.is_empty() {
                last = now;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    last.iter()
        .map(|(name, secs)| format!("  {name}: {secs:.2} s"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn count_lines(path: &Path) -> u64 {
    let data = std::fs::read(path).unwrap();
    memchr::memchr_iter(b'\n', &data).count() as u64
}

/// Sends the file's events as PutLogEvents bodies through cwlite's sink, four calls in flight,
/// with framing and batching done before the clock starts.
async fn baseline_send(setup: &Setup, file: &Path, group: &str) -> Duration {
    use cwlite::ship::cloudwatch_logs::batch::{LogBatch, LogBatcher};
    use cwlite::ship::cloudwatch_logs::sink::{Destination, Format, LogsSink};
    let config_file = common::write_json(
        setup.dir.path(),
        "baseline.json",
        &json!({"agent": {"region": "us-east-1"}, "logs": {"endpoint_override": setup.fake.url(), "logs_collected": {"files": {"collect_list": [logs_entry(&file.display().to_string(), group, false)]}}}}),
    );
    let loaded = cwlite::config::load(
        &[config_file],
        Some(&setup.common_config),
        &cwlite::config::Environment::from_process(),
        cwlite::config::RegionPolicy::Required,
    )
    .unwrap();
    let clients = cwlite::aws::Clients::build(&loaded.config).await.unwrap();
    let sink = LogsSink::CloudWatch {
        client: clients.logs.clone(),
        endpoint: clients.logs_endpoint.clone(),
    };
    let destination = Destination {
        group: group.into(),
        stream: "bench".into(),
        class: None,
        retention_days: None,
    };
    sink.create_stream(
        &destination,
        &cwlite::ship::cloudwatch_logs::rate::Pace::default(),
    )
    .await
    .unwrap();
    let batches: Vec<LogBatch> = {
        let config = &loaded.config.logs.as_ref().unwrap().files[0];
        let mut pipeline = cwlite::tail::events::EventPipeline::new(
            config,
            cwlite::ship::cloudwatch_logs::batch::MAX_EVENT_MESSAGE_BYTES,
        )
        .unwrap();
        let mut reader = cwlite::tail::line_reader::LineReader::new(
            0,
            cwlite::tail::line_reader::DEFAULT_CHUNK_BYTES,
            cwlite::ship::cloudwatch_logs::batch::MAX_EVENT_MESSAGE_BYTES,
        );
        let mut source = std::fs::File::open(file).unwrap();
        let mut batcher = LogBatcher::default();
        let mut outputs = cwlite::tail::events::Outputs::new(1);
        let mut closed = Vec::new();
        let now = Instant::now();
        let now_ms = epoch_ms();
        loop {
            let more = reader.fill(&mut source).unwrap() > 0;
            while let Some(line) = reader.next_line() {
                pipeline.push(line, now, now_ms, &mut outputs);
            }
            if !more {
                pipeline.flush(now_ms, &mut outputs);
            }
            batcher.extend(std::mem::take(&mut outputs.events), &mut closed);
            if !more {
                break;
            }
        }
        closed.extend(batcher.take());
        closed
    };
    let started = Instant::now();
    let sink = Arc::new(sink);
    let destination = Arc::new(destination);
    let batches = Arc::new(std::sync::Mutex::new(batches.into_iter()));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (sink, destination, batches) = (sink.clone(), destination.clone(), batches.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let Some(batch) = batches.lock().unwrap().next() else {
                    break;
                };
                sink.put(&destination, Format::Plain, &batch).await.unwrap();
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    started.elapsed()
}

/// How the live scenarios' writer appends.
#[derive(Debug, Clone, Copy)]
enum Writes {
    /// `bytes_per_sec` in one write(2) every 10 ms: a program that buffers its output.
    Chunks { bytes_per_sec: u64 },
    /// `lines_per_sec` lines, each its own write(2), spread over 1 ms ticks: a program that
    /// logs line by line unbuffered, as many do (every write is an inotify event).
    Lines { lines_per_sec: u64 },
}

/// Live tailing: 10 MB/s appended in 10 ms chunks while cwlite runs.
fn live(options: &Options, runtime: &tokio::runtime::Runtime, rows: &mut Vec<Row>) {
    live_writes(
        options,
        runtime,
        rows,
        Writes::Chunks {
            bytes_per_sec: 10_000_000,
        },
    );
}

/// Live tailing of a program that writes each line on its own.
fn lines(options: &Options, runtime: &tokio::runtime::Runtime, rows: &mut Vec<Row>) {
    live_writes(
        options,
        runtime,
        rows,
        Writes::Lines {
            lines_per_sec: 20_000,
        },
    );
}

fn live_writes(
    options: &Options,
    runtime: &tokio::runtime::Runtime,
    rows: &mut Vec<Row>,
    writes: Writes,
) {
    let setup = setup(runtime);
    let file = setup.dir.path().join("live.log");
    std::fs::write(&file, "").unwrap();
    let seconds = if options.quick { 10 } else { 30 };
    let config = json!({
        "agent": {"region": "us-east-1"},
        "logs": {
            "endpoint_override": setup.fake.url(),
            "force_flush_interval": 1,
            "logs_collected": {"files": {"collect_list": [logs_entry(&file.display().to_string(), "live", false)]}}
        }
    });
    let child = start_cwlite(options, &setup, "live", &config);
    let pid = child.id();
    // Let it start and settle before the clock runs.
    std::thread::sleep(Duration::from_secs(2));
    let before = measure(pid, Instant::now());
    let scenario = match writes {
        Writes::Chunks { bytes_per_sec } => format!("live {} MB/s", bytes_per_sec / 1_000_000),
        Writes::Lines { lines_per_sec } => {
            format!("live {lines_per_sec} lines/s, a write(2) each")
        }
    };
    eprintln!("{scenario} for {seconds} s");
    let mut writer = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    let mut generator = Generator::new(11);
    let mut expected = Digest::default();
    let started = Instant::now();
    let tick = Duration::from_millis(match writes {
        Writes::Chunks { .. } => 10,
        Writes::Lines { .. } => 1,
    });
    let mut chunk = Vec::new();
    let mut next = started;
    let mut written_bytes = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        chunk.clear();
        let now = epoch_ms();
        match writes {
            Writes::Chunks { bytes_per_sec } => {
                let per_tick = bytes_per_sec * tick.as_millis() as u64 / 1000;
                while (chunk.len() as u64) < per_tick {
                    generator.event(now, &mut chunk, &mut expected);
                }
                writer.write_all(&chunk).unwrap();
            }
            Writes::Lines { lines_per_sec } => {
                let mut lines = 0;
                while lines < lines_per_sec * tick.as_millis() as u64 / 1000 {
                    let start = chunk.len();
                    generator.event(now, &mut chunk, &mut expected);
                    lines += newlines(&chunk[start..]);
                }
                // One write(2) per line, as an unbuffered logger does (a stack trace too).
                for line in chunk.split_inclusive(|&b| b == b'\n') {
                    writer.write_all(line).unwrap();
                }
            }
        }
        written_bytes += chunk.len() as u64;
        next += tick;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let written_for = started.elapsed();
    let measured = wait_delivered(
        &setup.fake,
        "live",
        &expected,
        pid,
        started,
        Duration::from_secs(120),
    );
    let after = measure(pid, Instant::now());
    let cpu = after.cpu_secs - before.cpu_secs;
    stop(child);
    let got = setup.fake.digest("live");
    let mut latencies = setup.fake.latencies("live");
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    let mut figures = vec![
        (
            "CPU % of a core".into(),
            format!("{:.1}", cpu / written_for.as_secs_f64() * 100.0),
        ),
        ("median delay ms".into(), percentile(0.5).to_string()),
        ("p99 delay ms".into(), percentile(0.99).to_string()),
        ("flush interval ms".into(), "1000".into()),
        (
            "written MB/s".into(),
            format!(
                "{:.1}",
                written_bytes as f64 / 1e6 / written_for.as_secs_f64()
            ),
        ),
        (
            "context switches/s".into(),
            format!(
                "{:.0}",
                (after.context_switches - before.context_switches) as f64
                    / written_for.as_secs_f64()
            ),
        ),
        (
            "page faults/s".into(),
            format!(
                "{:.0}",
                (after.page_faults - before.page_faults) as f64 / written_for.as_secs_f64()
            ),
        ),
    ];
    if let Some(m) = measured {
        figures.push((
            "peak RSS MB".into(),
            format!("{:.1}", m.peak_rss_kib as f64 / 1024.0),
        ));
    }
    rows.push(Row {
        scenario,
        agent: options.cwlite.0.clone(),
        figures,
        complete: verdict(&expected, &got),
    });
}

/// Idle: the default configuration (cpu, mem, disk every 60 s, one quiet syslog-like file).
fn idle(options: &Options, runtime: &tokio::runtime::Runtime, rows: &mut Vec<Row>) {
    let setup = setup(runtime);
    let file = setup.dir.path().join("syslog");
    let mut expected = Digest::default();
    let mut lines = Vec::new();
    Generator::new(3).event(epoch_ms(), &mut lines, &mut expected);
    std::fs::write(&file, &lines).unwrap();
    let window = Duration::from_secs(if options.quick { 30 } else { 120 });
    let config = json!({
        "agent": {"region": "us-east-1", "metrics_collection_interval": 60},
        "metrics": {
            "endpoint_override": setup.fake.url(),
            "metrics_collected": {
                "cpu": {"measurement": ["cpu_usage_idle", "cpu_usage_iowait", "cpu_usage_user", "cpu_usage_system"], "totalcpu": true},
                "mem": {"measurement": ["mem_used_percent"]},
                "disk": {"measurement": ["used_percent"], "resources": ["*"]}
            }
        },
        "logs": {
            "endpoint_override": setup.fake.url(),
            "logs_collected": {"files": {"collect_list": [logs_entry(&file.display().to_string(), "idle", false)]}}
        }
    });
    let child = start_cwlite(options, &setup, "idle", &config);
    let pid = child.id();
    let started = Instant::now();
    wait_delivered(
        &setup.fake,
        "idle",
        &expected,
        pid,
        started,
        Duration::from_secs(60),
    );
    let before = measure(pid, started);
    std::thread::sleep(window);
    let after = measure(pid, started);
    stop(child);
    let minutes = window.as_secs_f64() / 60.0;
    rows.push(Row {
        scenario: "idle, default config".into(),
        agent: options.cwlite.0.clone(),
        figures: vec![
            (
                "RSS MB".into(),
                format!("{:.1}", after.rss_kib as f64 / 1024.0),
            ),
            (
                "CPU s/min".into(),
                format!("{:.3}", (after.cpu_secs - before.cpu_secs) / minutes),
            ),
            (
                "wake-ups/s".into(),
                format!(
                    "{:.1}",
                    (after.context_switches - before.context_switches) as f64
                        / window.as_secs_f64()
                ),
            ),
            ("fds".into(), after.fds.to_string()),
        ],
        complete: verdict(&expected, &setup.fake.digest("idle")),
    });
}

/// Many files: a glob matching thousands of files, of which a few are active.
/// Many files: a glob over 10,000 files of which five are written, after the same five files
/// alone as the baseline (what the quiet ones add is the difference).
fn many(options: &Options, runtime: &tokio::runtime::Runtime, rows: &mut Vec<Row>) {
    let baseline = many_files(options, runtime, rows, 5, None);
    many_files(
        options,
        runtime,
        rows,
        if options.quick { 2_000 } else { 10_000 },
        Some(baseline),
    );
}

fn many_files(
    options: &Options,
    runtime: &tokio::runtime::Runtime,
    rows: &mut Vec<Row>,
    count: usize,
    baseline_cpu: Option<f64>,
) -> f64 {
    let setup = setup(runtime);
    let root = setup.dir.path().join("many");
    let mut expected = Digest::default();
    let mut generator = Generator::new(5);
    let now = epoch_ms();
    for i in 0..count {
        let dir = root.join(format!("d{:02}", i % 100));
        std::fs::create_dir_all(&dir).unwrap();
        let mut line = Vec::new();
        generator.event(now, &mut line, &mut expected);
        std::fs::write(dir.join(format!("f{i:05}.log")), &line).unwrap();
    }
    let config = json!({
        "agent": {"region": "us-east-1"},
        "logs": {
            "endpoint_override": setup.fake.url(),
            "force_flush_interval": 1,
            "logs_collected": {"files": {"collect_list": [logs_entry(&format!("{}/**/*.log", root.display()), "many", true)]}}
        }
    });
    eprintln!("many: {count} files");
    let child = start_cwlite(options, &setup, "many", &config);
    let pid = child.id();
    let started = Instant::now();
    let caught_up = wait_delivered(
        &setup.fake,
        "many",
        &expected,
        pid,
        started,
        Duration::from_secs(600),
    );
    // Then a few files stay active, one line every 100 ms each; measured in the steady state,
    // after the catch-up's last checkpoints are written.
    let window = Duration::from_secs(if options.quick { 15 } else { 60 });
    std::thread::sleep(Duration::from_secs(3));
    let before = measure(pid, started);
    let active: Vec<PathBuf> = (0..5)
        .map(|i| root.join(format!("d{:02}/f{i:05}.log", i % 100)))
        .collect();
    let until = Instant::now() + window;
    let mut peak_fds = 0;
    while Instant::now() < until {
        for path in &active {
            let mut line = Vec::new();
            generator.event(epoch_ms(), &mut line, &mut expected);
            std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .unwrap()
                .write_all(&line)
                .unwrap();
        }
        peak_fds = peak_fds.max(proc_fds(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = measure(pid, started);
    wait_delivered(
        &setup.fake,
        "many",
        &expected,
        pid,
        started,
        Duration::from_secs(120),
    );
    stop(child);
    let cpu = (after.cpu_secs - before.cpu_secs) / window.as_secs_f64() * 100.0;
    let mut figures = vec![
        (
            "catch-up s".into(),
            caught_up.map_or("timed out".into(), |m| {
                format!("{:.1}", m.wall.as_secs_f64())
            }),
        ),
        ("CPU % of a core".into(), format!("{cpu:.2}")),
    ];
    if let Some(baseline) = baseline_cpu {
        figures.push((
            "quiet files add % of a core".into(),
            format!("{:.2}", cpu - baseline),
        ));
    }
    figures.push(("peak fds".into(), peak_fds.to_string()));
    figures.push((
        "RSS MB".into(),
        format!("{:.1}", after.rss_kib as f64 / 1024.0),
    ));
    rows.push(Row {
        scenario: if count == 5 {
            "5 files, 5 active (baseline)".into()
        } else {
            format!("{count} files, 5 active")
        },
        agent: options.cwlite.0.clone(),
        figures,
        complete: verdict(&expected, &setup.fake.digest("many")),
    });
    cpu
}

/// Metrics only: every host plugin every 10 s.
fn metrics(options: &Options, runtime: &tokio::runtime::Runtime, rows: &mut Vec<Row>) {
    let setup = setup(runtime);
    let window = Duration::from_secs(if options.quick { 30 } else { 120 });
    let config = json!({
        "agent": {"region": "us-east-1", "metrics_collection_interval": 10},
        "metrics": {
            "endpoint_override": setup.fake.url(),
            "force_flush_interval": 10,
            "metrics_collected": {
                "cpu": {"measurement": ["cpu_usage_idle", "cpu_usage_user", "cpu_usage_system"], "totalcpu": true, "resources": ["*"]},
                "mem": {"measurement": ["mem_used_percent", "mem_available"]},
                "disk": {"measurement": ["used_percent", "inodes_free"], "resources": ["*"]},
                "diskio": {"measurement": ["reads", "writes", "read_bytes", "write_bytes"]},
                "net": {"measurement": ["bytes_sent", "bytes_recv"]},
                "swap": {"measurement": ["swap_used_percent"]},
                "netstat": {"measurement": ["tcp_established", "tcp_time_wait"]},
                "processes": {"measurement": ["running", "sleeping", "total"]}
            }
        }
    });
    let child = start_cwlite(options, &setup, "metrics", &config);
    let pid = child.id();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let before = measure(pid, started);
    std::thread::sleep(window);
    let after = measure(pid, started);
    stop(child);
    rows.push(Row {
        scenario: "metrics only, 8 plugins at 10 s".into(),
        agent: options.cwlite.0.clone(),
        figures: vec![
            (
                "RSS MB".into(),
                format!("{:.1}", after.rss_kib as f64 / 1024.0),
            ),
            (
                "CPU s/min".into(),
                format!(
                    "{:.3}",
                    (after.cpu_secs - before.cpu_secs) / (window.as_secs_f64() / 60.0)
                ),
            ),
            (
                "PutMetricData calls".into(),
                setup.fake.metric_calls().to_string(),
            ),
        ],
        complete: "n/a".into(),
    });
}

/// statsd at 50,000 metrics a second, one per datagram (the costliest way clients send), for
/// the window: the listener's CPU and peak RSS (issue 20: at most 10 % of a core and 25 MB),
/// and whether every datagram was parsed (`cwlite status`: received, none dropped or
/// malformed). The baseline, in the same run, is a plain UDP socket in this process receiving
/// the same datagrams: the kernel's and the syscalls' share, which no listener avoids.
fn statsd(options: &Options, runtime: &tokio::runtime::Runtime, rows: &mut Vec<Row>) {
    const RATE: u64 = 50_000;
    let setup = setup(runtime);
    let window = Duration::from_secs(if options.smoke || options.quick {
        10
    } else {
        30
    });
    let port = common::free_udp_port();
    let config = json!({
        "agent": {"region": "us-east-1"},
        "metrics": {
            "endpoint_override": setup.fake.url(),
            "force_flush_interval": 10,
            "metrics_collected": {"statsd": {"service_address": format!("127.0.0.1:{port}")}}
        }
    });
    // 200 series: counters, gauges, timers and sets, half with DataDog tags.
    let lines: Vec<String> = (0..200)
        .map(|i| match i % 4 {
            0 => format!("app.requests.{i}:1|c|#env:prod,route:r{i}"),
            1 => format!("app.queue.{i}:{}|g", i * 3),
            2 => format!("app.latency.{i}:{}|ms|@0.5", 10 + i % 50),
            _ => format!("app.users.{i}:u{}|s|#env:prod", i % 17),
        })
        .collect();
    let send = |to: u16| -> u64 {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let started = Instant::now();
        let mut sent = 0u64;
        while started.elapsed() < window {
            // Paced per millisecond: 50 datagrams each.
            let due = (started.elapsed().as_micros() as u64 * RATE / 1_000_000)
                .min(RATE * window.as_secs());
            while sent < due {
                let line = &lines[(sent % lines.len() as u64) as usize];
                let _ = socket.send_to(line.as_bytes(), ("127.0.0.1", to));
                sent += 1;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        sent
    };

    // The baseline: receiving alone.
    let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let baseline_port = receiver.local_addr().unwrap().port();
    let counting = std::thread::spawn(move || {
        let self_cpu = || {
            stat_cpu_secs(&std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default())
        };
        let before = self_cpu();
        let mut buf = [0u8; 65_536];
        let mut received = 0u64;
        while receiver.recv(&mut buf).is_ok() {
            received += 1;
        }
        (received, self_cpu() - before)
    });
    let baseline_sent = send(baseline_port);
    let (baseline_received, baseline_cpu) = counting.join().unwrap();

    let child = start_cwlite(options, &setup, "statsd", &config);
    let pid = child.id();
    let state = setup.dir.path().join("state-statsd");
    let started = Instant::now();
    // Listening once `status` shows the listener.
    while common::status_json(&state)["metrics"]["statsd"].is_null()
        && started.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = measure(pid, started);
    let sent = send(port);
    // Parsed once the status says so (it is written every few seconds).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut report = common::status_json(&state)["metrics"]["statsd"].clone();
    while report["datagrams"].as_u64().unwrap_or(0) < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        report = common::status_json(&state)["metrics"]["statsd"].clone();
    }
    let after = measure(pid, started);
    stop(child);
    let cpu_share = (after.cpu_secs - before.cpu_secs) / window.as_secs_f64();
    rows.push(Row {
        scenario: format!("statsd, {RATE} metrics/s for {} s", window.as_secs()),
        agent: options.cwlite.0.clone(),
        figures: vec![
            (
                "CPU % of a core".into(),
                format!("{:.1}", cpu_share * 100.0),
            ),
            (
                "peak RSS MB".into(),
                format!("{:.1}", after.peak_rss_kib as f64 / 1024.0),
            ),
            (
                "baseline (receive only) CPU %".into(),
                format!(
                    "{:.1} ({baseline_received} of {baseline_sent} received)",
                    baseline_cpu / window.as_secs_f64() * 100.0
                ),
            ),
            (
                "ratio to baseline".into(),
                format!(
                    "{:.2}",
                    cpu_share / (baseline_cpu / window.as_secs_f64()).max(1e-9)
                ),
            ),
        ],
        complete: format!(
            "{} of {sent} datagrams received, {} dropped, {} malformed",
            report["datagrams"], report["dropped_queue_full"], report["malformed"]
        ),
    });
}

fn table(rows: &[Row], options: &Options) -> String {
    let mut out = String::new();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let memory = proc_meminfo_gib();
    let _ = writeln!(
        out,
        "Machine: {cpus} cores ({model}), {memory:.0} GiB; fake endpoint on the same machine, over TLS; {} run.\n",
        if options.smoke {
            "a smoke (cargo test)"
        } else if options.quick {
            "a --quick"
        } else {
            "a full"
        }
    );
    let _ = writeln!(out, "| Scenario | Agent | Figures | Delivery |");
    let _ = writeln!(out, "|---|---|---|---|");
    for row in rows {
        let figures: Vec<String> = row
            .figures
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            row.scenario,
            row.agent,
            figures.join(", "),
            row.complete
        );
    }
    out
}

fn proc_meminfo_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| {
            v.split_whitespace()
                .next()
                .and_then(|n| n.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / MIB)
}

/// Replaces the text between the e2e markers in README.md.
fn write_readme(table: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let (begin, end) = ("<!-- e2e:begin -->", "<!-- e2e:end -->");
    let (Some(a), Some(b)) = (readme.find(begin), readme.find(end)) else {
        eprintln!("README.md has no {begin} … {end} section; not written");
        return;
    };
    let updated = format!("{}{begin}\n{table}{}", &readme[..a], &readme[b..]);
    std::fs::write(path, updated).unwrap();
    eprintln!("README.md updated");
}

fn main() {
    let options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    type Scenario = fn(&Options, &tokio::runtime::Runtime, &mut Vec<Row>);
    let scenarios: [(&str, Scenario); 7] = [
        ("bulk", bulk),
        ("live", live),
        ("lines", lines),
        ("idle", idle),
        ("many", many),
        ("metrics", metrics),
        ("statsd", statsd),
    ];
    for (name, scenario) in scenarios {
        let only = if options.smoke {
            Some("bulk")
        } else {
            options.only.as_deref()
        };
        if only.is_none_or(|only| only.split(',').any(|o| o == name)) {
            for _ in 0..options.rounds {
                for cwlite in &options.cwlites {
                    let options = Options {
                        cwlite: cwlite.clone(),
                        ..options.clone()
                    };
                    scenario(&options, &runtime, &mut rows);
                }
            }
        }
    }
    let table = table(&rows, &options);
    println!("\n{table}");
    if options.smoke {
        // As a test: every row must have delivered every line once.
        assert!(
            rows.iter().all(|r| r.complete == "every line once"),
            "{table}"
        );
        return;
    }
    if options.readme {
        write_readme(&table);
    }
}
