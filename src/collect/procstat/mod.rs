//! `procstat`: per-process metrics of the processes a `pid_file`, `exe` or `pattern` finds, as
//! telegraf's procstat input (native finder), which the stock agent runs, reports them.
//!
//! Owns one entry's state between cycles: each process's previous cpu time (for `cpu_usage`)
//! and its tag sets. A cycle has three phases: [`ProcstatCollector::find`] (the pids),
//! `sample` (one process's files, only those the configured measurements need) and `lookup`
//! (`pid_count`, sent as 0 when nothing matches). A process that exits between the listing and
//! its reading is skipped quietly. The host's process list is shared with the other entries
//! through [`Host`] (`table`); `proc_files` parses the files. Nothing here names metrics.

pub mod proc_files;
pub mod table;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use self::proc_files::{Limit, Stat};
use self::table::Wanted;
use super::{CollectError, Host, Sample, TagCache, Tags, read_path_into};
use crate::config::ProcessFinder;

/// Which files a cycle reads for each process, from the measurements configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Reads {
    status: bool,
    io: bool,
    fds: bool,
    limits: bool,
    smaps: bool,
    /// Any per-process field at all (an entry may ask for `pid_count` only).
    per_process: bool,
}

impl Reads {
    fn for_fields(fields: &[&str]) -> Self {
        let mut reads = Reads::default();
        for field in fields {
            reads.per_process |= *field != "pid_count";
            match *field {
                "memory_swap" => reads.smaps = true,
                f if f.starts_with("rlimit_") => reads.limits = true,
                f if f.starts_with("memory_")
                    || f.ends_with("context_switches")
                    || f == "signals_pending" =>
                {
                    reads.status = true
                }
                "read_bytes" | "write_bytes" | "read_count" | "write_count" => reads.io = true,
                "num_fds" => reads.fds = true,
                _ => {}
            }
        }
        reads
    }
}

/// A process's cpu time at the previous cycle.
#[derive(Debug, Clone, Copy)]
struct CpuMark {
    start_ticks: u64,
    cpu_total: f64,
    at: Instant,
}

/// One `procstat` entry.
#[derive(Debug)]
pub struct ProcstatCollector {
    finder: ProcessFinder,
    reads: Reads,
    previous: HashMap<u32, CpuMark>,
    tags: TagCache,
    lookup_tags: Tags,
    /// The pids found this cycle, with their command lines when the walk read them.
    pids: Vec<(u32, Option<String>)>,
    buf: String,
    limits: Vec<Limit>,
    path: PathBuf,
}

impl ProcstatCollector {
    /// A collector for `finder`, reading what `fields` (the configured measurements) need.
    pub fn new(finder: ProcessFinder, fields: &[&str]) -> Self {
        let lookup_tags: Tags = vec![
            (finder.dimension(), Arc::from(finder.configured())),
            ("pid_finder", Arc::from("native")),
        ]
        .into();
        Self {
            reads: Reads::for_fields(fields),
            finder,
            previous: HashMap::new(),
            tags: TagCache::default(),
            lookup_tags,
            pids: Vec::new(),
            buf: String::new(),
            limits: Vec::new(),
            path: PathBuf::new(),
        }
    }

    /// Samples every process the entry finds, then its `pid_count`.
    ///
    /// # Errors
    /// The pid file cannot be read or holds no pid; `pid_count` 0 is in `out` all the same.
    pub fn collect(&mut self, host: &Host, out: &mut Vec<Sample>) -> Result<(), CollectError> {
        self.collect_at(host, Instant::now(), out)
    }

