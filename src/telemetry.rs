//! Self-telemetry: what cwlite is doing, counted where it happens, and the status report.
//!
//! Owns [`Telemetry`], the counters and gauges that the tailer, the shippers, the collectors
//! and the checkpointer update (relaxed atomics, or a small snapshot under a lock that its one
//! writer replaces when it changed: nothing on the hot path blocks or allocates), and
//! [`StatusReport`], the snapshot the daemon writes to `<state-dir>/status.json` for
//! `cwlite status` and summarises for systemd's `STATUS=`. It does not decide anything and
//! knows nothing of AWS or files beyond the names it is given.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::ship::cloudwatch_logs::shipper::LogShipperStats;
use crate::ship::cloudwatch_metrics::PublisherStats;

/// A path as it may be printed in a log line or `cwlite status`: control characters (a
/// newline, ESC, BEL) are escaped as `\n`, `\u{1b}`…, so that a file name cannot forge a log
/// line, a journal priority or a terminal sequence.
pub fn shown(path: &std::path::Path) -> Shown<'_> {
    Shown(path)
}

/// See [`shown`].
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a>(&'a std::path::Path);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        for c in self.0.to_string_lossy().chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// Name of the status file in the state directory.
pub const STATUS_FILE: &str = "status.json";

/// The tailer's counters.
#[derive(Debug, Default)]
pub struct TailerCounters {
    /// Lines framed.
    pub lines_read: AtomicU64,
    /// Bytes of those lines, as read from the files.
    pub bytes_read: AtomicU64,
    /// Events handed on to the shipper.
    pub events_read: AtomicU64,
    /// Events not sent on purpose: filtered out, or empty (CloudWatch refuses empty messages).
    pub events_skipped: AtomicU64,
    /// Files being tailed now.
    pub files_tailed: AtomicU64,
    /// Of those, files holding a descriptor now.
    pub files_open: AtomicU64,
    /// When the tailer's loop last went round (seconds since the epoch): a stuck tailer stops
    /// the watchdog pings.
    pub heartbeat_secs: AtomicU64,
}

/// The collectors' counters.
#[derive(Debug, Default)]
pub struct CollectorCounters {
    /// Collection cycles whose datums were dropped because the publisher's queue was full.
    pub cycles_dropped: AtomicU64,
    /// Values CloudWatch refuses (NaN, infinite), dropped.
    pub values_invalid: AtomicU64,
}

/// A metrics listener's counters (statsd; collectd).
#[derive(Debug, Default)]
pub struct ListenerCounters {
    /// Datagrams received.
    pub datagrams: AtomicU64,
    /// Datagrams dropped because `allowed_pending_messages` were waiting.
    pub dropped_queue_full: AtomicU64,
    /// Lines (statsd) or packets (collectd) that could not be read, dropped.
    pub malformed: AtomicU64,
    /// Values CloudWatch or the aggregation cannot take (negative, out of range), dropped.
    pub values_rejected: AtomicU64,
}

/// The journal readers' counters, over every `journald` entry.
#[derive(Debug, Default)]
pub struct JournalCounters {
    /// Entries read.
    pub entries_read: AtomicU64,
    /// Entries a filter dropped.
    pub entries_filtered: AtomicU64,
    /// Lines that were not entries, dropped.
    pub malformed: AtomicU64,
    /// Times journalctl ended and was started again.
    pub restarts: AtomicU64,
}

/// What the journal counters say in a status report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct JournalReport {
    pub entries_read: u64,
    pub entries_filtered: u64,
    pub malformed: u64,
    pub restarts: u64,
}

/// What a listener's counters say in a status report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ListenerReport {
    pub datagrams: u64,
    pub dropped_queue_full: u64,
    pub malformed: u64,
    pub values_rejected: u64,
}

impl ListenerCounters {
    fn report(&self) -> ListenerReport {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ListenerReport {
            datagrams: load(&self.datagrams),
            dropped_queue_full: load(&self.dropped_queue_full),
            malformed: load(&self.malformed),
            values_rejected: load(&self.values_rejected),
        }
    }
}

