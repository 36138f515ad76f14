//! The logs shipper: per-destination batches, several PutLogEvents in flight per stream, and
//! acknowledgements back to the checkpoints.
//!
//! Owns the loop that turns [`TailMessage`]s into requests. Each (group, stream) has its own
//! [`LogBatcher`]; a batch closes when full or `force_flush_interval` after its first event. Up
//! to `concurrency` requests per stream are in flight (CloudWatch no longer needs sequence
//! tokens), and at most [`MAX_REQUESTS_IN_FLIGHT`] in all. Each accepted event's file range is acknowledged and its bytes released from the
//! budget. A missing stream or group is created on the first ResourceNotFound; retention is set
//! once per group. Failures that may pass are retried with capped, jittered backoff for as long
//! as cwlite runs (reading pauses meanwhile, through the budget); a batch refused as invalid is
//! split in halves until the refused event is alone, and only that event is given up, logged
//! with its file range. On shutdown everything open is closed and drained until the deadline;
//! what was not acknowledged is read again at the next start.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{info, warn};

use super::batch::{LogBatch, LogBatcher, LogEvent, TimeWindow, time_window};
use super::sink::{Destination, LogsSink, Rejected};
use crate::aws::{AwsError, AwsErrorKind};
pub use crate::event::{Ack, TailMessage};
use crate::queue::ByteBudget;
use crate::ship::retry::Backoff;
use crate::telemetry::Telemetry;

/// Most PutLogEvents calls in flight over all streams: each may hold a connection, and a glob
/// matching thousands of files with `publish_multi_logs` makes as many streams.
pub const MAX_REQUESTS_IN_FLIGHT: usize = 32;

/// Settings of the shipper.
#[derive(Debug, Clone)]
pub struct LogShipperSettings {
    /// Longest wait of a partial batch.
    pub flush_interval: Duration,
    /// Requests in flight per stream.
    pub concurrency: usize,
    /// How long shutdown may keep sending.
    pub drain_deadline: Duration,
}

/// What the shipper did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LogShipperStats {
    /// Accepted requests.
    pub batches_sent: u64,
    /// Events in them.
    pub events_sent: u64,
    /// Failed attempts that were retried.
    pub retries: u64,
    /// Bytes of accepted requests, as CloudWatch counts them (messages plus 26 per event).
    pub bytes_sent: u64,
    /// Of the retries, those answered with throttling.
    pub throttles: u64,
    /// Events CloudWatch accepted the call for but refused as more than 14 days old.
    pub events_too_old: u64,
    /// Events refused as more than 2 hours ahead.
    pub events_too_new: u64,
    /// Events refused as older than the group's retention.
    pub events_expired: u64,
    /// Events refused as invalid and given up.
    pub events_given_up: u64,
    /// Events not sent because CloudWatch would refuse their time (over 14 days old or over
    /// 2 hours ahead).
    pub events_out_of_window: u64,
}

struct DestinationState {
    destination: Arc<Destination>,
    batcher: LogBatcher,
    opened_at: Option<Instant>,
    queue: VecDeque<LogBatch>,
    in_flight: usize,
    retry_at: Option<Instant>,
    backoff: Backoff,
    /// On the active list (see [`Active`]).
    listed: bool,
}

impl DestinationState {
    /// Whether the loop has something to do for it: a batch open (to flush in time) or queued.
    /// One with batches only in flight waits for their tasks, which the loop joins anyway.
    fn has_work(&self) -> bool {
        self.opened_at.is_some() || !self.queue.is_empty()
    }
}

/// The destinations with work, so that each turn of the loop costs what is active rather than
/// every stream ever seen: with `publish_multi_logs` over a glob of 10,000 files there is a
/// stream per file, and walking them all on every message was a third of the CPU of a quiet
/// glob.
#[derive(Default)]
struct Active {
    list: Vec<usize>,
}

impl Active {
    /// Lists destination `i` if it has work and is not listed yet.
    fn note(&mut self, destinations: &mut [DestinationState], i: usize) {
        let state = &mut destinations[i];
        if !state.listed && state.has_work() {
            state.listed = true;
            self.list.push(i);
        }
    }

    /// Drops the destinations left without work.
    fn prune(&mut self, destinations: &mut [DestinationState]) {
        self.list.retain(|&i| {
            let state = &mut destinations[i];
            state.listed = state.has_work();
            state.listed
        });
    }
}

/// What a send task returns; the batch itself stays with the loop (see `in_flight_batches`).
type Sent = Result<Rejected, AwsError>;

