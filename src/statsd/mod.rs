//! `statsd`: the stock agent's statsd listener. UDP datagrams in, datums with the stock names
//! and dimensions out, aggregated over `metrics_aggregation_interval` as the stock exporter
//! aggregates them.
//!
//! Two threads. The reader receives datagrams and queues them, at most
//! `allowed_pending_messages` (and [`MAX_PENDING_BYTES`]) waiting: beyond, a datagram is
//! dropped and counted, never buffered without limit. The processor parses lines (`parse`),
//! gathers a collection interval (`window`), and at each wall-clock multiple of it closes the
//! window: each series becomes datums with `host`, `metric_type` and its tags (and the
//! roll-ups of `aggregation_dimensions`), entries of the aggregation windows
//! (`metrics::aggregate`), which are sent at each multiple of the aggregation interval; with
//! an aggregation interval of 0, each closed window is sent at once, high-resolution.
//! Malformed lines and full-queue drops are counted (`cwlite status`) and logged at most once
//! a minute. Stopping closes the open window and sends what is aggregated. Nothing here
//! knows how datums are batched or published.

pub mod parse;
pub mod window;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::warn;

use self::parse::{Line, parse_line};
use self::window::{Closed, Window};
use crate::config::{AgentConfig, StatsdConfig};
use crate::listen::{self, ListenError, Throttle, next_multiple, now_ms};
use crate::metrics::aggregate::Aggregator;
use crate::metrics::{MetricDatum, dimension_sets_of, host_dimension, is_sendable, rollup_sets};
use crate::telemetry::Telemetry;

/// Bytes of datagrams waiting at most, whatever `allowed_pending_messages` allows: 10,000
/// datagrams of 64 KiB would otherwise be 640 MiB.
pub const MAX_PENDING_BYTES: usize = 8 * 1024 * 1024;

/// How long the processor pauses after a batch, so datagrams gather: windows are seconds
/// long, and 50,000 datagrams a second are 250 per pause instead of 250 wake-ups.
const BATCH_PAUSE: Duration = Duration::from_millis(5);

/// Why the listener did not start.
#[derive(Debug, thiserror::Error)]
pub enum StatsdError {
    /// The socket is not there.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// A thread could not be started.
    #[error("statsd: cannot start a thread: {0}")]
    Thread(io::Error),
}

/// A running listener.
#[derive(Debug)]
pub struct Listener {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    processor: Option<JoinHandle<()>>,
}

/// What the processor needs besides the configuration.
struct Processor {
    config: StatsdConfig,
    host: Option<Arc<str>>,
    rollups: Vec<Vec<Arc<str>>>,
    sender: mpsc::Sender<Vec<MetricDatum>>,
    telemetry: Arc<Telemetry>,
    queue: crossbeam_channel::Receiver<Bytes>,
    pending: Arc<Pending>,
    stop: Arc<AtomicBool>,
}

/// Datagrams and bytes waiting between the reader and the processor.
#[derive(Debug, Default)]
struct Pending {
    datagrams: AtomicUsize,
    bytes: AtomicUsize,
}