    fn collect_at(
        &mut self,
        host: &Host,
        now: Instant,
        out: &mut Vec<Sample>,
    ) -> Result<(), CollectError> {
        let found = self.find(host);
        let mut running = 0u64;
        if self.reads.per_process {
            let pids = std::mem::take(&mut self.pids);
            for (pid, cmdline) in &pids {
                if self.sample(host, *pid, cmdline.as_deref(), now, out) {
                    running += 1;
                }
            }
            self.pids = pids;
            // Processes gone since the last cycle start over if their pid comes back.
            let alive = &self.pids;
            self.previous
                .retain(|pid, _| alive.binary_search_by_key(pid, |(p, _)| *p).is_ok());
            self.tags.end_cycle();
        } else {
            running = self.pids.len() as u64;
        }
        out.push(Sample {
            field: "pid_count",
            value: running as f64,
            tags: self.lookup_tags.clone(),
        });
        found
    }

    /// Fills `self.pids` (sorted) with the processes the entry finds.
    fn find(&mut self, host: &Host) -> Result<(), CollectError> {
        self.pids.clear();
        match &self.finder {
            ProcessFinder::PidFile(file) => {
                let path = host.path_of(file);
                read_path_into(&path, &mut self.buf).map_err(|source| CollectError::Read {
                    path: path.clone(),
                    source,
                })?;
                let pid = self
                    .buf
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| CollectError::Read {
                        path: path.clone(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("no pid in it: {:?}", truncate(self.buf.trim(), 40)),
                        ),
                    })?;
                // A pid file left behind by a process that is gone names nothing.
                if host.path(&format!("proc/{pid}")).exists() {
                    self.pids.push((pid, None));
                }
            }
            ProcessFinder::Exe(regex) => {
                let regex = regex.regex().clone();
                let list = host.process_list(Wanted {
                    exes: true,
                    ..Wanted::default()
                })?;
                // telegraf matches the executable's path (`/proc/<pid>/exe`), unanchored. Where
                // this user may not read it (another user's process, cwlite not being root),
                // the stock agent skips the process; cwlite matches its name instead, which is
                // what the stock documentation promises.
                for listed in &list.processes {
                    let matched = match &listed.exe {
                        Some(path) => regex.is_match(path.as_bytes()),
                        None if listed.exe_denied => self
                            .name(host, listed.pid, None)
                            .is_some_and(|name| regex.is_match(name.as_bytes())),
                        None => false,
                    };
                    if matched {
                        self.pids.push((listed.pid, None));
                    }
                }
            }
            ProcessFinder::Pattern(regex) => {
                let list = host.process_list(Wanted {
                    cmdlines: true,
                    ..Wanted::default()
                })?;
                self.pids.extend(
                    list.processes
                        .iter()
                        .filter(|p| {
                            p.cmdline
                                .as_deref()
                                .is_some_and(|c| regex.regex().is_match(c.as_bytes()))
                        })
                        .map(|p| (p.pid, p.cmdline.clone())),
                );
            }
        }
        Ok(())
    }

    /// gopsutil's `Name` of `pid` from `/proc/<pid>/stat`, completed from the command line
    /// when the kernel cut it at 15 bytes.
    fn name(&mut self, host: &Host, pid: u32, cmdline: Option<&str>) -> Option<String> {
        self.path = host.path("proc");
        self.path.push(pid.to_string());
        self.read("stat")?;
        self.name_from_stat(cmdline)
    }

    /// The name in `self.buf` (a `stat` just read from `self.path`).
    fn name_from_stat(&mut self, cmdline: Option<&str>) -> Option<String> {
        let short = proc_files::stat_name(&self.buf)?.to_owned();
        if short.len() < 15 {
            return Some(short);
        }
        let line = match cmdline {
            Some(line) => line.to_owned(),
            None => {
                self.path.push("cmdline");
                let raw = std::fs::read(&self.path).unwrap_or_default();
                self.path.pop();
                proc_files::cmdline(&raw)
            }
        };
        Some(proc_files::full_name(&short, &line).to_owned())
    }

    /// Samples one process; `false` if it is gone.
    fn sample(
        &mut self,
        host: &Host,
        pid: u32,
        cmdline: Option<&str>,
        now: Instant,
        out: &mut Vec<Sample>,
    ) -> bool {
        self.path = host.path("proc");
        self.path.push(pid.to_string());
        let Some(stat) = self
            .read("stat")
            .and_then(|()| proc_files::parse_stat(&self.buf))
        else {
            return false;
        };
        // gopsutil gives no name to such a process, and telegraf drops it.
        let Some(name) = self.name_from_stat(cmdline).filter(|n| !n.is_empty()) else {
            return false;
        };
        let status = if self.reads.status {
            match self.read("status") {
                Some(()) => proc_files::parse_status(&self.buf),
                None => return false,
            }
        } else {
            proc_files::Status::default()
        };
        // Readable by the process's owner only: without it the fields are left out, as
        // gopsutil's error leaves them out of telegraf's.
        let io = if self.reads.io {
            self.read("io").map(|()| proc_files::parse_io(&self.buf))
        } else {
            None
        };
        let fds = if self.reads.fds {
            self.path.push("fd");
            let count = std::fs::read_dir(&self.path).ok().map(|d| d.count() as u64);
            self.path.pop();
            count
        } else {
            None
        };
        let limits_read = self.reads.limits && self.read("limits").is_some();
        if limits_read {
            proc_files::parse_limits(&self.buf, &mut self.limits);
        }
        let swap = if self.reads.smaps {
            self.read("smaps_rollup")
                .or_else(|| self.read("smaps"))
                .map(|()| proc_files::parse_smaps_swap(&self.buf))
        } else {
            None
        };

        let tags = self.tags.get(&name, || {
            vec![
                (self.finder.dimension(), Arc::from(self.finder.configured())),
                ("process_name", Arc::from(name.as_str())),
            ]
        });
        let mut push = |field: &'static str, value: f64| {
            out.push(Sample {
                field,
                value,
                tags: tags.clone(),
            })
        };
        push("pid", f64::from(pid));
        push("num_threads", stat.threads as f64);
        push("cpu_time", (stat.user + stat.system).trunc());
        push("cpu_time_user", stat.user);
        push("cpu_time_system", stat.system);
        push("cpu_time_iowait", stat.iowait);
        // A process has none of these in gopsutil: telegraf sends them as 0. `cpu_time_stolen`
        // is in the stock allow-list but never sent, so it is not here either.
        for field in [
            "cpu_time_idle",
            "cpu_time_nice",
            "cpu_time_irq",
            "cpu_time_soft_irq",
            "cpu_time_steal",
            "cpu_time_guest",
            "cpu_time_guest_nice",
        ] {
            push(field, 0.0);
        }
        if let Some(usage) = self.cpu_usage(pid, &stat, now) {
            push("cpu_usage", usage);
        }
        // gopsutil reads getpriority(2)'s raw value, 20 - nice.
        push("nice_priority", (20 - stat.nice) as f64);
        push("realtime_priority", stat.realtime_priority as f64);
        if self.reads.status {
            push("memory_rss", status.rss as f64);
            push("memory_vms", status.vms as f64);
            push("memory_data", status.data as f64);
            push("memory_stack", status.stack as f64);
            push("memory_locked", status.locked as f64);
            push("voluntary_context_switches", status.voluntary as f64);
            push("involuntary_context_switches", status.involuntary as f64);
            push("signals_pending", status.signals_pending as f64);
        }
        if let Some(swap) = swap {
            // In KiB, as the stock agent sends it (gopsutil keeps smaps' kB figure), although
            // the unit says Bytes: existing alarms keep their meaning.
            push("memory_swap", (swap / 1024) as f64);
        }
        if let Some(io) = io {
            push("read_count", io.read_count as f64);
            push("write_count", io.write_count as f64);
            push("read_bytes", io.read_bytes as f64);
            push("write_bytes", io.write_bytes as f64);
        }
        if let Some(fds) = fds {
            push("num_fds", fds as f64);
        }
        if limits_read {
            for limit in &self.limits {
                let (soft, hard) = rlimit_fields(limit.resource);
                push(soft, rlimit_value(limit.soft));
                push(hard, rlimit_value(limit.hard));
            }
        }
        true
    }

    /// gopsutil's `Percent(0)`: 100 × cpu seconds used / seconds elapsed since the previous
    /// cycle (above 100 for a process busy on several cores); nothing the first time a process
    /// is seen, as telegraf sends nothing then.
    fn cpu_usage(&mut self, pid: u32, stat: &Stat, now: Instant) -> Option<f64> {
        let mark = CpuMark {
            start_ticks: stat.start_ticks,
            cpu_total: stat.cpu_total(),
            at: now,
        };
        match self.previous.insert(pid, mark) {
            Some(before) if before.start_ticks == stat.start_ticks => {
                let wall = now.duration_since(before.at).as_secs_f64();
                Some(if wall > 0.0 {
                    100.0 * (mark.cpu_total - before.cpu_total).max(0.0) / wall
                } else {
                    0.0
                })
            }
            _ => None,
        }
    }

    /// Reads `/proc/<pid>/<file>` into `self.buf`.
    fn read(&mut self, file: &str) -> Option<()> {
        self.path.push(file);
        let read = read_path_into(&self.path, &mut self.buf).ok();
        self.path.pop();
        read
    }
}