/// Runs until the tailers' channel closes, then drains. Returns the counters.
pub async fn run(
    settings: LogShipperSettings,
    sink: LogsSink,
    mut messages: mpsc::Receiver<TailMessage>,
    acks: mpsc::UnboundedSender<Ack>,
    budget: Arc<ByteBudget>,
    telemetry: Arc<Telemetry>,
) -> LogShipperStats {
    // Counting on from what a shipper before this one (before a reload or restart) counted.
    let mut stats = telemetry.logs();
    let mut published = stats;
    let mut destinations: Vec<DestinationState> = Vec::new();
    let mut index: HashMap<Arc<Destination>, usize> = HashMap::new();
    let mut retention_done: HashSet<String> = HashSet::new();
    let mut sending: JoinSet<Sent> = JoinSet::new();
    // Batches in flight, by task: kept here rather than moved into the task, so that even a task
    // that panics gives its batch back to be sent again instead of stalling the stream.
    let mut in_flight_batches: HashMap<tokio::task::Id, (usize, Arc<LogBatch>)> = HashMap::new();
    let mut drain_until: Option<Instant> = None;
    let mut window_reported: Option<Instant> = None;
    // Where the next look for batches to send starts, so that under the global cap no stream
    // is always served last.
    let mut first = 0usize;
    let mut active = Active::default();
    loop {
        if stats != published {
            published = stats;
            telemetry.set_logs(stats);
        }
        let now = Instant::now();
        let count = active.list.len();
        first = if count == 0 { 0 } else { (first + 1) % count };
        for k in (first..count).chain(0..first) {
            let i = active.list[k];
            let state = &mut destinations[i];
            if state
                .opened_at
                .is_some_and(|at| now.duration_since(at) >= settings.flush_interval)
                || drain_until.is_some()
            {
                if let Some(batch) = state.batcher.take() {
                    state.queue.push_back(batch);
                }
                state.opened_at = None;
            }
            // Backoff holds during the drain too: a down endpoint must not be hammered.
            if state.retry_at.is_some_and(|at| at > now) {
                continue;
            }
            state.retry_at = None;
            while state.in_flight < settings.concurrency.max(1)
                && sending.len() < MAX_REQUESTS_IN_FLIGHT
            {
                let Some(batch) = state.queue.pop_front() else {
                    break;
                };
                state.in_flight += 1;
                let sink = sink.clone();
                let destination = state.destination.clone();
                let retention = destination
                    .retention_days
                    .filter(|_| !retention_done.contains(&destination.group.to_lowercase()));
                let batch = Arc::new(batch);
                let shared = batch.clone();
                let task = sending
                    .spawn(async move { send(&sink, &destination, &shared, retention).await });
                in_flight_batches.insert(task.id(), (i, batch));
            }
        }
        active.prune(&mut destinations);
        if let Some(deadline) = drain_until {
            let idle = sending.is_empty()
                && destinations
                    .iter()
                    .all(|d| d.queue.is_empty() && d.batcher.is_empty());
            if idle || Instant::now() >= deadline {
                if !idle {
                    warn!(
                        "shutdown deadline reached: unsent log data will be read again at the next start"
                    );
                }
                break;
            }
        }
        let wake = next_wake(
            active.list.iter().map(|&i| &destinations[i]),
            settings.flush_interval,
            drain_until,
        );
        tokio::select! {
            message = messages.recv(), if drain_until.is_none() => match message {
                Some(TailMessage::Events { destination, events }) => {
                    telemetry
                        .queued_events
                        .fetch_sub(events.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
                    let i = *index.entry(destination.clone()).or_insert_with(|| {
                        destinations.push(DestinationState {
                            destination: destination.clone(),
                            batcher: LogBatcher::default(),
                            opened_at: None,
                            queue: VecDeque::new(),
                            in_flight: 0,
                            retry_at: None,
                            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(60)),
                            listed: false,
                        });
                        destinations.len() - 1
                    });
                    let state = &mut destinations[i];
                    let accepted = |e: &LogEvent| time_window(e.timestamp_ms, now_ms) == TimeWindow::Accepted;
                    let (events, outside): (Vec<LogEvent>, Vec<LogEvent>) = if events.iter().all(accepted) {
                        (events, Vec::new())
                    } else {
                        events.into_iter().partition(accepted)
                    };
                    if !events.is_empty() {
                        state.batcher.extend(events, &mut state.queue);
                        state.opened_at.get_or_insert_with(Instant::now);
                    }
                    active.note(&mut destinations, i);
                    if !outside.is_empty() {
                        // CloudWatch would refuse them: counted and reported, acknowledged so
                        // the checkpoint moves past them, never sent.
                        stats.events_out_of_window += outside.len() as u64;
                        acknowledge(&outside, &acks, &budget);
                        if window_reported.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                            window_reported = Some(Instant::now());
                            warn!(
                                group = %destination.group,
                                total = stats.events_out_of_window,
                                "log events more than 14 days old or 2 hours ahead are not sent (CloudWatch refuses them)"
                            );
                        }
                    }
                }
                None => drain_until = Some(Instant::now() + settings.drain_deadline),
            },
            Some(joined) = sending.join_next_with_id(), if !sending.is_empty() => {
                let (id, result) = match joined {
                    Ok((id, result)) => (id, result),
                    Err(err) => {
                        warn!("a send task failed ({err}); its batch is sent again");
                        (err.id(), Err(AwsError { kind: AwsErrorKind::OtherClientError, code: None, message: err.to_string() }))
                    }
                };
                let Some((i, batch)) = in_flight_batches.remove(&id) else { continue };
                // The task has ended, so the loop holds the only reference.
                let batch = Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
                let state = &mut destinations[i];
                state.in_flight -= 1;
                if result.is_ok() && state.destination.retention_days.is_some() {
                    retention_done.insert(state.destination.group.to_lowercase());
                }
                finish(state, batch, result, &acks, &budget, &mut stats);
                active.note(&mut destinations, i);
            }
            _ = sleep_until_opt(wake) => {}
        }
    }
    telemetry.set_logs(stats);
    stats
}