/// One tailed file's delivery position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    /// The path (as configured or matched).
    pub path: PathBuf,
    /// Every byte before this offset was delivered.
    pub delivered: u64,
    /// Bytes of the file beyond `delivered` (read or not): how far delivery is behind.
    pub lag_bytes: u64,
    /// An older, rotated-away file of the path being finished.
    pub rotated: bool,
    /// Device and inode of the file, to tell whether the path still names it.
    #[serde(skip)]
    pub inode: Option<(u64, u64)>,
}

/// A destination CloudWatch refuses (see `aws::Disposition::Refused`): its files pause until
/// the refusal is lifted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedDestination {
    /// The log group.
    pub group: String,
    /// The log stream.
    pub stream: String,
    /// The API action refused (`PutLogEvents`, `CreateLogGroup`).
    pub operation: String,
    /// The IAM permission (or key policy) it needs.
    pub permission: String,
    /// CloudWatch's answer.
    pub error: String,
    /// Since when (seconds since the epoch).
    pub since: u64,
}

/// Everything counted, shared by every part.
#[derive(Debug, Default)]
pub struct Telemetry {
    /// The tailer.
    pub tailer: TailerCounters,
    /// The collectors.
    pub collectors: CollectorCounters,
    /// The statsd listener.
    pub statsd: ListenerCounters,
    /// The collectd listener.
    pub collectd: ListenerCounters,
    /// The journal readers.
    pub journal: JournalCounters,
    /// The EMF listeners: documents received (`datagrams`), dropped for want of room (UDP),
    /// invalid JSON (`malformed`), over-long lines (`values_rejected`).
    pub emf: ListenerCounters,
    /// Events waiting between the tailer and the logs shipper.
    pub queued_events: AtomicU64,
    logs: Mutex<LogShipperStats>,
    metrics: Mutex<PublisherStats>,
    metric_spool_bytes: AtomicU64,
    files: Mutex<Vec<FilePosition>>,
    refused: Mutex<Vec<RefusedDestination>>,
    /// What the service's sandbox does to file entries, found at start (`daemon::sandbox`).
    sandbox: Mutex<Vec<String>>,
    /// When the logs shipper last finished a request or had none in flight (seconds since
    /// the epoch): a shipper whose requests hang stops the watchdog pings.
    shipper_progress_secs: AtomicU64,
    /// Where the next report's look at file sizes starts (see [`LAG_STATS_PER_REPORT`]).
    lag_cursor: AtomicUsize,
}

/// Most files whose size one status report looks up with a `stat`; the others keep the size
/// the previous report saw. Every file is looked at in every report up to this many files; a
/// glob over 10,000 files costs 1,000 `stat`s per report instead of 10,000 (which were a sixth
/// of the CPU of such a quiet glob), and each file's lag is then at most ten reports old.
pub const LAG_STATS_PER_REPORT: usize = 1_000;

impl FilePosition {
    /// The order of positions in a report: by path bytes (cheaper to compare than components),
    /// the newest file of a path before its rotated ones.
    pub fn order_key(&self) -> (&[u8], bool) {
        Self::order_key_of(&self.path, self.rotated)
    }

    /// [`FilePosition::order_key`] of a file at `path` not yet made a position (the
    /// checkpointer sorts its files by it once and keeps the order).
    pub fn order_key_of(path: &std::path::Path, rotated: bool) -> (&[u8], bool) {
        (path.as_os_str().as_encoded_bytes(), rotated)
    }
}

impl Telemetry {
    /// Replaces the logs shipper's counters (its only writer).
    pub fn set_logs(&self, stats: LogShipperStats) {
        *self.logs.lock().unwrap_or_else(PoisonError::into_inner) = stats;
    }

    /// Replaces the metric publisher's counters and spool size (its only writer).
    pub fn set_metrics(&self, stats: PublisherStats, spool_bytes: u64) {
        *self.metrics.lock().unwrap_or_else(PoisonError::into_inner) = stats;
        self.metric_spool_bytes
            .store(spool_bytes, Ordering::Relaxed);
    }

    /// Replaces the refused destinations (the logs shipper is the only writer).
    pub fn set_refused(&self, refused: Vec<RefusedDestination>) {
        *self.refused.lock().unwrap_or_else(PoisonError::into_inner) = refused;
    }

    /// Replaces what the sandbox does to file entries (the pipelines' start is the only writer).
    pub fn set_sandbox(&self, findings: Vec<String>) {
        *self.sandbox.lock().unwrap_or_else(PoisonError::into_inner) = findings;
    }