/// The `rlimit_<resource>_soft` and `_hard` field names of a resource.
fn rlimit_fields(resource: &str) -> (&'static str, &'static str) {
    match resource {
        "cpu_time" => ("rlimit_cpu_time_soft", "rlimit_cpu_time_hard"),
        "memory_data" => ("rlimit_memory_data_soft", "rlimit_memory_data_hard"),
        "memory_stack" => ("rlimit_memory_stack_soft", "rlimit_memory_stack_hard"),
        "memory_rss" => ("rlimit_memory_rss_soft", "rlimit_memory_rss_hard"),
        "num_fds" => ("rlimit_num_fds_soft", "rlimit_num_fds_hard"),
        "memory_locked" => ("rlimit_memory_locked_soft", "rlimit_memory_locked_hard"),
        "memory_vms" => ("rlimit_memory_vms_soft", "rlimit_memory_vms_hard"),
        "file_locks" => ("rlimit_file_locks_soft", "rlimit_file_locks_hard"),
        "signals_pending" => ("rlimit_signals_pending_soft", "rlimit_signals_pending_hard"),
        "nice_priority" => ("rlimit_nice_priority_soft", "rlimit_nice_priority_hard"),
        _ => (
            "rlimit_realtime_priority_soft",
            "rlimit_realtime_priority_hard",
        ),
    }
}

