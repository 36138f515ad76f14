//! `cpu`: `/proc/stat` times, cumulative `time_*` fields and `usage_*` percentages from the
//! difference between two samples, exactly as telegraf's cpu input computes them.
//!
//! Owns the previous sample of each cpu. Guest time is already counted in user time by Linux, so
//! `usage_user` subtracts guest and `usage_nice` subtracts guest_nice, and the total excludes
//! both. The first sample yields only `time_*`; a cycle with no elapsed time yields no usage.

use std::collections::HashMap;
use std::sync::Arc;

use super::{CollectError, Host, Sample, TagCache};

/// Clock ticks per second of `/proc/stat`; gopsutil, and so the stock agent, assume 100.
pub const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// One cpu line of `/proc/stat`, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct CpuTimes {
    user: f64,
    nice: f64,
    system: f64,
    idle: f64,
    iowait: f64,
    irq: f64,
    softirq: f64,
    steal: f64,
    guest: f64,
    guest_nice: f64,
}

impl CpuTimes {
    fn parse(fields: &mut std::str::SplitAsciiWhitespace<'_>) -> Self {
        let mut next = || {
            fields
                .next()
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
                / CLOCK_TICKS_PER_SECOND
        };
        Self {
            user: next(),
            nice: next(),
            system: next(),
            idle: next(),
            iowait: next(),
            irq: next(),
            softirq: next(),
            steal: next(),
            guest: next(),
            guest_nice: next(),
        }
    }

    /// Guest time is inside user time already, so it is not added again.
    fn total(&self) -> f64 {
        self.user
            + self.system
            + self.nice
            + self.iowait
            + self.irq
            + self.softirq
            + self.steal
            + self.idle
    }

    fn active(&self) -> f64 {
        self.total() - self.idle
    }
}

/// The `cpu` plugin's state.
#[derive(Debug)]
pub struct CpuCollector {
    per_cpu: bool,
    total_cpu: bool,
    previous: HashMap<Arc<str>, CpuTimes>,
    tags: TagCache,
    names: HashMap<String, Arc<str>>,
    buf: String,
}

impl CpuCollector {
    /// A collector for per-core series and/or the `cpu-total` series.
    pub fn new(per_cpu: bool, total_cpu: bool) -> Self {
        Self {
            per_cpu,
            total_cpu,
            previous: HashMap::new(),
            tags: TagCache::default(),
            names: HashMap::new(),
            buf: String::new(),
        }
    }

    /// Samples every requested cpu.
    ///
    /// # Errors
    /// `/proc/stat` cannot be read.
    pub fn collect(&mut self, host: &Host, out: &mut Vec<Sample>) -> Result<(), CollectError> {
        let mut buf = std::mem::take(&mut self.buf);
        let result = host.read_into("proc/stat", &mut buf);
        if result.is_ok() {
            for line in buf.lines().filter(|l| l.starts_with("cpu")) {
                let mut fields = line.split_ascii_whitespace();
                let Some(label) = fields.next() else { continue };
                let name = if label == "cpu" {
                    if !self.total_cpu {
                        continue;
                    }
                    "cpu-total"
                } else {
                    if !self.per_cpu {
                        continue;
                    }
                    label
                };
                let times = CpuTimes::parse(&mut fields);
                self.emit(name, times, out);
            }
        }
        self.buf = buf;
        result
    }