/// Acknowledges delivered (or given-up) events: adjacent ranges of one file merged into one
/// acknowledgement, and their bytes given back to the budget at once.
fn acknowledge(events: &[LogEvent], acks: &mpsc::UnboundedSender<Ack>, budget: &ByteBudget) {
    let mut pending: Option<Ack> = None;
    let mut bytes = 0;
    for event in events {
        bytes += event.budget_bytes();
        let source = event.source();
        match &mut pending {
            Some(ack) if ack.file == source.file && ack.end == source.start_offset => {
                ack.end = source.end_offset;
            }
            _ => {
                // The checkpointer outlives the shipper; a send error only happens at exit.
                if let Some(ack) = pending.take() {
                    let _ = acks.send(ack);
                }
                pending = Some(Ack {
                    file: source.file,
                    start: source.start_offset,
                    end: source.end_offset,
                });
            }
        }
    }
    if let Some(ack) = pending {
        let _ = acks.send(ack);
    }
    budget.release(bytes);
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The next moment something is due: a partial batch's flush, a retry, the drain deadline.
fn next_wake<'a>(
    destinations: impl Iterator<Item = &'a DestinationState>,
    flush: Duration,
    drain_until: Option<Instant>,
) -> Option<Instant> {
    destinations
        .flat_map(|d| {
            [
                d.opened_at.map(|at| at + flush),
                d.retry_at.filter(|_| !d.queue.is_empty()),
            ]
        })
        .flatten()
        .chain(drain_until)
        .min()
}

async fn send(
    sink: &LogsSink,
    destination: &Destination,
    batch: &LogBatch,
    retention: Option<u32>,
) -> Result<Rejected, AwsError> {
    let result = match sink.put(destination, batch).await {
        Err(err) if err.kind == AwsErrorKind::NotFound => {
            sink.create_stream(destination).await.map_err(|mut err| {
                // A refused CreateLogStream/CreateLogGroup says nothing about the events: keep
                // them and retry (loudly) rather than splitting and giving them up.
                if err.gives_up() {
                    err.kind = AwsErrorKind::OtherClientError;
                }
                err
            })?;
            sink.put(destination, batch).await
        }
        other => other,
    };
    if result.is_ok()
        && let Some(days) = retention
        && let Err(err) = sink.put_retention(&destination.group, days).await
    {
        warn!(group = %destination.group, "cannot set retention to {days} days: {err}");
    }
    result
}