    /// The destinations CloudWatch refuses now.
    pub fn refused(&self) -> Vec<RefusedDestination> {
        self.refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The logs shipper finished a request, or has none in flight.
    pub fn shipper_progressed(&self) {
        self.shipper_progress_secs
            .store(epoch_secs(), Ordering::Relaxed);
    }

    /// Seconds since the logs shipper last progressed (see [`Telemetry::shipper_progressed`]);
    /// `None` before it first did.
    pub fn shipper_idle_secs(&self) -> Option<u64> {
        match self.shipper_progress_secs.load(Ordering::Relaxed) {
            0 => None,
            at => Some(epoch_secs().saturating_sub(at)),
        }
    }

    /// Replaces the delivery positions (the checkpointer is the only writer).
    pub fn set_files(&self, files: Vec<FilePosition>) {
        *self.files.lock().unwrap_or_else(PoisonError::into_inner) = files;
    }

    /// The metric publisher's counters.
    pub fn metrics(&self) -> PublisherStats {
        *self.metrics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The logs shipper's counters.
    pub fn logs(&self) -> LogShipperStats {
        *self.logs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    /// The delivery positions, each with how far the file at its path has grown beyond it
    /// (when the path still names that file; a rotated file's lag is not known by path).
    /// At most [`LAG_STATS_PER_REPORT`] files are looked up, taking turns; a file not looked
    /// up keeps the size `previous` saw of it.
    fn positions_with_lag(&self, previous: Option<&StatusReport>) -> Vec<FilePosition> {
        use std::os::unix::fs::MetadataExt;
        let mut files = self
            .files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let count = files.len();
        let first = self.lag_cursor.load(Ordering::Relaxed) % count.max(1);
        self.lag_cursor
            .store(first + LAG_STATS_PER_REPORT, Ordering::Relaxed);
        let previous = previous.map_or(&[][..], |p| &p.logs.files[..]);
        for (i, file) in files.iter_mut().enumerate() {
            let turn = (i + count - first) % count < LAG_STATS_PER_REPORT;
            let seen = || {
                let at = previous
                    .binary_search_by(|p| p.order_key().cmp(&file.order_key()))
                    .ok()?;
                let seen = &previous[at];
                (seen.inode == file.inode).then_some(seen.delivered + seen.lag_bytes)
            };
            let looked_up = || {
                std::fs::metadata(&file.path)
                    .ok()
                    .filter(|meta| Some((meta.dev(), meta.ino())) == file.inode)
                    .map(|meta| meta.len())
            };
            let size = if turn { None } else { seen() }.or_else(looked_up);
            if let Some(size) = size {
                file.lag_bytes = size.saturating_sub(file.delivered);
            }
        }
        files
    }

    /// A snapshot for the status file.
    /// `previous` is the report before this one (file sizes not looked up again come from it).
    pub fn report(
        &self,
        pid: u32,
        started_at: u64,
        now: u64,
        queue: QueueReport,
        previous: Option<&StatusReport>,
    ) -> StatusReport {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let logs = self.logs();
        let metrics = *self.metrics.lock().unwrap_or_else(PoisonError::into_inner);
        StatusReport {
            pid,
            started_at,
            updated_at: now,
            logs: LogsReport {
                files_tailed: load(&self.tailer.files_tailed),
                files_open: load(&self.tailer.files_open),
                lines_read: load(&self.tailer.lines_read),
                bytes_read: load(&self.tailer.bytes_read),
                events_read: load(&self.tailer.events_read),
                events_skipped: load(&self.tailer.events_skipped),
                events_shipped: logs.events_sent,
                bytes_shipped: logs.bytes_sent,
                batches: logs.batches_sent,
                retries: logs.retries,
                throttles: logs.throttles,
                rejected_too_old: logs.events_too_old,
                rejected_too_new: logs.events_too_new,
                rejected_expired: logs.events_expired,
                not_sent_out_of_window: logs.events_out_of_window,
                given_up_invalid: logs.events_given_up,
                destinations_refused: logs.destinations_refused,
                refused: self.refused(),
                sandbox: self
                    .sandbox
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
                throttles_last_minute: logs.throttles_last_minute,
                rate_limit_millis: logs.rate_limit_millis,
                destinations: logs.destinations,
                queue,
                files: self.positions_with_lag(previous),
                journal: JournalReport {
                    entries_read: load(&self.journal.entries_read),
                    entries_filtered: load(&self.journal.entries_filtered),
                    malformed: load(&self.journal.malformed),
                    restarts: load(&self.journal.restarts),
                },
                emf: self.emf.report(),
            },
            metrics: MetricsReport {
                datums_sent: metrics.datums_sent,
                batches: metrics.batches_sent,
                retries: metrics.retries,
                datums_refused: metrics.datums_refused,
                batches_refused: metrics.batches_refused,
                batches_dropped_spool_full: metrics.batches_dropped_spool_full,
                batches_unreadable: metrics.batches_unreadable,
                datums_out_of_window: metrics.datums_out_of_window,
                cycles_dropped_queue_full: load(&self.collectors.cycles_dropped),
                values_dropped_invalid: load(&self.collectors.values_invalid),
                spool_bytes: self.metric_spool_bytes.load(Ordering::Relaxed),
                statsd: self.statsd.report(),
                collectd: self.collectd.report(),
            },
        }
    }
}

/// Log data between reading and acknowledgement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueReport {
    /// Bytes held (the backpressure budget in use).
    pub bytes: u64,
    /// The budget.
    pub budget_bytes: u64,
    /// Events waiting between the tailer and the shipper.
    pub events: u64,
}

/// The logs part of a status report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct LogsReport {
    pub files_tailed: u64,
    pub files_open: u64,
    pub lines_read: u64,
    pub bytes_read: u64,
    pub events_read: u64,
    pub events_skipped: u64,
    pub events_shipped: u64,
    pub bytes_shipped: u64,
    pub batches: u64,
    pub retries: u64,
    pub throttles: u64,
    pub rejected_too_old: u64,
    pub rejected_too_new: u64,
    pub rejected_expired: u64,
    pub not_sent_out_of_window: u64,
    pub given_up_invalid: u64,
    /// Destinations CloudWatch refuses now; their files pause (see `refused`).
    #[serde(default)]
    pub destinations_refused: u64,
    /// Each refused destination, with the action and the permission it needs.
    #[serde(default)]
    pub refused: Vec<RefusedDestination>,
    /// File entries the service's sandbox hides, or whose `auto_removal` it stops (found at
    /// start, each a sentence naming the entry and the unit setting).
    #[serde(default)]
    pub sandbox: Vec<String>,
    /// PutLogEvents throttles answered in the last minute.
    #[serde(default)]
    pub throttles_last_minute: u64,
    /// The process's PutLogEvents pace in thousandths of a request a second (0: unlimited).
    #[serde(default)]
    pub rate_limit_millis: u64,
    /// Destinations (group and stream) the shipper remembers now.
    #[serde(default)]
    pub destinations: u64,
    pub queue: QueueReport,
    pub files: Vec<FilePosition>,
    #[serde(default)]
    pub journal: JournalReport,
    #[serde(default)]
    pub emf: ListenerReport,
}

/// The metrics part of a status report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct MetricsReport {
    pub datums_sent: u64,
    pub batches: u64,
    pub retries: u64,
    pub datums_refused: u64,
    pub batches_refused: u64,
    pub batches_dropped_spool_full: u64,
    pub batches_unreadable: u64,
    #[serde(default)]
    pub datums_out_of_window: u64,
    pub cycles_dropped_queue_full: u64,
    pub values_dropped_invalid: u64,
    pub spool_bytes: u64,
    #[serde(default)]
    pub statsd: ListenerReport,
    #[serde(default)]
    pub collectd: ListenerReport,
}

