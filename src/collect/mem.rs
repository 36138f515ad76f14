//! `mem` and `swap` from `/proc/meminfo`, with gopsutil's definitions (which the stock agent uses).
//!
//! `cached` is Cached + SReclaimable, `used` is total − free − buffers − cached, and `available`
//! is MemAvailable. Swap `used` is total − free. A host without swap reports zeros, never nothing.

use super::{CollectError, Host, Sample, Tags, no_tags};

/// Which plugin this instance serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Mem,
    Swap,
}

/// The `mem` or `swap` plugin.
#[derive(Debug)]
pub struct MemCollector {
    kind: Kind,
    tags: Tags,
    buf: String,
}

#[derive(Debug, Default)]
struct MemInfo {
    total: u64,
    free: u64,
    available: Option<u64>,
    buffers: u64,
    cached: u64,
    sreclaimable: u64,
    active: u64,
    inactive: u64,
    shmem: u64,
    swap_total: u64,
    swap_free: u64,
}

impl MemInfo {
    fn parse(text: &str) -> Self {
        let mut info = Self::default();
        for line in text.lines() {
            let Some((key, rest)) = line.split_once(':') else {
                continue;
            };
            let kib: u64 = rest
                .split_ascii_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let bytes = kib * 1024;
            match key {
                "MemTotal" => info.total = bytes,
                "MemFree" => info.free = bytes,
                "MemAvailable" => info.available = Some(bytes),
                "Buffers" => info.buffers = bytes,
                "Cached" => info.cached = bytes,
                "SReclaimable" => info.sreclaimable = bytes,
                "Active" => info.active = bytes,
                "Inactive" => info.inactive = bytes,
                "Shmem" => info.shmem = bytes,
                "SwapTotal" => info.swap_total = bytes,
                "SwapFree" => info.swap_free = bytes,
                _ => {}
            }
        }
        info
    }
}

fn percent(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 / total as f64 * 100.0
    }
}

impl MemCollector {
    /// The `mem` plugin.
    pub fn mem() -> Self {
        Self {
            kind: Kind::Mem,
            tags: no_tags(),
            buf: String::new(),
        }
    }

    /// The `swap` plugin.
    pub fn swap() -> Self {
        Self {
            kind: Kind::Swap,
            tags: no_tags(),
            buf: String::new(),
        }
    }

    /// Samples memory or swap.
    ///
    /// # Errors
    /// `/proc/meminfo` cannot be read.
    pub fn collect(&mut self, host: &Host, out: &mut Vec<Sample>) -> Result<(), CollectError> {
        host.read_into("proc/meminfo", &mut self.buf)?;
        let info = MemInfo::parse(&self.buf);
        let mut push = |field: &'static str, value: f64| {
            out.push(Sample {
                field,
                value,
                tags: self.tags.clone(),
            })
        };
        match self.kind {
            Kind::Mem => {
                let cached = info.cached + info.sreclaimable;
                // Old kernels lack MemAvailable; gopsutil then estimates it as free + buffers + cached.
                let available = info.available.unwrap_or(info.free + info.buffers + cached);
                let used = info
                    .total
                    .saturating_sub(info.free)
                    .saturating_sub(info.buffers)
                    .saturating_sub(cached);
                push("total", info.total as f64);
                push("available", available as f64);
                push("used", used as f64);
                push("free", info.free as f64);
                push("cached", cached as f64);
                push("buffered", info.buffers as f64);
                push("active", info.active as f64);
                push("inactive", info.inactive as f64);
                push("shared", info.shmem as f64);
                push("used_percent", percent(used, info.total));
                push("available_percent", percent(available, info.total));
            }
            Kind::Swap => {
                let used = info.swap_total.saturating_sub(info.swap_free);
                push("free", info.swap_free as f64);
                push("used", used as f64);
                push("used_percent", percent(used, info.swap_total));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Fixture, value};
    use super::*;

    const MEMINFO: &str = "MemTotal:       16000000 kB\nMemFree:         2000000 kB\nMemAvailable:    9000000 kB\n\
        Buffers:          500000 kB\nCached:          6000000 kB\nSwapCached:            0 kB\nActive:          7000000 kB\n\
        Inactive:        5000000 kB\nSwapTotal:       4000000 kB\nSwapFree:        3000000 kB\nShmem:            300000 kB\n\
        SReclaimable:     700000 kB\n";

    fn collect(collector: &mut MemCollector, text: &str) -> Vec<Sample> {
        let fixture = Fixture::new();
        fixture.write("proc/meminfo", text);
        let mut out = Vec::new();
        collector.collect(&fixture.host(), &mut out).unwrap();
        out
    }

    #[test]
    fn memory_uses_the_stock_definitions() {
        let out = collect(&mut MemCollector::mem(), MEMINFO);
        let kib = |v: f64| v / 1024.0;
        assert_eq!(
            kib(value(&out, "cached", None).unwrap()),
            6_700_000.0,
            "Cached + SReclaimable"
        );
        assert_eq!(
            kib(value(&out, "used", None).unwrap()),
            16_000_000.0 - 2_000_000.0 - 500_000.0 - 6_700_000.0
        );
        assert_eq!(kib(value(&out, "available", None).unwrap()), 9_000_000.0);
        assert_eq!(kib(value(&out, "buffered", None).unwrap()), 500_000.0);
        assert_eq!(kib(value(&out, "shared", None).unwrap()), 300_000.0);
        let used_percent = value(&out, "used_percent", None).unwrap();
        assert!((used_percent - 6_800_000.0 / 16_000_000.0 * 100.0).abs() < 1e-9);
        assert!((value(&out, "available_percent", None).unwrap() - 56.25).abs() < 1e-9);
    }

    #[test]
    fn swap_used_is_total_minus_free() {
        let out = collect(&mut MemCollector::swap(), MEMINFO);
        assert_eq!(value(&out, "used", None), Some(1_000_000.0 * 1024.0));
        assert_eq!(value(&out, "free", None), Some(3_000_000.0 * 1024.0));
        assert_eq!(value(&out, "used_percent", None), Some(25.0));
    }

    #[test]
    fn a_host_without_swap_reports_zeros() {
        let out = collect(
            &mut MemCollector::swap(),
            "MemTotal: 100 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
        );
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|s| s.value == 0.0));
    }
}
