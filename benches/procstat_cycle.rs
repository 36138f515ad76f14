//! One `procstat` cycle of five entries over 1,000 real processes (issue 20: at most 5 ms of
//! CPU). The bench starts 1,000 `sleep` processes, so the walk reads the kernel's real
//! `/proc`, then collects five entries as fleets write them (`typical`):
//! - a `pattern` matching 10 of them (cpu_usage, memory_rss, pid_count);
//! - a `pattern` matching 10 others (memory_rss, num_fds);
//! - a `pid_file` (cpu_usage, memory_rss);
//! - an `exe` and a `pattern` matching nothing (pid_count: the "is it running" alarm).
//!
//! `five_exe_entries` has five `exe` entries (one matching the 1,000 sleeps, for `pid_count`
//! only): the walk reads exe links alone.
//!
//! `one_entry_matching_all` swaps the first for `exe: "sleep"`, matching all 1,000: every
//! process's `stat` and `status` are read then, which bounds what any finder can cost.
//!
//! Each iteration expires the host's process list, so every cycle walks `/proc` once (the
//! entries share it), as a real cycle does. It runs on one thread, so wall time is CPU time. The baseline, in the
//! same run, is `sysinfo` refreshing every process, what a collector built on it would pay.

use std::hint::black_box;
use std::process::{Child, Command};

use criterion::{Criterion, criterion_group, criterion_main};
use cwlite::collect::{Collector, Host};
use cwlite::config::{self, Environment, RegionPolicy};
use serde_json::json;

const PROCESSES: usize = 1000;

struct Sleepers(Vec<Child>);

impl Drop for Sleepers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let sleepers = Sleepers(
        (0..PROCESSES)
            .map(|i| {
                Command::new("sleep")
                    .arg(format!("{}.{i}", 3600 + i % 100))
                    .spawn()
                    .expect("sleep starts")
            })
            .collect(),
    );
    let pid_file = dir.path().join("app.pid");
    std::fs::write(&pid_file, format!("{}\n", sleepers.0[0].id())).unwrap();
    // The collectors of a configuration whose `procstat` is `entries`.
    let load = |entries: serde_json::Value| -> Vec<Collector> {
        let config_path = dir.path().join("config.json");
        std::fs::write(
            &config_path,
            json!({"metrics": {"metrics_collected": {"procstat": entries}}}).to_string(),
        )
        .unwrap();
        let loaded = config::load(
            &[config_path],
            None,
            &Environment::from_process(),
            RegionPolicy::Optional,
        )
        .expect("the bench config loads");
        let plugins = loaded.config.metrics.expect("metrics").plugins;
        plugins.iter().map(Collector::for_plugin).collect()
    };
    let mixed = |first: serde_json::Value| {
        load(json!([
            first,
            {"pattern": "^sleep 3650\\.", "measurement": ["memory_rss", "num_fds"]},
            {"pid_file": pid_file, "measurement": ["cpu_usage", "memory_rss"]},
            {"exe": "nginx", "measurement": ["pid_count"]},
            {"pattern": "java .*kafka", "measurement": ["pid_count"]},
        ]))
    };
    let measurement = json!(["cpu_usage", "memory_rss", "pid_count"]);
    let mut typical = mixed(json!({"pattern": "^sleep 3601\\.", "measurement": measurement}));
    let mut all = mixed(json!({"exe": "sleep", "measurement": measurement}));
    // Entries that all match the executable's path, the most common kind: the walk reads exe
    // links only.
    let mut exes = load(json!([
        {"exe": "sbin/sshd", "measurement": ["cpu_usage", "memory_rss", "pid_count"]},
        {"exe": "nginx", "measurement": ["memory_rss", "pid_count"]},
        {"exe": "bin/java$", "measurement": ["cpu_usage", "pid_count"]},
        {"exe": "postgres", "measurement": ["pid_count"]},
        {"exe": "bin/sleep$", "measurement": ["pid_count"]},
    ]));
    let mut samples = Vec::new();

    let mut group = c.benchmark_group("procstat_cycle_5_entries_1000_processes");
    for (name, collectors) in [
        ("typical", &mut typical),
        ("five_exe_entries", &mut exes),
        ("one_entry_matching_all", &mut all),
    ] {
        let host = Host::real();
        group.bench_function(name, |b| {
            b.iter(|| {
                // A new cycle: one walk, shared by the five entries.
                host.expire_process_list();
                samples.clear();
                for collector in collectors.iter_mut() {
                    let _ = collector.collect(&host, &mut samples);
                }
                black_box(samples.len())
            })
        });
    }
    // The floor of any finder with these entries: every process's exe link and command line
    // read once (`readlink`, and `open`, `read`, `close`), nothing else.
    group.bench_function("floor_read_every_exe_and_cmdline", |b| {
        let mut buf = Vec::new();
        b.iter(|| {
            let mut bytes = 0usize;
            for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                let path = entry.path();
                if !entry
                    .file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|c| c.is_ascii_digit())
                {
                    continue;
                }
                bytes += std::fs::read_link(path.join("exe")).map_or(0, |p| p.as_os_str().len());
                if cwlite::collect::read_bytes_into(&path.join("cmdline"), &mut buf).is_ok() {
                    bytes += buf.len();
                }
            }
            black_box(bytes)
        })
    });
    let mut system = sysinfo::System::new().expect("sysinfo supports this system");
    group.bench_function("baseline_sysinfo_refresh_processes", |b| {
        b.iter(|| {
            system.refresh_processes(sysinfo::ProcessesToUpdate::All, true);
            black_box(system.processes().len())
        })
    });
    group.finish();
    drop(sleepers);
}

criterion_group!(benches, bench);
criterion_main!(benches);