/// What `status.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The daemon's process id.
    pub pid: u32,
    /// When it started (seconds since the epoch).
    pub started_at: u64,
    /// When this report was written (seconds since the epoch).
    pub updated_at: u64,
    /// Logs.
    pub logs: LogsReport,
    /// Metrics.
    pub metrics: MetricsReport,
}

impl StatusReport {
    /// One line for systemd's `STATUS=`, with the event rate since `previous`.
    pub fn summary(&self, previous: Option<&StatusReport>) -> String {
        let rate = previous
            .filter(|p| self.updated_at > p.updated_at)
            .map_or(0.0, |p| {
                self.logs
                    .events_shipped
                    .saturating_sub(p.logs.events_shipped) as f64
                    / (self.updated_at - p.updated_at) as f64
            });
        let mut line = format!(
            "{} files tailed, {:.0} events/s, backlog {:.1} MiB, metric spool {:.1} MiB, {} retries",
            self.logs.files_tailed,
            rate,
            self.logs.queue.bytes as f64 / 1_048_576.0,
            self.metrics.spool_bytes as f64 / 1_048_576.0,
            self.logs.retries + self.metrics.retries,
        );
        if self.logs.destinations_refused > 0 {
            let groups: Vec<&str> = self.logs.refused.iter().map(|r| r.group.as_str()).collect();
            line.push_str(&format!(
                ", {} destinations refused ({})",
                self.logs.destinations_refused,
                groups.join(", ")
            ));
        }
        if self.logs.rate_limit_millis > 0 {
            line.push_str(&format!(
                ", throttled: {} a minute, PutLogEvents limited to {:.2}/s, {:.0} events/request",
                self.logs.throttles_last_minute,
                self.logs.rate_limit_millis as f64 / 1000.0,
                self.events_per_request(previous)
            ));
        }
        line
    }

