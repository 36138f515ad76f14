//! The stock agent's measurement allow-list for Linux and each measurement's default unit.
//!
//! Owns the facts of the reference's §1.4 and §3.2: which `<plugin>_<field>` names exist and the
//! CloudWatch unit each is sent with, plus the mapping from a configured `unit` string to a
//! CloudWatch standard unit. Collectors read their field lists from here; nothing here samples
//! the host.

/// The host plugins cwlite collects.
pub const SUPPORTED_PLUGINS: [&str; 9] = [
    "cpu",
    "mem",
    "swap",
    "disk",
    "diskio",
    "net",
    "netstat",
    "processes",
    "procstat",
];

/// Plugins the stock agent accepts on Linux that cwlite does not collect, with what it does instead.
pub const UNSUPPORTED_PLUGINS: [(&str, &str); 7] = [
    ("ethtool", "ethtool metrics are not collected"),
    ("nvidia_gpu", "gpu metrics are not collected"),
    ("jmx", "jmx metrics are not collected"),
    ("otlp", "no otlp receiver is started"),
    ("prometheus", "prometheus targets are not scraped"),
    ("efa", "efa metrics are not collected"),
    (
        "emf",
        "the embedded metric format listener is configured under logs.metrics_collected.emf",
    ),
];

/// The CloudWatch unit a measurement is sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Unit {
    /// `Percent`.
    Percent,
    /// `Bytes`.
    Bytes,
    /// `Count`.
    Count,
    /// `Milliseconds`.
    Milliseconds,
    /// `None`: sent explicitly, as the stock agent does.
    None,
    /// Any other CloudWatch standard unit, by its exact API name.
    Other(&'static str),
}

impl Unit {
    /// The name the PutMetricData API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Percent => "Percent",
            Unit::Bytes => "Bytes",
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::None => "None",
            Unit::Other(name) => name,
        }
    }
}

