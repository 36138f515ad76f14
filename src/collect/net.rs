//! `net`: per-interface traffic from `/proc/net/dev`, sent as per-interval deltas.
//!
//! Without `resources`, only interfaces that are up and not loopback are reported (telegraf's
//! default, read from `/sys/class/net/<if>/flags`); with `resources`, exactly the interfaces whose
//! names match its globs. The tag is `interface`.

use globset::GlobSet;

use super::{CollectError, CounterSeries, Host, Sample, parse_counters, read_path_into};
use crate::config::Resources;

const IFF_UP: u32 = 0x1;
const IFF_LOOPBACK: u32 = 0x8;

/// The `net` plugin.
#[derive(Debug)]
pub struct NetCollector {
    filter: Option<GlobSet>,
    series: CounterSeries,
    buf: String,
    flags_buf: String,
}

impl NetCollector {
    /// A collector for the interfaces `resources` names (or the default set).
    pub fn new(resources: &Resources) -> Self {
        Self {
            filter: super::diskio::name_filter(resources),
            series: CounterSeries::new("interface"),
            buf: String::new(),
            flags_buf: String::new(),
        }
    }

    fn wanted(&mut self, host: &Host, name: &str) -> bool {
        if let Some(filter) = &self.filter {
            return filter.is_match(name);
        }
        let path = host.path("sys/class/net").join(name).join("flags");
        if read_path_into(&path, &mut self.flags_buf).is_err() {
            return false;
        }
        let flags =
            u32::from_str_radix(self.flags_buf.trim().trim_start_matches("0x"), 16).unwrap_or(0);
        flags & IFF_UP != 0 && flags & IFF_LOOPBACK == 0
    }

    /// Samples every selected interface.
    ///
    /// # Errors
    /// `/proc/net/dev` cannot be read.
    pub fn collect(&mut self, host: &Host, out: &mut Vec<Sample>) -> Result<(), CollectError> {
        let mut buf = std::mem::take(&mut self.buf);
        let result = host.read_into("proc/net/dev", &mut buf);
        if result.is_ok() {
            for line in buf.lines().skip(2) {
                let Some((name, counters)) = line.split_once(':') else {
                    continue;
                };
                let name = name.trim();
                if !self.wanted(host, name) {
                    continue;
                }
                let Some(fields) = parse_counters::<16>(counters.split_ascii_whitespace()) else {
                    continue;
                };
                let counters = [
                    ("bytes_recv", fields[0]),
                    ("packets_recv", fields[1]),
                    ("err_in", fields[2]),
                    ("drop_in", fields[3]),
                    ("bytes_sent", fields[8]),
                    ("packets_sent", fields[9]),
                    ("err_out", fields[10]),
                    ("drop_out", fields[11]),
                ];
                self.series.push_deltas(name, &counters, out);
            }
        }
        if result.is_ok() {
            // Interfaces that disappeared are forgotten with their counters.
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

    const HEADER: &str = "Inter-|   Receive                                                |  Transmit\n \
        face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";

    fn dev(lo: u64, eth0: u64, eth1: u64) -> String {
        format!(
            "{HEADER}    lo: {lo} 10 0 0 0 0 0 0 {lo} 10 0 0 0 0 0 0\n  eth0: {eth0} 100 1 2 0 0 0 0 {} 50 3 4 0 0 0 0\n  eth1: {eth1} 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
            eth0 / 2
        )
    }

    fn fixture() -> Fixture {
        let fixture = Fixture::new();
        fixture.write("sys/class/net/lo/flags", "0x9\n");
        fixture.write("sys/class/net/eth0/flags", "0x1003\n");
        fixture.write("sys/class/net/eth1/flags", "0x1002\n");
        fixture
    }

    fn collect(collector: &mut NetCollector, fixture: &Fixture, text: &str) -> Vec<Sample> {
        fixture.write("proc/net/dev", text);
        let mut out = Vec::new();
        collector.collect(&fixture.host(), &mut out).unwrap();
        out
    }

    #[test]
    fn default_is_up_non_loopback_interfaces_as_deltas() {
        let fixture = fixture();
        let mut net = NetCollector::new(&Resources::All);
        assert!(
            collect(&mut net, &fixture, &dev(1000, 5000, 10)).is_empty(),
            "the first sample is dropped"
        );
        let out = collect(&mut net, &fixture, &dev(3000, 8000, 20));
        let eth0 = Some(("interface", "eth0"));
        assert_eq!(value(&out, "bytes_recv", eth0), Some(3000.0));
        assert_eq!(value(&out, "bytes_sent", eth0), Some(1500.0));
        assert_eq!(value(&out, "packets_recv", eth0), Some(0.0));
        assert!(
            out.iter().all(|s| &*s.tags[0].1 == "eth0"),
            "lo is loopback and eth1 is down"
        );
        assert_eq!(out.len(), 8);
    }

    #[test]
    fn resources_select_by_name_without_state_checks() {
        let fixture = fixture();
        let mut net = NetCollector::new(&Resources::Only(vec!["lo".into(), "eth1".into()]));
        collect(&mut net, &fixture, &dev(1000, 5000, 10));
        let out = collect(&mut net, &fixture, &dev(3000, 8000, 20));
        assert_eq!(
            value(&out, "bytes_recv", Some(("interface", "lo"))),
            Some(2000.0)
        );
        assert_eq!(
            value(&out, "bytes_recv", Some(("interface", "eth1"))),
            Some(10.0)
        );
        assert_eq!(value(&out, "bytes_recv", Some(("interface", "eth0"))), None);
    }
}