    /// Mean events per accepted PutLogEvents request since `previous` (since start without).
    pub fn events_per_request(&self, previous: Option<&StatusReport>) -> f64 {
        let (events, batches) =
            previous.map_or((0, 0), |p| (p.logs.events_shipped, p.logs.batches));
        let batches = self.logs.batches.saturating_sub(batches);
        if batches == 0 {
            return 0.0;
        }
        self.logs.events_shipped.saturating_sub(events) as f64 / batches as f64
    }

    /// The report as text for people.
    pub fn human(&self, now: u64) -> String {
        let l = &self.logs;
        let m = &self.metrics;
        let mut out = format!(
            "cwlite pid {}, up {}s, status written {}s ago\n\n\
             logs\n  files tailed       {} ({} open)\n  read               {} lines, {} bytes, {} events ({} skipped: filtered or empty)\n  \
             shipped            {} events, {} bytes in {} batches\n  retries            {} ({} throttled)\n  \
             not delivered      {} too old, {} too new, {} expired, {} outside the time window, {} refused as invalid\n  \
             queue              {} events, {} of {} bytes\n",
            self.pid,
            self.updated_at.saturating_sub(self.started_at),
            now.saturating_sub(self.updated_at),
            l.files_tailed,
            l.files_open,
            l.lines_read,
            l.bytes_read,
            l.events_read,
            l.events_skipped,
            l.events_shipped,
            l.bytes_shipped,
            l.batches,
            l.retries,
            l.throttles,
            l.rejected_too_old,
            l.rejected_too_new,
            l.rejected_expired,
            l.not_sent_out_of_window,
            l.given_up_invalid,
            l.queue.events,
            l.queue.bytes,
            l.queue.budget_bytes,
        );
        out.push_str(&format!(
            "  pace               {}, {} throttles in the last minute, {:.1} events per request\n",
            if l.rate_limit_millis == 0 {
                "PutLogEvents unlimited".to_owned()
            } else {
                format!(
                    "PutLogEvents at most {:.2} a second",
                    l.rate_limit_millis as f64 / 1000.0
                )
            },
            l.throttles_last_minute,
            self.events_per_request(None),
        ));
        if !l.refused.is_empty() {
            out.push_str(&format!(
                "  refused            {} destinations; their files pause, nothing is given up\n",
                l.refused.len()
            ));
            for r in &l.refused {
                out.push_str(&format!(
                    "    {} / {}: {} refused since {} (needs {}): {}\n",
                    r.group, r.stream, r.operation, r.since, r.permission, r.error
                ));
            }
        }
        for finding in &l.sandbox {
            out.push_str(&format!("  sandbox            {finding}\n"));
        }
        if l.journal != JournalReport::default() {
            out.push_str(&format!(
                "  journal            {} entries read, {} filtered out, {} malformed lines, journalctl started again {} times\n",
                l.journal.entries_read, l.journal.entries_filtered, l.journal.malformed, l.journal.restarts
            ));
        }
        if l.emf != ListenerReport::default() {
            out.push_str(&format!(
                "  emf                {} documents, {} dropped for a full queue (UDP), {} invalid JSON, {} too long\n",
                l.emf.datagrams, l.emf.dropped_queue_full, l.emf.malformed, l.emf.values_rejected
            ));
        }
        for file in &l.files {
            out.push_str(&format!(
                "  {}{}: delivered to {}, {} bytes behind\n",
                crate::telemetry::shown(&file.path),
                if file.rotated { " (rotated)" } else { "" },
                file.delivered,
                file.lag_bytes
            ));
        }
        out.push_str(&format!(
            "\nmetrics\n  shipped            {} datums in {} batches\n  retries            {}\n  \
             dropped            {} datums and {} batches refused, {} datums outside the time window, {} batches for a full spool, {} unreadable, \
             {} cycles for a full queue, {} invalid values\n  spool              {} bytes\n  \
             statsd             {} datagrams, {} dropped for a full queue, {} malformed lines, {} values refused\n  \
             collectd           {} packets, {} dropped (malformed, unsigned or unknown type), {} values refused\n",
            m.datums_sent,
            m.batches,
            m.retries,
            m.datums_refused,
            m.batches_refused,
            m.datums_out_of_window,
            m.batches_dropped_spool_full,
            m.batches_unreadable,
            m.cycles_dropped_queue_full,
            m.values_dropped_invalid,
            m.spool_bytes,
            m.statsd.datagrams,
            m.statsd.dropped_queue_full,
            m.statsd.malformed,
            m.statsd.values_rejected,
            m.collectd.datagrams,
            m.collectd.malformed,
            m.collectd.values_rejected,
        ));
        out
    }
}

