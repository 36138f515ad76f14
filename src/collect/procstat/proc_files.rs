//! Parsers of one process's `/proc/<pid>` files, reading what gopsutil (and so telegraf's
//! procstat, which the stock agent runs) reads from them. Pure functions over text: no file
//! access here.

/// Clock ticks per second of `/proc/<pid>/stat`; gopsutil assumes 100, as for `/proc/stat`.
pub use super::super::cpu::CLOCK_TICKS_PER_SECOND;

/// What `/proc/<pid>/stat` holds that procstat uses.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stat {
    /// `utime`, seconds.
    pub user: f64,
    /// `stime`, seconds.
    pub system: f64,
    /// `delayacct_blkio_ticks`, seconds: gopsutil's process `Iowait`, counted in its total.
    pub iowait: f64,
    /// `nice`.
    pub nice: i64,
    /// `rt_priority`.
    pub realtime_priority: u64,
    /// `num_threads`.
    pub threads: u64,
    /// `starttime`, ticks since boot: with the pid, it names one process across pid reuse.
    pub start_ticks: u64,
}

impl Stat {
    /// gopsutil's `Times().Total()`: user, system and iowait (its other fields are 0 for a
    /// process).
    pub fn cpu_total(&self) -> f64 {
        self.user + self.system + self.iowait
    }
}

/// Parses `/proc/<pid>/stat`. The name may hold spaces and parentheses, so fields are counted
/// from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // After ')': state is field 3 of proc(5); index 0 here.
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let at = |field: usize| fields.get(field - 3).copied();
    let num = |field: usize| at(field).and_then(|f| f.parse::<u64>().ok());
    Some(Stat {
        user: num(14)? as f64 / CLOCK_TICKS_PER_SECOND,
        system: num(15)? as f64 / CLOCK_TICKS_PER_SECOND,
        nice: at(19)?.parse().ok()?,
        threads: num(20)?,
        start_ticks: num(22)?,
        realtime_priority: num(40).unwrap_or(0),
        iowait: num(42).unwrap_or(0) as f64 / CLOCK_TICKS_PER_SECOND,
    })
}

/// The command name in `/proc/<pid>/stat` (at most 15 bytes, as the kernel keeps it).
pub fn stat_name(text: &str) -> Option<&str> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    (open < close).then(|| &text[open + 1..close])
}

/// What `/proc/<pid>/status` holds that procstat uses (memory in bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    /// `VmRSS`.
    pub rss: u64,
    /// `VmSize`.
    pub vms: u64,
    /// `VmData`.
    pub data: u64,
    /// `VmStk`.
    pub stack: u64,
    /// `VmLck`.
    pub locked: u64,
    /// `VmSwap`.
    pub swap: u64,
    /// `voluntary_ctxt_switches`.
    pub voluntary: u64,
    /// `nonvoluntary_ctxt_switches`.
    pub involuntary: u64,
    /// `ShdPnd`, the mask of signals pending for the process, read as a number (gopsutil's
    /// `PendingProcess`).
    pub signals_pending: u64,
}

/// Parses `/proc/<pid>/status`. Kernel threads have no `Vm*` lines: those stay 0.
pub fn parse_status(text: &str) -> Status {
    let mut status = Status::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let kib = || {
            value
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap_or(0)
                * 1024
        };
        match key {
            "VmRSS" => status.rss = kib(),
            "VmSize" => status.vms = kib(),
            "VmData" => status.data = kib(),
            "VmStk" => status.stack = kib(),
            "VmLck" => status.locked = kib(),
            "VmSwap" => status.swap = kib(),
            "voluntary_ctxt_switches" => status.voluntary = value.parse().unwrap_or(0),
            "nonvoluntary_ctxt_switches" => status.involuntary = value.parse().unwrap_or(0),
            "ShdPnd" => status.signals_pending = u64::from_str_radix(value, 16).unwrap_or(0),
            _ => {}
        }
    }
    status
}

/// `/proc/<pid>/io`, which only the process's owner (or root) may read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Io {
    /// `syscr`.
    pub read_count: u64,
    /// `syscw`.
    pub write_count: u64,
    /// `read_bytes`: bytes fetched from storage.
    pub read_bytes: u64,
    /// `write_bytes`.
    pub write_bytes: u64,
}

/// Parses `/proc/<pid>/io`.
pub fn parse_io(text: &str) -> Io {
    let mut io = Io::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().parse().unwrap_or(0);
        match key {
            "syscr" => io.read_count = value,
            "syscw" => io.write_count = value,
            "read_bytes" => io.read_bytes = value,
            "write_bytes" => io.write_bytes = value,
            _ => {}
        }
    }
    io
}

/// One resource limit of `/proc/<pid>/limits`; `unlimited` is `u64::MAX`... as gopsutil reads
/// it (`RLIM_INFINITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The procstat name of the resource (`num_fds`).
    pub resource: &'static str,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// The rows of `/proc/<pid>/limits` procstat reports, named as telegraf names them.
const LIMIT_ROWS: [(&str, &str); 11] = [
    ("Max cpu time", "cpu_time"),
    ("Max data size", "memory_data"),
    ("Max stack size", "memory_stack"),
    ("Max resident set", "memory_rss"),
    ("Max open files", "num_fds"),
    ("Max locked memory", "memory_locked"),
    ("Max address space", "memory_vms"),
    ("Max file locks", "file_locks"),
    ("Max pending signals", "signals_pending"),
    ("Max nice priority", "nice_priority"),
    ("Max realtime priority", "realtime_priority"),
];

