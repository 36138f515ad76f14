//! The metrics shipper: batches datums, spools each closed batch, and publishes the spool to
//! PutMetricData oldest first, retrying until CloudWatch accepts.
//!
//! Owns the publish loop. Datums arrive from collectors over a bounded channel; the open batch
//! closes every `force_flush_interval` (at a random phase picked at start, so a fleet does not
//! publish in the same second) or when full, and goes to the spool (bounded in bytes, on disk,
//! surviving restarts). Failures that may pass are retried with capped, jittered backoff while
//! new datums keep being spooled; a request the service refuses as invalid drops only that batch,
//! naming the refused datum. On shutdown it closes the open batch and drains until the deadline;
//! whatever is left stays in the spool for the next start.

pub mod batch;
pub mod sink;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::aws::AwsError;
use crate::metrics::MetricDatum;
use crate::ship::retry::Backoff;
use crate::state::spool::Spool;
use batch::{BatchBuilder, MetricBatch};
pub use sink::MetricsSink;

/// Spool budget when nothing else is said: the default metric set (cpu, mem and a few disks at
/// 60 s) spools about 4 MB a day, so this holds several days of outage.
pub const DEFAULT_SPOOL_BYTES: u64 = 16 * 1024 * 1024;
/// First wait after a failed publish.
pub const RETRY_BASE: Duration = Duration::from_secs(1);
/// Longest wait between publish attempts.
pub const RETRY_CAP: Duration = Duration::from_secs(60);

/// Counters of what the publisher did, for logs and status.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PublisherStats {
    /// Requests CloudWatch accepted.
    pub batches_sent: u64,
    /// Datums in them.
    pub datums_sent: u64,
    /// Failed attempts that will be retried.
    pub retries: u64,
    /// Batches refused as invalid (no datum named) and dropped.
    pub batches_refused: u64,
    /// Single datums refused as invalid and dropped (the rest of their batch was resent).
    pub datums_refused: u64,
    /// Batches dropped because the spool was full (oldest first).
    pub batches_dropped_spool_full: u64,
    /// Spooled batches that could not be read back and were discarded.
    pub batches_unreadable: u64,
    /// Datums not sent because CloudWatch would refuse their time (more than two weeks old,
    /// as after a long outage, or more than two hours ahead).
    pub datums_out_of_window: u64,
}

/// Settings of one publisher.
#[derive(Debug, Clone)]
pub struct PublisherSettings {
    /// PutMetricData namespace.
    pub namespace: String,
    /// How often the open batch is closed and published.
    pub flush_interval: Duration,
    /// How long shutdown may keep publishing.
    pub drain_deadline: Duration,
}

/// A send in progress: it yields the spool sequence, the batch, and the outcome (with the
/// position of the refused datum when the service named one).
type InFlight = Pin<
    Box<dyn Future<Output = (Vec<u64>, MetricBatch, Result<(), (AwsError, Option<usize>)>)> + Send>,
>;

/// The publish loop's state.
pub struct Publisher {
    settings: PublisherSettings,
    sink: MetricsSink,
    spool: Spool,
    open: BatchBuilder,
    backoff: Backoff,
    /// After a merged request was refused without naming a datum, the next request carries the
    /// oldest batch alone, so the bad one is found and only it is dropped.
    send_alone: bool,
    /// What happened so far.
    pub stats: PublisherStats,
    telemetry: Option<std::sync::Arc<crate::telemetry::Telemetry>>,
    /// When datums outside the time window were last reported, and how many since.
    window_reported: Option<(Instant, u64)>,
    /// Spooled batches whose datums outside the window are counted already (a batch read
    /// again for a retry is filtered again, not counted again).
    window_counted: std::collections::HashSet<u64>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("settings", &self.settings)
            .field("spooled", &self.spool.len())
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher sending to `sink` and spooling into `spool`.
    pub fn new(settings: PublisherSettings, sink: MetricsSink, spool: Spool) -> Self {
        if !spool.is_empty() {
            info!(
                batches = spool.len(),
                bytes = spool.bytes(),
                "metric batches from an earlier run will be published first"
            );
        }
        Self {
            settings,
            sink,
            spool,
            open: BatchBuilder::default(),
            backoff: Backoff::new(RETRY_BASE, RETRY_CAP),
            send_alone: false,
            stats: PublisherStats::default(),
            telemetry: None,
            window_reported: None,
            window_counted: std::collections::HashSet::new(),
        }
    }

    /// Also keeps `telemetry` up to date with the counters and the spool size.
    /// Counting goes on from what `telemetry` holds (a publisher before a reload or restart).
    pub fn with_telemetry(
        mut self,
        telemetry: std::sync::Arc<crate::telemetry::Telemetry>,
    ) -> Self {
        self.stats = telemetry.metrics();
        self.telemetry = Some(telemetry);
        self
    }