/// cwlite's own health as datums (`--self-metrics`), so a fleet can alarm on a stuck agent:
/// `cwlite_up` (1 while it runs; missing data means stopped or stuck), the log backlog and the
/// largest delivery lag in bytes, the metric spool, the destinations CloudWatch refuses, the
/// PutLogEvents pace (0 while unlimited), and since `previous` the events shipped, the
/// retries, the throttles, the mean events per request, and what was not delivered (refused,
/// out of the time window, dropped).
pub fn self_datums(
    report: &StatusReport,
    previous: &StatusReport,
    host: Option<&str>,
    timestamp_ms: i64,
) -> Vec<crate::metrics::MetricDatum> {
    use std::sync::Arc;
    let dimensions: crate::metrics::Dimensions = match host {
        Some(host) => Arc::from(vec![(Arc::from("host"), Arc::from(host))]),
        None => Arc::from(Vec::new()),
    };
    let not_delivered = |r: &StatusReport| {
        r.logs.rejected_too_old
            + r.logs.rejected_too_new
            + r.logs.rejected_expired
            + r.logs.not_sent_out_of_window
            + r.logs.given_up_invalid
            + r.metrics.datums_refused
            + r.metrics.datums_out_of_window
            + r.metrics.batches_dropped_spool_full
            + r.metrics.cycles_dropped_queue_full
    };
    let delta = |now: u64, before: u64| now.saturating_sub(before) as f64;
    let max_lag = report
        .logs
        .files
        .iter()
        .map(|f| f.lag_bytes)
        .max()
        .unwrap_or(0);
    [
        ("cwlite_up", 1.0, "None"),
        (
            "cwlite_log_backlog_bytes",
            report.logs.queue.bytes as f64,
            "Bytes",
        ),
        ("cwlite_log_max_lag_bytes", max_lag as f64, "Bytes"),
        (
            "cwlite_metric_spool_bytes",
            report.metrics.spool_bytes as f64,
            "Bytes",
        ),
        (
            "cwlite_log_events_shipped",
            delta(report.logs.events_shipped, previous.logs.events_shipped),
            "Count",
        ),
        (
            "cwlite_retries",
            delta(
                report.logs.retries + report.metrics.retries,
                previous.logs.retries + previous.metrics.retries,
            ),
            "Count",
        ),
        (
            "cwlite_not_delivered",
            delta(not_delivered(report), not_delivered(previous)),
            "Count",
        ),
        (
            "cwlite_log_destinations_refused",
            report.logs.destinations_refused as f64,
            "Count",
        ),
        (
            "cwlite_log_throttles",
            delta(report.logs.throttles, previous.logs.throttles),
            "Count",
        ),
        (
            "cwlite_log_rate_limit",
            report.logs.rate_limit_millis as f64 / 1000.0,
            "Count/Second",
        ),
        (
            "cwlite_log_events_per_request",
            report.events_per_request(Some(previous)),
            "Count",
        ),
    ]
    .into_iter()
    .map(|(name, value, unit)| crate::metrics::MetricDatum {
        metric_name: Arc::from(name),
        dimensions: dimensions.clone(),
        value,
        unit: Arc::from(unit),
        timestamp_ms,
        storage_resolution: 60,
        distribution: None,
    })
    .collect()
}