    fn emit(&mut self, name: &str, now: CpuTimes, out: &mut Vec<Sample>) {
        let series = match self.names.get(name) {
            Some(series) => series.clone(),
            None => {
                let series: Arc<str> = Arc::from(name);
                self.names.insert(name.to_owned(), series.clone());
                series
            }
        };
        let tags = self.tags.get(name, || vec![("cpu", series.clone())]);
        let mut push = |field: &'static str, value: f64| {
            out.push(Sample {
                field,
                value,
                tags: tags.clone(),
            })
        };
        push("time_user", now.user);
        push("time_system", now.system);
        push("time_idle", now.idle);
        push("time_nice", now.nice);
        push("time_iowait", now.iowait);
        push("time_irq", now.irq);
        push("time_softirq", now.softirq);
        push("time_steal", now.steal);
        push("time_guest", now.guest);
        push("time_guest_nice", now.guest_nice);
        push("time_active", now.active());
        if let Some(last) = self.previous.insert(series, now) {
            let total = now.total() - last.total();
            // No time passed (or the counters went back): no meaningful percentage this cycle.
            if total > 0.0 {
                let percent = |delta: f64| 100.0 * delta / total;
                push(
                    "usage_user",
                    percent(now.user - last.user - (now.guest - last.guest)),
                );
                push("usage_system", percent(now.system - last.system));
                push("usage_idle", percent(now.idle - last.idle));
                push(
                    "usage_nice",
                    percent(now.nice - last.nice - (now.guest_nice - last.guest_nice)),
                );
                push("usage_iowait", percent(now.iowait - last.iowait));
                push("usage_irq", percent(now.irq - last.irq));
                push("usage_softirq", percent(now.softirq - last.softirq));
                push("usage_steal", percent(now.steal - last.steal));
                push("usage_guest", percent(now.guest - last.guest));
                push(
                    "usage_guest_nice",
                    percent(now.guest_nice - last.guest_nice),
                );
                push("usage_active", percent(now.active() - last.active()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Fixture, value};
    use super::*;

    const FIRST: &str = "cpu  1000 200 300 8000 100 10 20 30 400 50\n\
                         cpu0 500 100 150 4000 50 5 10 15 200 25\n\
                         cpu1 500 100 150 4000 50 5 10 15 200 25\n\
                         intr 12345\nctxt 999\n";
    // Deltas for cpu: user +300 (of which guest +100), nice +50 (guest_nice +10), system +100,
    // idle +500, iowait +20, irq +10, softirq +10, steal +10 => total +1000.
    const SECOND: &str = "cpu  1300 250 400 8500 120 20 30 40 500 60\n\
                          cpu0 650 125 200 4250 60 10 15 20 250 30\n\
                          cpu1 650 125 200 4250 60 10 15 20 250 30\n";

    fn collect(collector: &mut CpuCollector, fixture: &Fixture, text: &str) -> Vec<Sample> {
        fixture.write("proc/stat", text);
        let mut out = Vec::new();
        collector.collect(&fixture.host(), &mut out).unwrap();
        out
    }

    #[test]
    fn the_first_sample_has_times_but_no_usage() {
        let fixture = Fixture::new();
        let mut cpu = CpuCollector::new(false, true);
        let out = collect(&mut cpu, &fixture, FIRST);
        assert_eq!(
            value(&out, "time_user", Some(("cpu", "cpu-total"))),
            Some(10.0)
        );
        assert_eq!(value(&out, "time_guest_nice", None), Some(0.5));
        assert_eq!(value(&out, "usage_idle", None), None);
        assert!(
            out.iter().all(|s| &*s.tags[0].1 == "cpu-total"),
            "no per-cpu series without resources"
        );
    }

    #[test]
    fn usage_is_the_share_of_the_delta_with_guest_subtracted() {
        let fixture = Fixture::new();
        let mut cpu = CpuCollector::new(false, true);
        collect(&mut cpu, &fixture, FIRST);
        let out = collect(&mut cpu, &fixture, SECOND);
        let at = |field| value(&out, field, Some(("cpu", "cpu-total"))).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(at("usage_user"), 20.0), "{}", at("usage_user"));
        assert!(close(at("usage_nice"), 4.0));
        assert!(close(at("usage_system"), 10.0));
        assert!(close(at("usage_idle"), 50.0));
        assert!(close(at("usage_iowait"), 2.0));
        assert!(close(at("usage_irq"), 1.0));
        assert!(close(at("usage_softirq"), 1.0));
        assert!(close(at("usage_steal"), 1.0));
        assert!(close(at("usage_guest"), 10.0));
        assert!(close(at("usage_guest_nice"), 1.0));
        assert!(close(at("usage_active"), 50.0));
        assert!(close(
            at("time_active"),
            13.0 + 2.5 + 4.0 + 1.2 + 0.2 + 0.3 + 0.4
        ));
    }

    #[test]
    fn per_core_series_with_resources_star() {
        let fixture = Fixture::new();
        let mut cpu = CpuCollector::new(true, false);
        collect(&mut cpu, &fixture, FIRST);
        let out = collect(&mut cpu, &fixture, SECOND);
        assert!(value(&out, "usage_idle", Some(("cpu", "cpu0"))).is_some());
        assert!(value(&out, "usage_idle", Some(("cpu", "cpu1"))).is_some());
        assert_eq!(value(&out, "usage_idle", Some(("cpu", "cpu-total"))), None);
    }

    #[test]
    fn no_elapsed_time_means_no_usage() {
        let fixture = Fixture::new();
        let mut cpu = CpuCollector::new(false, true);
        collect(&mut cpu, &fixture, FIRST);
        let out = collect(&mut cpu, &fixture, FIRST);
        assert_eq!(value(&out, "usage_idle", None), None);
        assert!(value(&out, "time_idle", None).is_some());
    }
}