/// Every CloudWatch StandardUnit name.
pub const STANDARD_UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Reads a configured `unit`: a StandardUnit name (any case) or a common UCUM form (`By`, `ms`,
/// `%`, `s`, `1`). `None` means the stock agent would degrade it to `None` with a warning.
pub fn parse_unit(text: &str) -> Option<Unit> {
    let trimmed = text.trim();
    let ucum = match trimmed {
        "%" => Some("Percent"),
        "By" => Some("Bytes"),
        "kBy" | "KBy" => Some("Kilobytes"),
        "MBy" => Some("Megabytes"),
        "GBy" => Some("Gigabytes"),
        "TBy" => Some("Terabytes"),
        "bit" => Some("Bits"),
        "s" => Some("Seconds"),
        "ms" => Some("Milliseconds"),
        "us" => Some("Microseconds"),
        "1" => Some("Count"),
        "By/s" => Some("Bytes/Second"),
        "bit/s" => Some("Bits/Second"),
        _ => None,
    };
    let name = ucum.or_else(|| {
        STANDARD_UNITS
            .iter()
            .copied()
            .find(|u| u.eq_ignore_ascii_case(trimmed))
    })?;
    Some(match name {
        "Percent" => Unit::Percent,
        "Bytes" => Unit::Bytes,
        "Count" => Unit::Count,
        "Milliseconds" => Unit::Milliseconds,
        "None" => Unit::None,
        other => Unit::Other(other),
    })
}

/// The fields of a supported plugin with their default units, in the stock agent's order.
pub fn fields(plugin: &str) -> &'static [(&'static str, Unit)] {
    use Unit::*;
    match plugin {
        "cpu" => &[
            ("time_active", None),
            ("time_guest", None),
            ("time_guest_nice", None),
            ("time_idle", None),
            ("time_iowait", None),
            ("time_irq", None),
            ("time_nice", None),
            ("time_softirq", None),
            ("time_steal", None),
            ("time_system", None),
            ("time_user", None),
            ("usage_active", Percent),
            ("usage_guest", Percent),
            ("usage_guest_nice", Percent),
            ("usage_idle", Percent),
            ("usage_iowait", Percent),
            ("usage_irq", Percent),
            ("usage_nice", Percent),
            ("usage_softirq", Percent),
            ("usage_steal", Percent),
            ("usage_system", Percent),
            ("usage_user", Percent),
        ],
        "disk" => &[
            ("free", Bytes),
            ("inodes_free", Count),
            ("inodes_total", Count),
            ("inodes_used", Count),
            ("total", Bytes),
            ("used", Bytes),
            ("used_percent", Percent),
        ],
        "diskio" => &[
            ("iops_in_progress", Count),
            ("io_time", Milliseconds),
            ("reads", Count),
            ("read_bytes", Bytes),
            ("read_time", Milliseconds),
            ("writes", Count),
            ("write_bytes", Bytes),
            ("write_time", Milliseconds),
        ],
        "swap" => &[("free", Bytes), ("used", Bytes), ("used_percent", Percent)],
        "mem" => &[
            ("active", Bytes),
            ("available", Bytes),
            ("available_percent", Percent),
            ("buffered", Bytes),
            ("cached", Bytes),
            ("free", Bytes),
            ("inactive", Bytes),
            ("shared", Bytes),
            ("total", Bytes),
            ("used", Bytes),
            ("used_percent", Percent),
        ],
        "net" => &[
            ("bytes_sent", Bytes),
            ("bytes_recv", Bytes),
            ("drop_in", Count),
            ("drop_out", Count),
            ("err_in", Count),
            ("err_out", Count),
            ("packets_sent", Count),
            ("packets_recv", Count),
        ],
        "netstat" => &[
            ("tcp_close", Count),
            ("tcp_close_wait", Count),
            ("tcp_closing", Count),
            ("tcp_established", Count),
            ("tcp_fin_wait1", Count),
            ("tcp_fin_wait2", Count),
            ("tcp_last_ack", Count),
            ("tcp_listen", Count),
            ("tcp_none", Count),
            ("tcp_syn_sent", Count),
            ("tcp_syn_recv", Count),
            ("tcp_time_wait", Count),
            ("udp_socket", Count),
        ],
        "processes" => &[
            ("blocked", Count),
            ("dead", Count),
            ("idle", Count),
            ("paging", Count),
            ("running", Count),
            ("sleeping", Count),
            ("stopped", Count),
            ("total", Count),
            ("total_threads", Count),
            ("wait", Count),
            // The stock unit table has the key `zombie` while the field is `zombies`, so the
            // stock agent sends this one without a unit.
            ("zombies", None),
        ],
        // §1.4's procstat list; units from §3.2 (memory and byte counters in Bytes,
        // cpu_usage in Percent, the rest None). `pid_count` is the lookup's field, sent as
        // `procstat_lookup_pid_count`.
        "procstat" => &[
            ("cpu_time", None),
            ("cpu_time_guest", None),
            ("cpu_time_guest_nice", None),
            ("cpu_time_idle", None),
            ("cpu_time_iowait", None),
            ("cpu_time_irq", None),
            ("cpu_time_nice", None),
            ("cpu_time_soft_irq", None),
            ("cpu_time_steal", None),
            ("cpu_time_stolen", None),
            ("cpu_time_system", None),
            ("cpu_time_user", None),
            ("cpu_usage", Percent),
            ("involuntary_context_switches", None),
            ("memory_data", Bytes),
            ("memory_locked", Bytes),
            ("memory_rss", Bytes),
            ("memory_stack", Bytes),
            ("memory_swap", Bytes),
            ("memory_vms", Bytes),
            ("nice_priority", None),
            ("num_fds", None),
            ("num_threads", None),
            ("pid", None),
            ("read_bytes", Bytes),
            ("read_count", None),
            ("realtime_priority", None),
            ("rlimit_cpu_time_hard", None),
            ("rlimit_cpu_time_soft", None),
            ("rlimit_file_locks_hard", None),
            ("rlimit_file_locks_soft", None),
            ("rlimit_memory_data_hard", Bytes),
            ("rlimit_memory_data_soft", Bytes),
            ("rlimit_memory_locked_hard", Bytes),
            ("rlimit_memory_locked_soft", Bytes),
            ("rlimit_memory_rss_hard", Bytes),
            ("rlimit_memory_rss_soft", Bytes),
            ("rlimit_memory_stack_hard", Bytes),
            ("rlimit_memory_stack_soft", Bytes),
            ("rlimit_memory_vms_hard", Bytes),
            ("rlimit_memory_vms_soft", Bytes),
            ("rlimit_nice_priority_hard", None),
            ("rlimit_nice_priority_soft", None),
            ("rlimit_num_fds_hard", None),
            ("rlimit_num_fds_soft", None),
            ("rlimit_realtime_priority_hard", None),
            ("rlimit_realtime_priority_soft", None),
            ("rlimit_signals_pending_hard", None),
            ("rlimit_signals_pending_soft", None),
            ("signals_pending", None),
            ("voluntary_context_switches", None),
            ("write_bytes", Bytes),
            ("write_count", None),
            ("pid_count", None),
        ],
        _ => &[],
    }
}