/// A limit as the stock agent sends it: `unlimited` (`RLIM_INFINITY`) through Go's
/// `int64(uint64)` conversion is -1.
fn rlimit_value(limit: u64) -> f64 {
    if limit == u64::MAX {
        -1.0
    } else {
        limit as f64
    }
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::fixture::{Fixture, value};
    use super::*;
    use crate::config::go_regex::GoRegex;

    fn stat(pid: u32, name: &str, utime: u64, start: u64) -> String {
        format!(
            "{pid} ({name}) S 1 {pid} {pid} 0 -1 4194560 100 0 0 0 {utime} 50 0 0 20 0 3 0 {start} 1000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 10 0 0\n"
        )
    }

    fn process(fixture: &Fixture, pid: u32, name: &str, cmdline: &str) {
        fixture.write(&format!("proc/{pid}/stat"), &stat(pid, name, 100, 5000));
        fixture.write(&format!("proc/{pid}/cmdline"), &cmdline.replace(' ', "\0"));
        std::os::unix::fs::symlink(
            format!("/usr/sbin/{name}"),
            fixture.dir.path().join(format!("proc/{pid}/exe")),
        )
        .unwrap();
        fixture.write(
            &format!("proc/{pid}/status"),
            "Name:\tx\nShdPnd:\t0000000000000000\nVmSize:\t 2000 kB\nVmLck:\t 0 kB\nVmData:\t 300 kB\nVmStk:\t 132 kB\nVmRSS:\t 1000 kB\nVmSwap:\t 0 kB\nvoluntary_ctxt_switches:\t5\nnonvoluntary_ctxt_switches:\t1\n",
        );
    }

    fn exe(pattern: &str) -> ProcessFinder {
        ProcessFinder::Exe(GoRegex::new(pattern).unwrap())
    }

    fn pid_counts(out: &[Sample]) -> Vec<f64> {
        out.iter()
            .filter(|s| s.field == "pid_count")
            .map(|s| s.value)
            .collect()
    }

    #[test]
    fn exe_matches_the_executables_path_and_each_process_is_a_sample_set() {
        let fixture = Fixture::new();
        process(&fixture, 10, "nginx", "nginx: master process");
        process(&fixture, 11, "nginx", "nginx: worker process");
        process(&fixture, 12, "sshd", "/usr/sbin/sshd -D");
        // The path, not the name: `sbin/` is only in the path.
        let mut collector = ProcstatCollector::new(exe("sbin/nginx"), &["memory_rss", "pid_count"]);
        let mut out = Vec::new();
        collector.collect(&fixture.host(), &mut out).unwrap();
        assert_eq!(pid_counts(&out), [2.0]);
        let rss: Vec<f64> = out
            .iter()
            .filter(|s| s.field == "memory_rss")
            .map(|s| s.value)
            .collect();
        assert_eq!(rss, [1_024_000.0, 1_024_000.0]);
        let tags: Vec<(&str, &str)> = out
            .iter()
            .find(|s| s.field == "memory_rss")
            .unwrap()
            .tags
            .iter()
            .map(|(k, v)| (*k, &**v))
            .collect();
        assert_eq!(tags, [("exe", "sbin/nginx"), ("process_name", "nginx")]);
        let lookup: Vec<(&str, &str)> = out
            .iter()
            .find(|s| s.field == "pid_count")
            .unwrap()
            .tags
            .iter()
            .map(|(k, v)| (*k, &**v))
            .collect();
        assert_eq!(lookup, [("exe", "sbin/nginx"), ("pid_finder", "native")]);
    }

    #[test]
    fn nothing_matching_sends_a_pid_count_of_zero() {
        let fixture = Fixture::new();
        process(&fixture, 12, "sshd", "/usr/sbin/sshd -D");
        let mut collector = ProcstatCollector::new(exe("nginx"), &["cpu_usage", "pid_count"]);
        let mut out = Vec::new();
        collector.collect(&fixture.host(), &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(pid_counts(&out), [0.0]);
    }

    #[test]
    fn pattern_matches_the_command_line_and_long_names_are_completed() {
        let fixture = Fixture::new();
        process(
            &fixture,
            20,
            "java",
            "/usr/bin/java -cp kafka.jar kafka.Kafka",
        );
        process(&fixture, 21, "java", "/usr/bin/java -jar other.jar");
        process(
            &fixture,
            22,
            "kafka-server-st",
            "/opt/kafka/bin/kafka-server-start.sh x",
        );
        let pattern = ProcessFinder::Pattern(GoRegex::new(r"kafka\.Kafka|kafka-server").unwrap());
        let mut collector = ProcstatCollector::new(pattern, &["pid", "pid_count"]);
        let mut out = Vec::new();
        collector.collect(&fixture.host(), &mut out).unwrap();
        assert_eq!(pid_counts(&out), [2.0]);
        let names: Vec<(f64, String)> = out
            .iter()
            .filter(|s| s.field == "pid")
            .map(|s| (s.value, s.tags[1].1.to_string()))
            .collect();
        assert_eq!(
            names,
            [
                (20.0, "java".into()),
                (22.0, "kafka-server-start.sh".into())
            ]
        );
    }

    #[test]
    fn a_missing_or_stale_pid_file_counts_zero_and_a_missing_one_is_an_error() {
        let fixture = Fixture::new();
        process(&fixture, 30, "sshd", "/usr/sbin/sshd -D");
        let finder = ProcessFinder::PidFile("/run/sshd.pid".into());
        let mut collector = ProcstatCollector::new(finder, &["num_threads", "pid_count"]);
        let mut out = Vec::new();
        let err = collector.collect(&fixture.host(), &mut out).unwrap_err();
        assert!(err.to_string().contains("run/sshd.pid"), "{err}");
        assert_eq!(pid_counts(&out), [0.0]);

        fixture.write("run/sshd.pid", "30\n");
        out.clear();
        collector.collect(&fixture.host(), &mut out).unwrap();
        assert_eq!(pid_counts(&out), [1.0]);
        assert_eq!(value(&out, "num_threads", None), Some(3.0));

        // The process is gone; its pid file stayed.
        fixture.write("run/sshd.pid", "31\n");
        out.clear();
        collector.collect(&fixture.host(), &mut out).unwrap();
        assert_eq!(pid_counts(&out), [0.0]);

        fixture.write("run/sshd.pid", "not a pid\n");
        out.clear();
        let err = collector.collect(&fixture.host(), &mut out).unwrap_err();
        assert!(err.to_string().contains("no pid in it"), "{err}");
        assert_eq!(pid_counts(&out), [0.0]);
    }

    #[test]
    fn cpu_usage_is_the_share_of_elapsed_time_and_absent_at_first_sight() {
        let fixture = Fixture::new();
        process(&fixture, 40, "busy", "busy");
        let mut collector = ProcstatCollector::new(exe("busy"), &["cpu_usage"]);
        let start = Instant::now();
        let mut out = Vec::new();
        collector
            .collect_at(&fixture.host(), start, &mut out)
            .unwrap();
        assert_eq!(
            value(&out, "cpu_usage", None),
            None,
            "nothing at first sight"
        );
        // 150 more ticks of user time (1.5 s) over 10 s: 15 %.
        fixture.write("proc/40/stat", &stat(40, "busy", 250, 5000));
        out.clear();
        collector
            .collect_at(&fixture.host(), start + Duration::from_secs(10), &mut out)
            .unwrap();
        assert_eq!(value(&out, "cpu_usage", None), Some(15.0));
        // Another process under the same pid (a later start time) starts over.
        fixture.write("proc/40/stat", &stat(40, "busy", 900, 7000));
        out.clear();
        collector
            .collect_at(&fixture.host(), start + Duration::from_secs(20), &mut out)
            .unwrap();
        assert_eq!(value(&out, "cpu_usage", None), None);
    }

    #[test]
    fn a_process_gone_after_the_listing_is_skipped_quietly() {
        let fixture = Fixture::new();
        process(&fixture, 50, "app", "app");
        process(&fixture, 51, "app", "app");
        let host = fixture.host();
        // The list is taken, then one process exits before it is read.
        host.process_list(Wanted::default()).unwrap();
        std::fs::remove_file(fixture.dir.path().join("proc/51/stat")).unwrap();
        let mut collector = ProcstatCollector::new(exe("app"), &["pid", "pid_count"]);
        let mut out = Vec::new();
        collector.collect(&host, &mut out).unwrap();
        assert_eq!(pid_counts(&out), [1.0]);
        assert_eq!(value(&out, "pid", None), Some(50.0));
    }

    #[test]
    fn only_the_files_the_measurements_need_are_read() {
        assert_eq!(Reads::for_fields(&["pid_count"]), Reads::default());
        let reads = Reads::for_fields(&[
            "memory_swap",
            "rlimit_num_fds_soft",
            "write_bytes",
            "num_fds",
        ]);
        assert!(reads.smaps && reads.limits && reads.io && reads.fds && reads.per_process);
        assert!(!reads.status);
    }
}