fn finish(
    state: &mut DestinationState,
    mut batch: LogBatch,
    result: Result<Rejected, AwsError>,
    acks: &mpsc::UnboundedSender<Ack>,
    budget: &ByteBudget,
    stats: &mut LogShipperStats,
) {
    let acknowledge = |events: &[LogEvent]| acknowledge(events, acks, budget);
    match result {
        Ok(rejected) => {
            if rejected.any() {
                let (too_old, too_new, expired) = rejected_split(&rejected, batch.events.len());
                let count = too_old + too_new + expired;
                stats.events_too_old += too_old;
                stats.events_too_new += too_new;
                stats.events_expired += expired;
                warn!(
                    group = %state.destination.group,
                    stream = %state.destination.stream,
                    too_old_end = ?rejected.too_old_end,
                    too_new_start = ?rejected.too_new_start,
                    expired_end = ?rejected.expired_end,
                    "CloudWatch refused {count} events of a batch (outside its time window or retention)"
                );
            }
            stats.batches_sent += 1;
            stats.events_sent += batch.events.len() as u64;
            stats.bytes_sent += batch.bytes as u64;
            state.backoff.reset();
            acknowledge(&batch.events);
        }
        Err(error) if error.gives_up() && batch.events.len() > 1 => {
            // Isolate the refused event: resend each half on its own, in order.
            let second = batch.events.split_off(batch.events.len() / 2);
            let bytes = |events: &[LogEvent]| events.iter().map(super::batch::billed_bytes).sum();
            let second = LogBatch {
                bytes: bytes(&second),
                events: second,
            };
            batch.bytes = bytes(&batch.events);
            state.queue.push_front(second);
            state.queue.push_front(batch);
            info!(group = %state.destination.group, "a batch was refused as invalid; resending it in halves to find the refused event: {error}");
        }
        Err(error) if error.gives_up() => {
            let source = batch.events[0].source();
            stats.events_given_up += 1;
            warn!(
                group = %state.destination.group,
                stream = %state.destination.stream,
                file = source.file,
                start = source.start_offset,
                end = source.end_offset,
                "a log event was refused as invalid and is given up: {error}"
            );
            acknowledge(&batch.events);
        }
        Err(error) => {
            stats.retries += 1;
            if error.kind == AwsErrorKind::Throttled {
                stats.throttles += 1;
            }
            let delay = state.backoff.next_delay();
            state.retry_at = Some(Instant::now() + delay);
            warn!(group = %state.destination.group, retry_in_ms = delay.as_millis() as u64, "{error}");
            state.queue.push_front(batch);
        }
    }
}

/// How many events `rejected` covers in a batch of `len`.
/// Refused events of a batch of `len` by reason, each counted once: (too old, too new, expired
/// beyond the group's retention). An event both expired and too old counts as expired.
fn rejected_split(rejected: &Rejected, len: usize) -> (u64, u64, u64) {
    let len = len as i64;
    let old = rejected
        .too_old_end
        .map_or(0, |e| i64::from(e).clamp(0, len));
    let expired = rejected
        .expired_end
        .map_or(0, |e| i64::from(e).clamp(0, len));
    let new = rejected
        .too_new_start
        .map_or(0, |s| len - i64::from(s).clamp(0, len))
        .min(len - old.max(expired));
    ((old - expired).max(0) as u64, new as u64, expired as u64)
}

#[cfg(test)]
fn rejected_count(rejected: &Rejected, len: usize) -> u64 {
    let (old, new, expired) = rejected_split(rejected, len);
    old + new + expired
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(file: u64, start: u64, end: u64) -> LogEvent {
        LogEvent {
            timestamp_ms: 0,
            message: crate::tail::multiline::RawEvent {
                parts: smallvec::smallvec![bytes::Bytes::from(vec![
                    b'x';
                    (end - start - 1) as usize
                ])],
                len: (end - start - 1) as usize,
                start_offset: start,
                end_offset: end,
            },
            file,
        }
    }

    #[test]
    fn acknowledgements_merge_adjacent_ranges_and_give_the_bytes_back_at_once() {
        let (acks, mut received) = mpsc::unbounded_channel();
        let budget = ByteBudget::new(1 << 20);
        let events = [
            event(1, 0, 10),
            event(1, 10, 30),
            event(2, 0, 5),
            event(1, 30, 40),
            event(1, 50, 60),
        ];
        let held: usize = events.iter().map(LogEvent::budget_bytes).sum();
        assert!(budget.acquire(held + 100, Duration::ZERO));
        acknowledge(&events, &acks, &budget);
        let mut got = Vec::new();
        while let Ok(ack) = received.try_recv() {
            got.push((ack.file, ack.start, ack.end));
        }
        assert_eq!(got, [(1, 0, 30), (2, 0, 5), (1, 30, 40), (1, 50, 60)]);
        assert_eq!(budget.used(), 100, "messages and events given back");
    }

    #[test]
    fn rejected_ranges_are_counted_without_overlap() {
        let none = Rejected::default();
        assert_eq!(rejected_count(&none, 10), 0);
        assert_eq!(
            rejected_count(
                &Rejected {
                    too_old_end: Some(3),
                    ..none
                },
                10
            ),
            3
        );
        assert_eq!(
            rejected_count(
                &Rejected {
                    too_new_start: Some(8),
                    ..none
                },
                10
            ),
            2
        );
        assert_eq!(
            rejected_count(
                &Rejected {
                    too_old_end: Some(3),
                    expired_end: Some(5),
                    too_new_start: Some(9)
                },
                10
            ),
            6
        );
        assert_eq!(
            rejected_count(
                &Rejected {
                    too_old_end: Some(50),
                    ..none
                },
                10
            ),
            10
        );
    }
}