/// The diskio measurements of EC2's NVMe driver (EBS volumes and instance store), as the
/// stock agent's `awsnvme` receiver names them (`translator/translate/otel/receiver/awsnvme`,
/// `getEnabledMeasurements`, and the AWS docs on EBS and instance store NVMe metrics), with or
/// without the `diskio_` prefix: accepted, never collected on premises.
pub fn is_ec2_nvme_diskio(name: &str) -> bool {
    const EC2_NVME: &[&str] = &[
        "ebs_total_read_ops",
        "ebs_total_write_ops",
        "ebs_total_read_bytes",
        "ebs_total_write_bytes",
        "ebs_total_read_time",
        "ebs_total_write_time",
        "ebs_volume_performance_exceeded_iops",
        "ebs_volume_performance_exceeded_tp",
        "ebs_ec2_instance_performance_exceeded_iops",
        "ebs_ec2_instance_performance_exceeded_tp",
        "ebs_volume_queue_length",
        "instance_store_total_read_ops",
        "instance_store_total_write_ops",
        "instance_store_total_read_bytes",
        "instance_store_total_write_bytes",
        "instance_store_total_read_time",
        "instance_store_total_write_time",
        "instance_store_performance_exceeded_iops",
        "instance_store_performance_exceeded_tp",
        "instance_store_volume_queue_length",
    ];
    let name = name.trim();
    EC2_NVME.contains(&name.strip_prefix("diskio_").unwrap_or(name))
}

/// Normalises a configured measurement name the way the stock translator does: trims spaces and
/// one leading `<plugin>_`, then looks it up. Returns the short field name and its default unit.
pub fn lookup(plugin: &str, name: &str) -> Option<(&'static str, Unit)> {
    let trimmed = name.trim();
    let prefix = format!("{plugin}_");
    let short = trimmed.strip_prefix(prefix.as_str()).unwrap_or(trimmed);
    fields(plugin)
        .iter()
        .find(|(field, _)| *field == short)
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_prefixed_names_resolve_to_the_same_field() {
        assert_eq!(
            lookup("cpu", "usage_idle"),
            Some(("usage_idle", Unit::Percent))
        );
        assert_eq!(
            lookup("cpu", " cpu_usage_idle "),
            Some(("usage_idle", Unit::Percent))
        );
        assert_eq!(
            lookup("mem", "mem_used_percent"),
            Some(("used_percent", Unit::Percent))
        );
        assert_eq!(lookup("cpu", "usage_foo"), None);
        assert_eq!(lookup("cpu", "mem_used_percent"), None);
    }

    #[test]
    fn only_one_prefix_is_trimmed() {
        // `disk_disk_free` is not `free`: the translator trims one prefix only.
        assert_eq!(lookup("disk", "disk_disk_free"), None);
    }

    #[test]
    fn default_units_follow_the_stock_table() {
        assert_eq!(lookup("diskio", "io_time").unwrap().1, Unit::Milliseconds);
        assert_eq!(lookup("disk", "inodes_free").unwrap().1, Unit::Count);
        assert_eq!(lookup("cpu", "time_user").unwrap().1, Unit::None);
        assert_eq!(lookup("processes", "zombies").unwrap().1, Unit::None);
        assert_eq!(lookup("net", "bytes_recv").unwrap().1, Unit::Bytes);
        assert_eq!(lookup("swap", "used_percent").unwrap().1, Unit::Percent);
    }

    #[test]
    fn the_allow_list_has_the_stock_sizes() {
        let sizes: Vec<usize> = SUPPORTED_PLUGINS.iter().map(|p| fields(p).len()).collect();
        assert_eq!(sizes, [22, 11, 3, 7, 8, 8, 13, 11, 54]);
    }

    #[test]
    fn units_parse_case_insensitively_and_from_ucum() {
        assert_eq!(parse_unit("percent"), Some(Unit::Percent));
        assert_eq!(parse_unit("BYTES"), Some(Unit::Bytes));
        assert_eq!(
            parse_unit("bytes/second"),
            Some(Unit::Other("Bytes/Second"))
        );
        assert_eq!(parse_unit("By"), Some(Unit::Bytes));
        assert_eq!(parse_unit("ms"), Some(Unit::Milliseconds));
        assert_eq!(parse_unit("unit"), None);
    }
}
