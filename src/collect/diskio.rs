//! `diskio`: per-device I/O from `/proc/diskstats`, sent as per-interval deltas.
//!
//! Counters become the increase since the previous sample (the stock `cumulativetodelta` with the
//! first point dropped and a decrease treated as a reset); `iops_in_progress` is a gauge and is
//! sent every time. Bytes are sectors × 512, as gopsutil counts them. The tag is `name`.

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::{CollectError, CounterSeries, Host, Sample, parse_counters};
use crate::config::Resources;

/// `/proc/diskstats` counts 512-byte sectors whatever the device's real sector size.
pub const SECTOR_SIZE: u64 = 512;

/// Builds a matcher for `resources` globs; `None` means every name.
pub fn name_filter(resources: &Resources) -> Option<GlobSet> {
    let Resources::Only(patterns) = resources else {
        return None;
    };
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        // Validation already compiled each pattern; one that fails here is skipped, not fatal.
        if let Ok(glob) = Glob::new(pattern) {
            builder.add(glob);
        }
    }
    builder.build().ok()
}

/// The `diskio` plugin.
#[derive(Debug)]
pub struct DiskioCollector {
    filter: Option<GlobSet>,
    series: CounterSeries,
    buf: String,
}

impl DiskioCollector {
    /// A collector for the devices `resources` names.
    pub fn new(resources: &Resources) -> Self {
        Self {
            filter: name_filter(resources),
            series: CounterSeries::new("name"),
            buf: String::new(),
        }
    }

    /// Samples every device that passes the filter.
    ///
    /// # Errors
    /// `/proc/diskstats` cannot be read.
    pub fn collect(&mut self, host: &Host, out: &mut Vec<Sample>) -> Result<(), CollectError> {
        let mut buf = std::mem::take(&mut self.buf);
        let result = host.read_into("proc/diskstats", &mut buf);
        if result.is_ok() {
            for line in buf.lines() {
                // major minor name, then 11 counters (more on newer kernels, unused here).
                let mut fields = line.split_ascii_whitespace();
                let (Some(_), Some(_), Some(name)) = (fields.next(), fields.next(), fields.next())
                else {
                    continue;
                };
                let Some(counters) = parse_counters::<11>(fields) else {
                    continue;
                };
                if self.filter.as_ref().is_some_and(|f| !f.is_match(name)) {
                    continue;
                }
                let tags = self.series.tags(name);
                out.push(Sample {
                    field: "iops_in_progress",
                    value: counters[8] as f64,
                    tags,
                });
                let deltas = [
                    ("reads", counters[0]),
                    ("read_bytes", counters[2] * SECTOR_SIZE),
                    ("read_time", counters[3]),
                    ("writes", counters[4]),
                    ("write_bytes", counters[6] * SECTOR_SIZE),
                    ("write_time", counters[7]),
                    ("io_time", counters[9]),
                ];
                self.series.push_deltas(name, &deltas, out);
            }
        }
        if result.is_ok() {
            // Devices that disappeared are forgotten with their counters.
            self.series.end_cycle();
        }
        self.buf = buf;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Fixture, value};
    use super::*;

    const FIRST: &str = "   8       0 sda 1000 10 20000 500 2000 20 40000 800 3 1500 2300 0 0 0 0\n\
                         7       0 loop0 5 0 10 0 0 0 0 0 0 0 0\n";
    const SECOND: &str = "   8       0 sda 1100 10 22000 550 2300 20 46000 900 1 1700 2500 0 0 0 0\n\
                          7       0 loop0 5 0 10 0 0 0 0 0 0 0 0\n";

    fn collect(collector: &mut DiskioCollector, fixture: &Fixture, text: &str) -> Vec<Sample> {
        fixture.write("proc/diskstats", text);
        let mut out = Vec::new();
        collector.collect(&fixture.host(), &mut out).unwrap();
        out
    }

    #[test]
    fn counters_are_per_interval_deltas_after_a_dropped_first_sample() {
        let fixture = Fixture::new();
        let mut diskio = DiskioCollector::new(&Resources::All);
        let first = collect(&mut diskio, &fixture, FIRST);
        assert_eq!(value(&first, "reads", Some(("name", "sda"))), None);
        assert_eq!(
            value(&first, "iops_in_progress", Some(("name", "sda"))),
            Some(3.0),
            "a gauge is sent at once"
        );
        let second = collect(&mut diskio, &fixture, SECOND);
        let sda = Some(("name", "sda"));
        assert_eq!(value(&second, "reads", sda), Some(100.0));
        assert_eq!(value(&second, "read_bytes", sda), Some(2000.0 * 512.0));
        assert_eq!(value(&second, "read_time", sda), Some(50.0));
        assert_eq!(value(&second, "writes", sda), Some(300.0));
        assert_eq!(value(&second, "write_bytes", sda), Some(6000.0 * 512.0));
        assert_eq!(value(&second, "write_time", sda), Some(100.0));
        assert_eq!(value(&second, "io_time", sda), Some(200.0));
        assert_eq!(value(&second, "iops_in_progress", sda), Some(1.0));
        assert_eq!(
            value(&second, "reads", Some(("name", "loop0"))),
            Some(0.0),
            "a zero delta is still sent"
        );
    }

    #[test]
    fn a_device_that_disappears_is_forgotten() {
        let fixture = Fixture::new();
        let mut diskio = DiskioCollector::new(&Resources::All);
        collect(&mut diskio, &fixture, FIRST);
        collect(
            &mut diskio,
            &fixture,
            "   8       0 sda 1100 10 22000 550 2300 20 46000 900 1 1700 2500 0 0 0 0\n",
        );
        assert_eq!(diskio.series.len(), 1, "loop0 is gone");
        // Back again: its old counters are not used for a delta.
        let back = collect(&mut diskio, &fixture, SECOND);
        assert_eq!(value(&back, "reads", Some(("name", "loop0"))), None);
        assert_eq!(value(&back, "reads", Some(("name", "sda"))), Some(0.0));
    }

    #[test]
    fn resources_globs_select_devices() {
        let fixture = Fixture::new();
        let mut diskio = DiskioCollector::new(&Resources::Only(vec!["sd*".into()]));
        let out = collect(&mut diskio, &fixture, FIRST);
        assert!(out.iter().all(|s| &*s.tags[0].1 == "sda"));
    }
}