fn epoch_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why no status could be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// No status file (no daemon ever ran on this state directory, or it cannot be read).
    #[error("{path}: {source}")]
    Unreadable {
        /// The status file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a status report.
    #[error("{path}: not a status report: {source}")]
    Malformed {
        /// The status file.
        path: PathBuf,
        /// The error.
        source: serde_json::Error,
    },
}

/// The last status report written on `state_dir`, and whether the daemon that wrote it still
/// runs (its process exists and the report is at most [`STATUS_STALE_SECS`] old).
///
/// # Errors
/// The file is missing, unreadable or not a report.
pub fn read_status(state_dir: &std::path::Path) -> Result<(StatusReport, bool), StatusError> {
    let path = state_dir.join(STATUS_FILE);
    let text = std::fs::read(&path).map_err(|source| StatusError::Unreadable {
        path: path.clone(),
        source,
    })?;
    let report: StatusReport =
        serde_json::from_slice(&text).map_err(|source| StatusError::Malformed { path, source })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let alive = std::path::Path::new(&format!("/proc/{}", report.pid)).exists();
    let fresh = now.saturating_sub(report.updated_at) <= STATUS_STALE_SECS;
    Ok((report, alive && fresh))
}

/// A status file older than this (seconds) was not written by a running daemon: it writes one
/// every few seconds.
pub const STATUS_STALE_SECS: u64 = 60;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_gathers_every_part_and_round_trips_as_json() {
        let telemetry = Telemetry::default();
        Telemetry::bump(&telemetry.tailer.lines_read, 10);
        telemetry.set_logs(LogShipperStats {
            events_sent: 7,
            throttles: 2,
            ..LogShipperStats::default()
        });
        telemetry.set_metrics(
            PublisherStats {
                datums_sent: 30,
                ..PublisherStats::default()
            },
            4096,
        );
        telemetry.set_files(vec![FilePosition {
            path: "/var/log/syslog".into(),
            delivered: 100,
            lag_bytes: 5,
            rotated: false,
            inode: None,
        }]);
        let report = telemetry.report(42, 1_000, 1_010, QueueReport::default(), None);
        assert_eq!(report.logs.lines_read, 10);
        assert_eq!(report.logs.events_shipped, 7);
        assert_eq!(report.logs.throttles, 2);
        assert_eq!(report.metrics.datums_sent, 30);
        assert_eq!(report.metrics.spool_bytes, 4096);
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<StatusReport>(&json).unwrap(), report);
        assert!(
            report
                .human(1_012)
                .contains("/var/log/syslog: delivered to 100, 5 bytes behind")
        );
    }

    #[test]
    fn self_metrics_report_levels_and_the_counts_since_the_previous_report() {
        let mut before = StatusReport::default();
        before.logs.events_shipped = 100;
        before.logs.retries = 1;
        let mut now = before.clone();
        now.logs.events_shipped = 130;
        now.logs.retries = 3;
        now.logs.rejected_too_old = 2;
        now.logs.queue.bytes = 4096;
        let datums = self_datums(&now, &before, Some("web-01"), 7);
        let value = |name: &str| {
            datums
                .iter()
                .find(|d| &*d.metric_name == name)
                .map(|d| (d.value, d.unit.to_string(), d.dimensions.len()))
                .unwrap()
        };
        assert_eq!(value("cwlite_up"), (1.0, "None".into(), 1));
        assert_eq!(
            value("cwlite_log_events_shipped"),
            (30.0, "Count".into(), 1)
        );
        assert_eq!(value("cwlite_retries").0, 2.0);
        assert_eq!(value("cwlite_not_delivered").0, 2.0);
        assert_eq!(
            value("cwlite_log_backlog_bytes"),
            (4096.0, "Bytes".into(), 1)
        );
    }

    #[test]
    fn the_summary_gives_the_event_rate_since_the_previous_report() {
        let mut before = StatusReport {
            updated_at: 100,
            ..StatusReport::default()
        };
        before.logs.events_shipped = 1_000;
        let mut now = before.clone();
        now.updated_at = 110;
        now.logs.events_shipped = 3_000;
        now.logs.files_tailed = 3;
        assert!(
            now.summary(Some(&before))
                .starts_with("3 files tailed, 200 events/s"),
            "{}",
            now.summary(Some(&before))
        );
    }

    #[test]
    fn the_summary_names_refused_destinations_and_the_pace_when_throttled() {
        let mut before = StatusReport {
            updated_at: 100,
            ..StatusReport::default()
        };
        before.logs.events_shipped = 1_000;
        before.logs.batches = 10;
        let mut now = before.clone();
        now.updated_at = 110;
        now.logs.events_shipped = 1_800;
        now.logs.batches = 12;
        assert!(!now.summary(Some(&before)).contains("refused"));
        now.logs.destinations_refused = 1;
        now.logs.refused.push(RefusedDestination {
            group: "audit".into(),
            stream: "s".into(),
            operation: "PutLogEvents".into(),
            permission: "logs:PutLogEvents".into(),
            error: "AccessDeniedException".into(),
            since: 90,
        });
        now.logs.throttles_last_minute = 7;
        now.logs.rate_limit_millis = 250;
        let summary = now.summary(Some(&before));
        assert!(
            summary.contains(", 1 destinations refused (audit)")
                && summary.contains(
                    "throttled: 7 a minute, PutLogEvents limited to 0.25/s, 400 events/request"
                ),
            "{summary}"
        );
        let human = now.human(110);
        assert!(
            human.contains("audit / s: PutLogEvents refused since 90 (needs logs:PutLogEvents)"),
            "{human}"
        );
    }

    #[test]
    fn a_report_looks_up_at_most_its_share_of_file_sizes_and_keeps_the_rest() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let count = LAG_STATS_PER_REPORT + 1;
        let mut files: Vec<FilePosition> = (0..count)
            .map(|i| {
                let path = dir.path().join(format!("{i:05}.log"));
                std::fs::write(&path, [b'x'; 10]).unwrap();
                let meta = std::fs::metadata(&path).unwrap();
                FilePosition {
                    path,
                    delivered: 4,
                    lag_bytes: 0,
                    rotated: false,
                    inode: Some((meta.dev(), meta.ino())),
                }
            })
            .collect();
        files.sort_unstable_by(|a, b| a.order_key().cmp(&b.order_key()));
        let telemetry = Telemetry::default();
        telemetry.set_files(files.clone());
        let report = |previous: Option<&StatusReport>| {
            telemetry.report(1, 0, 0, QueueReport::default(), previous)
        };
        let lags = |report: &StatusReport| -> Vec<u64> {
            report.logs.files.iter().map(|f| f.lag_bytes).collect()
        };
        // The first report has nothing to go on: it looks at every file.
        let first = report(None);
        assert_eq!(lags(&first), vec![6; count]);
        for file in &files {
            std::fs::write(&file.path, [b'x'; 30]).unwrap();
        }
        // The next looks at its share; the one file left keeps the size seen before.
        let second = report(Some(&first));
        let grown = lags(&second).iter().filter(|&&lag| lag == 26).count();
        assert_eq!(grown, LAG_STATS_PER_REPORT);
        assert_eq!(lags(&second).iter().filter(|&&lag| lag == 6).count(), 1);
        // And the one after takes up where it stopped.
        let third = report(Some(&second));
        assert_eq!(lags(&third), vec![26; count]);
        // A path that names another file now has no lag by path (two reports give every file
        // a turn).
        let other = dir.path().join("other");
        std::fs::write(&other, [b'y'; 50]).unwrap();
        std::fs::rename(&other, &files[0].path).unwrap();
        let fourth = report(Some(&third));
        let fifth = report(Some(&fourth));
        assert_eq!(fifth.logs.files[0].lag_bytes, 0);
        assert_eq!(fifth.logs.files[1].lag_bytes, 26);
    }
}