    /// Runs until every sender of `datums` is gone (the collectors stopped), then drains until the
    /// spool is empty or the drain deadline passes. Returns the final counters.
    pub async fn run(mut self, mut datums: mpsc::Receiver<Vec<MetricDatum>>) -> PublisherStats {
        let interval = self.settings.flush_interval;
        let phase = interval.mul_f64(fastrand::f64());
        let mut ticks = tokio::time::interval_at(Instant::now() + phase, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut in_flight: Option<InFlight> = None;
        let mut retry_at: Option<Instant> = None;
        let mut drain_until: Option<Instant> = None;
        let mut published: Option<(PublisherStats, u64)> = None;
        loop {
            if let Some(telemetry) = &self.telemetry
                && published != Some((self.stats, self.spool.bytes()))
            {
                published = Some((self.stats, self.spool.bytes()));
                telemetry.set_metrics(self.stats, self.spool.bytes());
            }
            if in_flight.is_none() && retry_at.is_none() {
                in_flight = self.start_next();
            }
            if let Some(deadline) = drain_until
                && (in_flight.is_none() && self.spool.is_empty() || Instant::now() >= deadline)
            {
                break;
            }
            tokio::select! {
                received = datums.recv(), if drain_until.is_none() => match received {
                    Some(batch) => self.accept(batch),
                    None => {
                        self.close_open_batch();
                        drain_until = Some(Instant::now() + self.settings.drain_deadline);
                        // Shutdown skips the remaining backoff: this is the last chance to send.
                        retry_at = None;
                    }
                },
                _ = ticks.tick(), if drain_until.is_none() => self.close_open_batch(),
                (sequences, batch, result) = async { in_flight.as_mut().expect("guarded by the condition").await }, if in_flight.is_some() => {
                    in_flight = None;
                    if let Some(delay) = self.finish(sequences, batch, result) {
                        retry_at = Some(Instant::now() + delay);
                    }
                }
                _ = async { tokio::time::sleep_until(retry_at.expect("guarded by the condition")).await }, if retry_at.is_some() => retry_at = None,
                _ = async { tokio::time::sleep_until(drain_until.expect("guarded by the condition")).await }, if drain_until.is_some() => {}
            }
        }
        if !self.spool.is_empty() {
            info!(
                batches = self.spool.len(),
                "metric batches left in the spool for the next start"
            );
        }
        self.stats
    }

    fn accept(&mut self, datums: Vec<MetricDatum>) {
        for datum in datums {
            if let Some(full) = self.open.push(datum) {
                self.spool_batch(full);
            }
        }
    }

    fn close_open_batch(&mut self) {
        if let Some(batch) = self.open.take() {
            self.spool_batch(batch);
        }
    }

    fn spool_batch(&mut self, mut batch: MetricBatch) {
        if batch.namespace.is_none() {
            batch.namespace = Some(self.settings.namespace.clone());
        }
        let payload = match serde_json::to_vec(&batch) {
            Ok(payload) => payload,
            Err(err) => {
                // Datums are plain numbers and strings; this cannot fail, but never panic on it.
                warn!(
                    "cannot encode a metric batch, {} datums dropped: {err}",
                    batch.datums.len()
                );
                return;
            }
        };
        let (_, outcome, error) = self.spool.push(payload);
        if let Some(error) = error {
            warn!("{error}");
        }
        if !outcome.dropped.is_empty() {
            self.stats.batches_dropped_spool_full += outcome.dropped.len() as u64;
            warn!(
                dropped = outcome.dropped.len(),
                total_dropped = self.stats.batches_dropped_spool_full,
                "metric spool full: oldest batches dropped to make room"
            );
        }
    }

    fn start_next(&mut self) -> Option<InFlight> {
        // After an outage the spool holds many small batches (one per flush); sending them merged
        // up to the request limits keeps a recovering fleet well under the API's rate quota.
        let mut sequences = Vec::new();
        let mut merged: Option<MetricBatch> = None;
        let mut merged_bytes = 0usize;
        let waiting: Vec<u64> = self.spool.sequences().collect();
        let now_ms = epoch_ms();
        let mut outside = 0u64;
        for sequence in waiting {
            let Some(mut batch) = self.read_spooled(sequence) else {
                continue;
            };
            // CloudWatch refuses datums outside its window and names only the first of a
            // request: after a long outage, sending them meant a refusal per stale datum, back
            // to back, with fresh datums stuck behind. They are dropped here, counted.
            let before = batch.datums.len();
            batch
                .datums
                .retain(|d| batch::in_time_window(d.timestamp_ms, now_ms));
            if batch.datums.len() < before && self.window_counted.insert(sequence) {
                outside += (before - batch.datums.len()) as u64;
            }
            if batch.datums.is_empty() {
                self.spool.remove(sequence);
                self.window_counted.remove(&sequence);
                continue;
            }
            let bytes: usize = batch.datums.iter().map(batch::estimated_bytes).sum();
            match &mut merged {
                None => {
                    merged_bytes = bytes;
                    merged = Some(batch);
                }
                Some(open) => {
                    let fits = open.namespace == batch.namespace
                        && open.datums.len() + batch.datums.len() <= batch::MAX_DATUMS_PER_REQUEST
                        && merged_bytes + bytes <= batch::MAX_BATCH_BYTES;
                    if !fits {
                        break;
                    }
                    merged_bytes += bytes;
                    open.datums.extend(batch.datums);
                }
            }
            sequences.push(sequence);
            if std::mem::take(&mut self.send_alone) {
                break;
            }
        }
        self.report_outside_window(outside);
        let batch = merged?;
        let sink = self.sink.clone();
        let namespace = batch
            .namespace
            .clone()
            .unwrap_or_else(|| self.settings.namespace.clone());
        Some(Box::pin(async move {
            let result = sink.put(&namespace, &batch.datums).await;
            let result = result.map_err(|err| annotate_refusal(err, &batch.datums));
            (sequences, batch, result)
        }))
    }

    /// Counts datums dropped for their time, with one warning a minute that says how many.
    fn report_outside_window(&mut self, count: u64) {
        if count == 0 {
            return;
        }
        self.stats.datums_out_of_window += count;
        let (at, pending) = self.window_reported.get_or_insert((Instant::now(), 0));
        *pending += count;
        let first = self.stats.datums_out_of_window == count;
        if first || at.elapsed() >= Duration::from_secs(60) {
            warn!(
                dropped = *pending,
                total = self.stats.datums_out_of_window,
                "metric datums more than two weeks old or two hours ahead are dropped (CloudWatch refuses them)"
            );
            *at = Instant::now();
            *pending = 0;
        }
    }

    /// A spooled batch; `None` when it was unreadable (it is then discarded).
    fn read_spooled(&mut self, sequence: u64) -> Option<MetricBatch> {
        let batch = self
            .spool
            .read(sequence)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                serde_json::from_slice::<MetricBatch>(&bytes)
                    .map_err(|e| format!("spooled batch {sequence} is not readable: {e}"))
            });
        match batch {
            Ok(batch) => Some(batch),
            Err(message) => {
                warn!("{message}; discarded");
                self.stats.batches_unreadable += 1;
                self.spool.remove(sequence);
                None
            }
        }
    }

    /// Records a result; returns how long to wait before the next attempt after a failure.
    fn finish(
        &mut self,
        sequences: Vec<u64>,
        batch: MetricBatch,
        result: Result<(), (AwsError, Option<usize>)>,
    ) -> Option<Duration> {
        let count = batch.datums.len();
        let merged = sequences.len() > 1;
        let remove_all = |spool: &mut Spool, counted: &mut std::collections::HashSet<u64>| {
            for sequence in &sequences {
                spool.remove(*sequence);
                counted.remove(sequence);
            }
        };
        match result {
            Ok(()) => {
                remove_all(&mut self.spool, &mut self.window_counted);
                self.stats.batches_sent += 1;
                self.stats.datums_sent += count as u64;
                if self.backoff.attempts() > 0 {
                    info!(
                        after_attempts = self.backoff.attempts(),
                        backlog = self.spool.len(),
                        "PutMetricData succeeds again"
                    );
                }
                self.backoff.reset();
                debug!(
                    datums = count,
                    backlog = self.spool.len(),
                    "metric batch published"
                );
                None
            }
            Err((error, Some(refused))) if error.gives_up() && count > 1 => {
                // Only the named datum is bad: drop it and publish the others again.
                remove_all(&mut self.spool, &mut self.window_counted);
                self.stats.datums_refused += 1;
                warn!(
                    "one datum refused and dropped, the other {} are sent again: {error}",
                    count - 1
                );
                let mut rest = batch;
                rest.datums.remove(refused);
                self.spool_batch(rest);
                // Never a request per refused datum back to back: a batch with many bad datums
                // backs off like any failure (reset by the next success).
                Some(self.backoff.next_delay())
            }
            Err((error, _)) if error.gives_up() && merged => {
                // Which of the merged batches is bad is unknown: try them one by one.
                self.send_alone = true;
                warn!(
                    "merged metric request refused; sending its batches one by one to isolate the bad one: {error}"
                );
                None
            }
            Err((error, _)) if error.gives_up() => {
                remove_all(&mut self.spool, &mut self.window_counted);
                self.stats.batches_refused += 1;
                warn!("metric batch of {count} datums refused and dropped: {error}");
                None
            }
            Err((error, _)) => {
                self.stats.retries += 1;
                let delay = self.backoff.next_delay();
                warn!(
                    backlog = self.spool.len(),
                    retry_in_ms = delay.as_millis() as u64,
                    "{error}"
                );
                Some(delay)
            }
        }
    }
}

fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// CloudWatch names a refused datum by its 1-based position (`MetricData.member.3.Value`);
/// adds that datum's name and dimensions to the message so the operator can find it.
fn annotate_refusal(mut error: AwsError, datums: &[MetricDatum]) -> (AwsError, Option<usize>) {
    if !error.gives_up() {
        return (error, None);
    }
    let index = refused_position(&error.message)
        .and_then(|n| n.checked_sub(1))
        .filter(|i| *i < datums.len());
    if let Some(index) = index {
        let datum = &datums[index];
        let dimensions: Vec<String> = datum
            .dimensions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        error.message = format!(
            "{} (refused datum: {} {{{}}} value {})",
            error.message,
            datum.metric_name,
            dimensions.join(", "),
            datum.value
        );
    }
    (error, index)
}

fn refused_position(message: &str) -> Option<usize> {
    let rest = &message[message.find("MetricData.")? + "MetricData.".len()..];
    let rest = rest.strip_prefix("member.").unwrap_or(rest);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_refused_datum_is_found_from_the_message() {
        assert_eq!(
            refused_position("The value NaN for parameter MetricData.member.3.Value is invalid."),
            Some(3)
        );
        assert_eq!(
            refused_position("MetricData.12.Dimensions is invalid"),
            Some(12)
        );
        assert_eq!(refused_position("something else"), None);
        let datums: Vec<MetricDatum> = (0..3)
            .map(|i| MetricDatum {
                metric_name: Arc::from(format!("m{i}")),
                dimensions: vec![(Arc::from("host"), Arc::from("h"))].into(),
                value: i as f64,
                unit: Arc::from("None"),
                timestamp_ms: 0,
                storage_resolution: 60,
                distribution: None,
            })
            .collect();
        let error = AwsError {
            operation: "PutMetricData",
            kind: crate::aws::AwsErrorKind::InvalidRequest,
            code: Some("InvalidParameterValue".into()),
            message: "PutMetricData refused: parameter MetricData.member.2.Value is invalid".into(),
        };
        let (annotated, index) = annotate_refusal(error, &datums);
        assert_eq!(index, Some(1));
        assert!(
            annotated
                .message
                .ends_with("(refused datum: m1 {host=h} value 1)"),
            "{}",
            annotated.message
        );
    }

    #[test]
    fn a_day_of_the_default_metric_set_fits_the_default_spool() {
        let dimensions = |pairs: &[(&str, &str)]| -> crate::metrics::Dimensions {
            pairs
                .iter()
                .map(|(k, v)| (Arc::from(*k), Arc::from(*v)))
                .collect::<Vec<_>>()
                .into()
        };
        let host = ("host", "ip-10-0-0-1.ap-northeast-1.compute.internal");
        let minute: Vec<MetricDatum> = [
            ("cpu_usage_idle", dimensions(&[host, ("cpu", "cpu-total")])),
            (
                "cpu_usage_iowait",
                dimensions(&[host, ("cpu", "cpu-total")]),
            ),
            ("cpu_usage_user", dimensions(&[host, ("cpu", "cpu-total")])),
            (
                "cpu_usage_system",
                dimensions(&[host, ("cpu", "cpu-total")]),
            ),
            ("mem_used_percent", dimensions(&[host])),
            (
                "disk_used_percent",
                dimensions(&[
                    host,
                    ("device", "nvme0n1p1"),
                    ("fstype", "xfs"),
                    ("path", "/"),
                ]),
            ),
            (
                "disk_used_percent",
                dimensions(&[
                    host,
                    ("device", "nvme1n1"),
                    ("fstype", "xfs"),
                    ("path", "/data"),
                ]),
            ),
            (
                "disk_used_percent",
                dimensions(&[
                    host,
                    ("device", "tmpfs"),
                    ("fstype", "tmpfs"),
                    ("path", "/run"),
                ]),
            ),
        ]
        .into_iter()
        .map(|(name, dimensions)| MetricDatum {
            metric_name: Arc::from(name),
            dimensions,
            value: 12.345678901234,
            unit: Arc::from("Percent"),
            timestamp_ms: 1_764_000_000_000,
            storage_resolution: 60,
            distribution: None,
        })
        .collect();
        let batch = MetricBatch {
            namespace: Some("CWAgent".into()),
            version: MetricBatch::VERSION,
            datums: minute,
        };
        let per_minute = serde_json::to_vec(&batch).unwrap().len() as u64;
        assert!(
            per_minute * 24 * 60 < DEFAULT_SPOOL_BYTES,
            "{per_minute} bytes a minute"
        );
    }
}