impl Listener {
    /// Binds `config.service_address` and starts the reader and the processor.
    ///
    /// # Errors
    /// The address does not resolve or cannot be bound, or a thread cannot start.
    pub fn start(
        config: &StatsdConfig,
        agent: &AgentConfig,
        aggregation_dimensions: &[Vec<String>],
        sender: mpsc::Sender<Vec<MetricDatum>>,
        telemetry: Arc<Telemetry>,
    ) -> Result<Self, StatsdError> {
        let socket = listen::bind("statsd", &config.service_address)?;
        let local_addr = socket.local_addr().map_err(|source| ListenError::Bind {
            input: "statsd",
            address: config.service_address.clone(),
            source,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let pending = Arc::new(Pending::default());
        let (queue_tx, queue_rx) = crossbeam_channel::unbounded();
        let reader = {
            let stop = stop.clone();
            let pending = pending.clone();
            let telemetry = telemetry.clone();
            let limit = config.allowed_pending_messages;
            std::thread::Builder::new()
                .name("cwlite-statsd-read".into())
                .spawn(move || read_loop(&socket, &queue_tx, &pending, limit, &telemetry, &stop))
                .map_err(StatsdError::Thread)?
        };
        let processor = Processor {
            config: config.clone(),
            host: host_dimension(agent),
            rollups: rollup_sets(aggregation_dimensions),
            sender,
            telemetry,
            queue: queue_rx,
            pending,
            stop: stop.clone(),
        };
        let processor = std::thread::Builder::new()
            .name("cwlite-statsd".into())
            .spawn(move || processor.run())
            .map_err(StatsdError::Thread)?;
        Ok(Self {
            local_addr,
            stop,
            reader: Some(reader),
            processor: Some(processor),
        })
    }

    /// The bound address (the port, when 0 was configured).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether a thread ended (it only ends when told to, or on a bug).
    pub fn has_ended(&self) -> bool {
        self.reader.as_ref().is_none_or(JoinHandle::is_finished)
            || self.processor.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops reading, then parses what is queued, closes the open window and sends what is
    /// aggregated. Blocks until both threads ended (at most the read timeout plus the parsing
    /// of what waits).
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Listener {
    /// Joins the threads, so the port is free again when the listener is gone (a reload, or
    /// a start that failed further on, binds it again at once).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for handle in [self.reader.take(), self.processor.take()]
            .into_iter()
            .flatten()
        {
            let _ = handle.join();
        }
    }
}

fn read_loop(
    socket: &UdpSocket,
    queue: &crossbeam_channel::Sender<Bytes>,
    pending: &Pending,
    limit: usize,
    telemetry: &Telemetry,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; listen::MAX_DATAGRAM];
    let mut dropped = Throttle::default();
    while !stop.load(Ordering::Relaxed) {
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(err) if listen::is_timeout(&err) => continue,
            Err(err) => {
                warn!("statsd: receiving failed: {err}");
                std::thread::sleep(listen::READ_TIMEOUT);
                continue;
            }
        };
        telemetry.statsd.datagrams.fetch_add(1, Ordering::Relaxed);
        let full = pending.datagrams.load(Ordering::Relaxed) >= limit
            || pending.bytes.load(Ordering::Relaxed) + n > MAX_PENDING_BYTES;
        if full {
            if let Some(since) = dropped.count(&telemetry.statsd.dropped_queue_full, 1) {
                warn!(
                    dropped = since,
                    total = telemetry.statsd.dropped_queue_full.load(Ordering::Relaxed),
                    "statsd: {limit} datagrams are waiting to be parsed; dropped the new ones (raise allowed_pending_messages if this lasts)"
                );
            }
            continue;
        }
        pending.datagrams.fetch_add(1, Ordering::Relaxed);
        pending.bytes.fetch_add(n, Ordering::Relaxed);
        if queue.send(Bytes::copy_from_slice(&buf[..n])).is_err() {
            break;
        }
    }
}

impl Processor {
    fn run(self) {
        let collect_ms = (self.config.collection_interval_secs.max(1) * 1000) as i64;
        let mut aggregator = self
            .config
            .aggregation_interval_secs
            .map(|secs| Aggregator::new(Duration::from_secs(secs)));
        let aggregate_ms = self
            .config
            .aggregation_interval_secs
            .map(|secs| (secs.max(1) * 1000) as i64);
        let mut window = Window::default();
        let mut reader_gone = false;
        let mut malformed = Throttle::default();
        let mut next_close = next_multiple(now_ms(), collect_ms);
        let mut next_flush = aggregate_ms.map(|every| next_multiple(now_ms(), every));
        loop {
            let now = now_ms();
            let deadline = next_flush.map_or(next_close, |f| f.min(next_close));
            let wait = Duration::from_millis((deadline - now).clamp(0, 200) as u64);
            match self.queue.recv_timeout(wait) {
                Ok(datagram) => {
                    self.take(&datagram, &mut window, &mut malformed);
                    // Whatever else waits, in one go; then a pause, so that a steady stream
                    // wakes this thread every few milliseconds rather than per datagram (the
                    // wake-ups cost more than the parsing). The reader bounds what waits.
                    // At most a queue's worth: a sender faster than parsing must not hold
                    // off the closing of windows.
                    let bound = self.config.allowed_pending_messages;
                    for datagram in self.queue.try_iter().take(bound) {
                        self.take(&datagram, &mut window, &mut malformed);
                    }
                    std::thread::sleep(BATCH_PAUSE);
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                // The reader ended (told to stop): what was gathered is still sent below.
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => reader_gone = true,
            }
            let stopping =
                (self.stop.load(Ordering::Relaxed) || reader_gone) && self.queue.is_empty();
            let now = now_ms();
            let close = now >= next_close || stopping;
            let flush = next_flush.is_some_and(|at| now >= at) || stopping;
            // When both fall due together, the aggregation windows are sent before the
            // collection window closes into the next one, as the stock agent's flush ticks
            // before its gather: a minute's datum then holds that minute's six closes, not
            // five plus a stray one sent alone. Stopping sends everything.
            if flush && !stopping {
                self.flush(aggregator.as_mut());
                next_flush = aggregate_ms.map(|every| next_multiple(now, every));
            }
            if close {
                self.close(&mut window, aggregator.as_mut(), now);
                next_close = next_multiple(now, collect_ms);
            }
            if stopping {
                self.flush(aggregator.as_mut());
                break;
            }
        }
    }

    /// Sends every aggregation window.
    fn flush(&self, aggregator: Option<&mut Aggregator>) {
        if let Some(aggregator) = aggregator {
            let mut datums = Vec::new();
            aggregator.flush(&mut datums);
            self.send(datums);
        }
    }

    /// Parses one datagram taken off the queue.
    fn take(&self, datagram: &Bytes, window: &mut Window, malformed: &mut Throttle) {
        self.pending.datagrams.fetch_sub(1, Ordering::Relaxed);
        self.pending
            .bytes
            .fetch_sub(datagram.len(), Ordering::Relaxed);
        self.parse(datagram, window, malformed);
    }

    fn parse(&self, datagram: &[u8], window: &mut Window, malformed: &mut Throttle) {
        let text = String::from_utf8_lossy(datagram);
        let mut line = Line::default();
        for raw in text.split('\n') {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let result = parse_line(raw, &self.config.metric_separator, &mut line);
            // Values before a fault count, as in the stock agent.
            let added = window.add(&line);
            if result.is_ok() && added {
                continue;
            }
            // The reason is only spelled out when it is logged.
            if let Some(lines) = malformed.count(&self.telemetry.statsd.malformed, 1) {
                let reason = match &result {
                    Err(err) => err.to_string(),
                    Ok(()) => "a name or tag CloudWatch refuses (names: 1 to 255 ASCII characters; tag values: at most 1,024), or more series or set members in a window than cwlite keeps".to_owned(),
                };
                let shown: String = raw.chars().take(120).collect();
                warn!(
                    lines,
                    "statsd: malformed lines dropped, for example {shown:?}: {reason}"
                );
            }
        }
        let rejected = std::mem::take(&mut window.rejected);
        if rejected > 0 {
            self.telemetry
                .statsd
                .values_rejected
                .fetch_add(rejected, Ordering::Relaxed);
        }
    }

    /// Closes the window at `now`: its series become datums, or entries of the aggregation.
    fn close(&self, window: &mut Window, aggregator: Option<&mut Aggregator>, now: i64) {
        let closed = window.take();
        if closed.is_empty() {
            return;
        }
        let unit: Arc<str> = Arc::from("None");
        let mut datums = Vec::new();
        let mut rejected = 0u64;
        let mut aggregator = aggregator;
        for series in closed {
            let sets = dimension_sets_of(series.tags, self.host.as_ref(), &[], &self.rollups);
            for dimensions in sets {
                match (&mut aggregator, &series.value) {
                    (Some(aggregator), Closed::Number(n)) => {
                        if aggregator
                            .add_value(&series.name, &dimensions, &unit, now, *n)
                            .is_err()
                        {
                            rejected += 1;
                        }
                    }
                    (Some(aggregator), Closed::Values(values)) => {
                        aggregator.add(&series.name, &dimensions, &unit, now, values);
                    }
                    (None, Closed::Number(n)) if !is_sendable(*n) => rejected += 1,
                    (None, Closed::Number(n)) => datums.push(MetricDatum {
                        metric_name: series.name.clone(),
                        dimensions,
                        value: *n,
                        unit: unit.clone(),
                        timestamp_ms: now,
                        storage_resolution: 1,
                        distribution: None,
                    }),
                    (None, Closed::Values(values)) => {
                        for distribution in values.clone().into_distributions() {
                            datums.push(MetricDatum {
                                metric_name: series.name.clone(),
                                dimensions: dimensions.clone(),
                                value: 0.0,
                                unit: unit.clone(),
                                timestamp_ms: now,
                                storage_resolution: 1,
                                distribution: Some(Box::new(distribution)),
                            });
                        }
                    }
                }
            }
        }
        if rejected > 0 {
            self.telemetry
                .statsd
                .values_rejected
                .fetch_add(rejected, Ordering::Relaxed);
        }
        self.send(datums);
    }

    fn send(&self, datums: Vec<MetricDatum>) {
        listen::send_datums(&self.sender, &self.telemetry, datums, "statsd");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pending_byte_bound_is_eight_mebibytes() {
        assert_eq!(MAX_PENDING_BYTES, 8 << 20);
    }
}