/// Parses `/proc/<pid>/limits`: `Limit  Soft Limit  Hard Limit  Units`, columns aligned.
pub fn parse_limits(text: &str, out: &mut Vec<Limit>) {
    out.clear();
    for line in text.lines() {
        let Some((label, resource)) = LIMIT_ROWS.iter().find(|(l, _)| line.starts_with(l)) else {
            continue;
        };
        let mut values = line[label.len()..].split_ascii_whitespace();
        let value = |text: Option<&str>| match text {
            Some("unlimited") => Some(u64::MAX),
            Some(n) => n.parse().ok(),
            None => None,
        };
        if let (Some(soft), Some(hard)) = (value(values.next()), value(values.next())) {
            out.push(Limit {
                resource,
                soft,
                hard,
            });
        }
    }
}

/// The `Swap:` total of `/proc/<pid>/smaps_rollup` (or the sum over `/proc/<pid>/smaps`), in
/// bytes: what gopsutil's grouped `MemoryMaps` gives telegraf's `memory_swap` with the `mmap`
/// property.
pub fn parse_smaps_swap(text: &str) -> u64 {
    text.lines()
        .filter_map(|line| line.strip_prefix("Swap:"))
        .map(|v| {
            v.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap_or(0)
                * 1024
        })
        .sum()
}

/// `/proc/<pid>/cmdline` as gopsutil's `Cmdline`: the non-empty arguments joined by spaces.
pub fn cmdline(raw: &[u8]) -> String {
    let mut line = String::with_capacity(raw.len());
    for arg in raw.split(|b| *b == 0).filter(|a| !a.is_empty()) {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&String::from_utf8_lossy(arg));
    }
    line
}

/// gopsutil's `Name`: the kernel's name, or, when that was cut at 15 bytes, the base name of
/// the first argument if it starts with it.
pub fn full_name<'a>(short: &'a str, cmdline: &'a str) -> &'a str {
    if short.len() < 15 {
        return short;
    }
    let first = cmdline.split(' ').next().unwrap_or("");
    let base = first.rsplit('/').next().unwrap_or(first);
    if base.starts_with(short) { base } else { short }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (my (odd) app) S 1 4242 4242 0 -1 4194560 5000 0 0 0 250 50 0 0 20 -5 7 0 123456 1000000 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 3 0 30 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let stat = parse_stat(STAT).unwrap();
        assert_eq!(stat.user, 2.5);
        assert_eq!(stat.system, 0.5);
        assert_eq!(stat.nice, -5);
        assert_eq!(stat.threads, 7);
        assert_eq!(stat.start_ticks, 123456);
        assert_eq!(stat.realtime_priority, 3);
        assert_eq!(stat.iowait, 0.3);
        assert_eq!(stat.cpu_total(), 3.3);
        assert_eq!(stat_name(STAT), Some("my (odd) app"));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn status_memory_is_in_bytes_and_the_pending_mask_is_hex() {
        let status = parse_status(
            "Name:\tnginx\nShdPnd:\t0000000000000102\nVmSize:\t  10240 kB\nVmLck:\t       4 kB\nVmData:\t    512 kB\nVmStk:\t    132 kB\nVmRSS:\t   2048 kB\nVmSwap:\t      8 kB\nvoluntary_ctxt_switches:\t17\nnonvoluntary_ctxt_switches:\t3\n",
        );
        assert_eq!(status.vms, 10240 * 1024);
        assert_eq!(status.rss, 2048 * 1024);
        assert_eq!(status.data, 512 * 1024);
        assert_eq!(status.stack, 132 * 1024);
        assert_eq!(status.locked, 4096);
        assert_eq!(status.swap, 8192);
        assert_eq!((status.voluntary, status.involuntary), (17, 3));
        assert_eq!(status.signals_pending, 0x102);
    }

    #[test]
    fn io_limits_and_smaps_parse() {
        let io = parse_io(
            "rchar: 900\nwchar: 800\nsyscr: 12\nsyscw: 34\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n",
        );
        assert_eq!(
            io,
            Io {
                read_count: 12,
                write_count: 34,
                read_bytes: 4096,
                write_bytes: 8192
            }
        );
        let mut limits = Vec::new();
        parse_limits(
            "Limit                     Soft Limit           Hard Limit           Units     \nMax cpu time              unlimited            unlimited            seconds   \nMax open files            1024                 524288               files     \nMax nice priority         0                    0                    \nMax core file size        0                    unlimited            bytes     \n",
            &mut limits,
        );
        assert_eq!(
            limits,
            [
                Limit {
                    resource: "cpu_time",
                    soft: u64::MAX,
                    hard: u64::MAX
                },
                Limit {
                    resource: "num_fds",
                    soft: 1024,
                    hard: 524288
                },
                Limit {
                    resource: "nice_priority",
                    soft: 0,
                    hard: 0
                },
            ]
        );
        assert_eq!(
            parse_smaps_swap("Rss: 100 kB\nSwap:  12 kB\nSwapPss: 3 kB\nSwap: 4 kB\n"),
            16 * 1024
        );
    }

    #[test]
    fn names_cut_by_the_kernel_are_completed_from_the_command_line() {
        assert_eq!(
            cmdline(b"/usr/bin/python3\0-m\0app\0"),
            "/usr/bin/python3 -m app"
        );
        assert_eq!(
            cmdline(b"a\0\0b\0"),
            "a b",
            "empty arguments vanish, as in gopsutil"
        );
        assert_eq!(full_name("nginx", "nginx: worker"), "nginx");
        assert_eq!(
            full_name(
                "kafka-server-st",
                "/opt/kafka/bin/kafka-server-start.sh config"
            ),
            "kafka-server-start.sh"
        );
        assert_eq!(full_name("kworker/0:1-eve", ""), "kworker/0:1-eve");
    }
}
