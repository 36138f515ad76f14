//! The logs shipper: per-destination batches, several PutLogEvents in flight per stream,
//! isolation between destinations, the process's pace under throttling, and acknowledgements
//! back to the checkpoints.
//!
//! Owns the loop that turns [`TailMessage`]s into requests ([`Shipper`], in phases: `receive`,
//! `schedule`, `finish`, `forget_idle`). Each (group, stream) has its own [`LogBatcher`]; a
//! batch closes when full or `force_flush_interval` after its first event (the first flush after
//! start at a random phase, so a fleet started together does not flush together), or at once
//! when its destination may take no more of the budget and nothing of it is queued or in
//! flight (the budget wakes the loop when it refuses the tailer). Up to
//! `concurrency` requests per stream are in flight, and at most `requests_in_flight` (by default
//! [`MAX_REQUESTS_IN_FLIGHT`]; a configured `concurrency` is the stock agent's shared pool) in
//! all. Batches that wait (throttled, retrying, at the in-flight limit) go out merged, in as
//! few requests as the PutLogEvents limits allow, in file order.
//!
//! What a failure means is [`AwsError::disposition`]'s decision; this loop acts on it:
//! - throttled: the process's [`Pace`] slows down and the batch waits for a token with everything
//!   queued behind it; no per-batch timer leaves the quota idle;
//! - transient (outage, 5xx): capped, jittered backoff of that destination;
//! - refused (permissions, KMS, a refused create): a long backoff of that destination, never
//!   given up, logged when it starts and when it changes, with the IAM permission it needs,
//!   and shown in the status;
//! - bad events: the batch is split in halves until the refused event is alone, and only
//!   that event is given up, logged with its file range.
//!
//! A failing destination's [`Share`] of the budget is marked failing, so it holds little and
//! its files pause while every other destination goes on. Each accepted event's file range is
//! acknowledged and its bytes given back. Retention is set once per group (by its exact name)
//! and retried until it is set. A destination idle for [`FORGET_AFTER`] with nothing open,
//! queued or in flight is forgotten (its share stays with the budget while it holds bytes). On shutdown everything open is closed and drained until the deadline; what was
//! not acknowledged is read again at the next start.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::batch::{LogBatch, LogBatcher, LogEvent, TimeWindow, time_window};
use super::rate::Pace;
use super::sink::{Destination, Format, LogsSink, Rejected};
use crate::aws::{AwsError, AwsErrorKind, Disposition};
pub use crate::event::{Ack, Emf, TailMessage};
use crate::queue::{ByteBudget, Share};
use crate::ship::retry::Backoff;
use crate::telemetry::{RefusedDestination, Telemetry};

/// Most PutLogEvents calls in flight over all streams by default (see
/// [`crate::config::DEFAULT_LOGS_REQUESTS_IN_FLIGHT`]).
pub const MAX_REQUESTS_IN_FLIGHT: usize = crate::config::DEFAULT_LOGS_REQUESTS_IN_FLIGHT as usize;
/// First wait after a transient failure (outage, 5xx) of a destination.
pub const RETRY_BASE: Duration = Duration::from_millis(500);
/// Longest wait after transient failures.
pub const RETRY_CAP: Duration = Duration::from_secs(60);
/// First wait after a refusal no quick retry fixes (permissions, KMS, a refused create).
pub const REFUSED_RETRY_BASE: Duration = Duration::from_secs(30);
/// Longest wait after refusals: the destination is tried again at least this often, for as
/// long as cwlite runs, so a fixed policy takes effect within minutes.
pub const REFUSED_RETRY_CAP: Duration = Duration::from_secs(300);
/// A destination with nothing held, open, queued or in flight for this long is forgotten: with
/// a stream per file or a group per path, files that come and go would otherwise grow the
/// shipper for the life of the process.
pub const FORGET_AFTER: Duration = Duration::from_secs(60);
/// Most groups whose retention is remembered as set.
const MAX_RETENTION_GROUPS: usize = 100_000;
/// How often idle destinations are looked for.
const FORGET_SWEEP: Duration = Duration::from_secs(10);
/// The loop goes round at least this often, so that the watchdog sees a shipper that waits
/// on timers alone (a refused destination's long backoff) as alive.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// Settings of the shipper.
#[derive(Debug, Clone)]
pub struct LogShipperSettings {
    /// Longest wait of a partial batch.
    pub flush_interval: Duration,
    /// Requests in flight per stream.
    pub concurrency: usize,
    /// Requests in flight over all streams (at most [`MAX_REQUESTS_IN_FLIGHT`] unless the
    /// configuration's `concurrency`, the stock agent's shared pool, says otherwise).
    pub requests_in_flight: usize,
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
    /// Destinations CloudWatch refuses now (see [`Disposition::Refused`]).
    pub destinations_refused: u64,
    /// PutLogEvents throttles answered in the last minute.
    pub throttles_last_minute: u64,
    /// The process's PutLogEvents pace, in thousandths of a request a second; 0 while
    /// unlimited.
    pub rate_limit_millis: u64,
    /// Destinations the shipper remembers now (those idle for [`FORGET_AFTER`] are not).
    pub destinations: u64,
}

/// Where a batch belongs in its stream: the batch's number, then its part of it as the start
/// of an interval of [`WHOLE`] (halves isolating a refused event take each half of their
/// batch's interval, so that halves of halves keep their order too).
type Place = (u64, u64);
/// The interval of a whole batch.
const WHOLE: u64 = 1 << 63;

/// A closed batch waiting to be sent, in its stream's order.
struct Queued {
    /// Order of the batch in its stream: a batch that comes back (throttled, retried) goes
    /// back to its place, so that merging keeps each file's order.
    place: Place,
    /// The width of its part of its batch's interval.
    span: u64,
    batch: LogBatch,
    /// Whether it may be merged with the batches behind it (not while a refused event is
    /// being isolated).
    merge: bool,
}

/// Why a destination is refused, as reported.
#[derive(Debug, Clone)]
struct Refusal {
    operation: &'static str,
    code: Option<String>,
    report: RefusedDestination,
}

struct DestinationState {
    destination: Arc<Destination>,
    share: Arc<Share>,
    batcher: LogBatcher,
    opened_at: Option<Instant>,
    queue: VecDeque<Queued>,
    next_seq: u64,
    in_flight: usize,
    retry_at: Option<Instant>,
    backoff: Backoff,
    refused: Option<Refusal>,
    refused_backoff: Backoff,
    /// On the active list (see [`Active`]).
    listed: bool,
    /// When it last had something to do.
    last_used: Instant,
    /// Its requests carry `x-amzn-logs-format: json/emf`, so CloudWatch extracts the metrics.
    emf: bool,
}

impl DestinationState {
    /// A destination with nothing open, queued or in flight.
    fn new(destination: Arc<Destination>, share: Arc<Share>) -> Self {
        DestinationState {
            destination,
            share,
            batcher: LogBatcher::default(),
            opened_at: None,
            queue: VecDeque::new(),
            next_seq: 0,
            in_flight: 0,
            retry_at: None,
            backoff: Backoff::new(RETRY_BASE, RETRY_CAP),
            refused: None,
            refused_backoff: Backoff::new(REFUSED_RETRY_BASE, REFUSED_RETRY_CAP),
            listed: false,
            last_used: Instant::now(),
            emf: false,
        }
    }

    /// Whether the loop has something to do for it: a batch open (to flush in time) or queued.
    /// One with batches only in flight waits for their tasks, which the loop joins anyway.
    fn has_work(&self) -> bool {
        self.opened_at.is_some() || !self.queue.is_empty()
    }

    /// A request of this destination was taken up by CloudWatch: backoffs start over, and a
    /// refusal or failing mark ends. Returns whether a refusal ended.
    fn accepted_again(&mut self, budget: &ByteBudget) -> bool {
        self.backoff.reset();
        self.refused_backoff.reset();
        budget.set_failing(&self.share, false);
        let Some(refusal) = self.refused.take() else {
            return false;
        };
        info!(
            group = %self.destination.group,
            stream = %self.destination.stream,
            operation = refusal.operation,
            "CloudWatch accepts this destination again; its files go on"
        );
        true
    }

    /// Queues a newly closed batch behind every batch of the stream so far.
    fn enqueue(&mut self, batch: LogBatch) {
        let place = (self.next_seq, 0);
        self.next_seq += 1;
        self.queue.push_back(Queued {
            place,
            span: WHOLE,
            batch,
            merge: true,
        });
    }

    /// Puts a batch back at its place in the queue.
    fn requeue(&mut self, queued: Queued) {
        let at = self.queue.partition_point(|q| q.place <= queued.place);
        self.queue.insert(at, queued);
    }

    /// Closes the open batch into the queue.
    fn close_open(&mut self) {
        if let Some(batch) = self.batcher.take() {
            self.enqueue(batch);
        }
        self.opened_at = None;
    }

    /// The next request of this stream: the first waiting batch with the batches behind it
    /// merged in while they fit, and the open batch too when all of it fits.
    fn next_request(&mut self) -> Option<Queued> {
        let mut first = self.queue.pop_front()?;
        if first.merge {
            while let Some(next) = self.queue.front_mut() {
                if !next.merge {
                    break;
                }
                first.batch.absorb(&mut next.batch, false);
                if !next.batch.events.is_empty() {
                    break;
                }
                self.queue.pop_front();
            }
            // The open batch joins only when all of it fits: taken and left over, it would go
            // out as a request of its own (a full batch is the usual case, and costs only a
            // comparison of counts and bytes).
            if self.queue.is_empty()
                && self.batcher.fits_whole_into(&first.batch)
                && let Some(mut open) = self.batcher.take()
            {
                if first.batch.absorb(&mut open, true) == 0 {
                    // Not reached (the same limits were checked), but never drop events.
                    self.enqueue(open);
                }
                self.opened_at = None;
            }
            first.batch.sort();
        }
        Some(first)
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
    fn note(&mut self, destinations: &mut [Option<DestinationState>], i: usize) {
        let Some(state) = destinations[i].as_mut() else {
            return;
        };
        if !state.listed && state.has_work() {
            state.listed = true;
            self.list.push(i);
        }
    }

    /// Drops the destinations left without work.
    fn prune(&mut self, destinations: &mut [Option<DestinationState>]) {
        self.list.retain(|&i| {
            let Some(state) = destinations[i].as_mut() else {
                return false;
            };
            state.listed = state.has_work();
            state.listed
        });
    }
}

/// A request in flight: its destination, the batch (kept here rather than moved into the task,
/// so that even a task that panics gives its batch back), and when it was sent.
struct InFlight {
    destination: usize,
    place: Place,
    span: u64,
    merge: bool,
    batch: Arc<LogBatch>,
    sent_at: Instant,
}

/// What a send task returns.
type Sent = Result<Rejected, AwsError>;

/// The shipper's state between turns of its loop.
struct Shipper {
    settings: LogShipperSettings,
    sink: LogsSink,
    acks: mpsc::UnboundedSender<Ack>,
    budget: Arc<ByteBudget>,
    telemetry: Arc<Telemetry>,
    stats: LogShipperStats,
    published: LogShipperStats,
    /// Slots by index; a forgotten destination leaves `None`, reused through `free`.
    destinations: Vec<Option<DestinationState>>,
    free: Vec<usize>,
    index: HashMap<Arc<Destination>, usize>,
    active: Active,
    /// Where the next look for batches to send starts, so that under the global cap or the
    /// pace no stream is always served last.
    cursor: usize,
    sending: JoinSet<Sent>,
    in_flight: HashMap<tokio::task::Id, InFlight>,
    /// PutLogEvents' pace, over all streams.
    puts: Arc<Pace>,
    /// CreateLogStream, CreateLogGroup and PutRetentionPolicy's pace.
    control: Arc<Pace>,
    /// When the pace next has a token, if a send waited for one.
    pace_wake: Option<Instant>,
    /// The first flush after start, at a random phase within the flush interval.
    first_flush_at: Instant,
    /// Groups whose retention is set, or being set by a task of `retention_tasks`.
    retention: HashSet<String>,
    retention_tasks: JoinSet<()>,
    drain_until: Option<Instant>,
    window_reported: Option<Instant>,
    swept_at: Instant,
    refused_changed: bool,
}

/// Runs until the tailers' channel closes, then drains. Returns the counters.
pub async fn run(
    settings: LogShipperSettings,
    sink: LogsSink,
    mut messages: mpsc::Receiver<TailMessage>,
    acks: mpsc::UnboundedSender<Ack>,
    budget: Arc<ByteBudget>,
    telemetry: Arc<Telemetry>,
) -> LogShipperStats {
    let mut shipper = Shipper::new(settings, sink, acks, budget.clone(), telemetry);
    loop {
        shipper.publish();
        let now = Instant::now();
        shipper.schedule(now);
        if shipper.drained(now) {
            break;
        }
        if now.duration_since(shipper.swept_at) >= FORGET_SWEEP {
            shipper.swept_at = now;
            shipper.forget_idle(now);
        }
        let wake = shipper.next_wake(now);
        tokio::select! {
            message = messages.recv(), if shipper.drain_until.is_none() => match message {
                Some(TailMessage::Events { destination, events, emf }) => shipper.receive(destination, events, emf),
                None => shipper.drain_until = Some(Instant::now() + shipper.settings.drain_deadline),
            },
            Some(joined) = shipper.sending.join_next_with_id(), if !shipper.sending.is_empty() => {
                let (id, result) = match joined {
                    Ok((id, result)) => (id, result),
                    Err(err) => {
                        warn!("a send task failed ({err}); its batch is sent again");
                        (err.id(), Err(AwsError { operation: "PutLogEvents", kind: AwsErrorKind::OtherClientError, code: None, message: err.to_string() }))
                    }
                };
                shipper.finish(id, result);
            }
            Some(_) = shipper.retention_tasks.join_next(), if !shipper.retention_tasks.is_empty() => {}
            // The files wait for room: `schedule` sends the batches that only wait for a timer.
            () = budget.refused() => {}
            _ = sleep_until(wake) => {}
        }
    }
    shipper.publish();
    shipper.stats
}

impl Shipper {
    /// A shipper that knows no destination yet, counting on from `telemetry`'s counters, its
    /// first flush at a random phase within the flush interval.
    fn new(
        settings: LogShipperSettings,
        sink: LogsSink,
        acks: mpsc::UnboundedSender<Ack>,
        budget: Arc<ByteBudget>,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        let now = Instant::now();
        // Counting on from what a shipper before this one (before a reload or restart) counted.
        let stats = telemetry.logs();
        Shipper {
            first_flush_at: now + settings.flush_interval.mul_f64(fastrand::f64()),
            settings,
            sink,
            acks,
            budget,
            stats,
            published: stats,
            telemetry,
            destinations: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            active: Active::default(),
            cursor: 0,
            sending: JoinSet::new(),
            in_flight: HashMap::new(),
            puts: Arc::new(Pace::default()),
            control: Arc::new(Pace::default()),
            pace_wake: None,
            retention: HashSet::new(),
            retention_tasks: JoinSet::new(),
            drain_until: None,
            window_reported: None,
            swept_at: now,
            refused_changed: false,
        }
    }

    /// Hands the counters (and the refused destinations, when they changed) to telemetry.
    fn publish(&mut self) {
        if self.refused_changed {
            self.refused_changed = false;
            let refused: Vec<RefusedDestination> = self
                .destinations
                .iter()
                .flatten()
                .filter_map(|d| d.refused.as_ref().map(|r| r.report.clone()))
                .collect();
            self.stats.destinations_refused = refused.len() as u64;
            self.telemetry.set_refused(refused);
        }
        self.stats.throttles_last_minute = self.puts.throttles_last_minute();
        self.stats.destinations = self.index.len() as u64;
        self.stats.rate_limit_millis = self
            .puts
            .limit()
            .map_or(0, |rate| (rate * 1000.0).round().max(1.0) as u64);
        if self.stats != self.published {
            self.published = self.stats;
            self.telemetry.set_logs(self.stats);
        }
        // Sends that ended, or nothing in flight: the shipper is not stuck on a request.
        if self.sending.is_empty() {
            self.telemetry.shipper_progressed();
        }
    }

    /// Takes a hand-off of events for `destination`.
    fn receive(&mut self, destination: Arc<Destination>, events: Vec<LogEvent>, emf: Emf) {
        self.telemetry
            .queued_events
            .fetch_sub(events.len() as u64, Ordering::Relaxed);
        let now_ms = epoch_ms();
        let i = self.slot(&destination);
        let state = self.destinations[i].as_mut().expect("a live slot");
        // Sticky, as in the stock agent: once an EMF event was seen, every later request of
        // the destination says so. Plain destinations pay one byte compare per event.
        let seen = match emf {
            Emf::Always => true,
            Emf::Never => false,
            Emf::Detect => events.iter().any(|e| crate::event::is_emf(&e.message)),
        };
        if !state.emf && seen {
            state.emf = true;
            info!(group = %destination.group, stream = %destination.stream, "embedded metric format seen: this destination is sent as EMF from now on");
        }
        let share = state.share.clone();
        let accepted = |e: &LogEvent| time_window(e.timestamp_ms, now_ms) == TimeWindow::Accepted;
        let (events, outside): (Vec<LogEvent>, Vec<LogEvent>) = if events.iter().all(accepted) {
            (events, Vec::new())
        } else {
            events.into_iter().partition(accepted)
        };
        state.last_used = Instant::now();
        if !events.is_empty() {
            let mut closed = Vec::new();
            state.batcher.extend(events, &mut closed);
            for batch in closed {
                state.enqueue(batch);
            }
            state.opened_at.get_or_insert_with(Instant::now);
        }
        self.active.note(&mut self.destinations, i);
        if !outside.is_empty() {
            // CloudWatch would refuse them: counted and reported, acknowledged so the
            // checkpoint moves past them, never sent.
            self.stats.events_out_of_window += outside.len() as u64;
            acknowledge(&outside, &self.acks, &self.budget, &share);
            if self
                .window_reported
                .is_none_or(|at| at.elapsed() >= Duration::from_secs(60))
            {
                self.window_reported = Some(Instant::now());
                warn!(
                    group = %destination.group,
                    total = self.stats.events_out_of_window,
                    "log events more than 14 days old or 2 hours ahead are not sent (CloudWatch refuses them)"
                );
            }
        }
    }

    /// The slot of `destination`, made on its first events.
    fn slot(&mut self, destination: &Arc<Destination>) -> usize {
        if let Some(&i) = self.index.get(destination) {
            return i;
        }
        let state = DestinationState::new(destination.clone(), self.budget.share(destination));
        let i = match self.free.pop() {
            Some(i) => {
                self.destinations[i] = Some(state);
                i
            }
            None => {
                self.destinations.push(Some(state));
                self.destinations.len() - 1
            }
        };
        self.index.insert(destination.clone(), i);
        i
    }

    /// When a destination's open batch is due: `force_flush_interval` after its first event,
    /// but the first flush after start at the random phase.
    fn flush_due(&self, opened_at: Instant) -> Instant {
        if opened_at < self.first_flush_at {
            self.first_flush_at
        } else {
            opened_at + self.settings.flush_interval
        }
    }

    /// Closes the batches that are due and sends what the limits and the pace allow, taking
    /// the destinations in turn.
    fn schedule(&mut self, now: Instant) {
        self.pace_wake = None;
        let count = self.active.list.len();
        let first = if count == 0 { 0 } else { self.cursor % count };
        let draining = self.drain_until.is_some();
        // Once the pace has no token, nothing more is sent this turn, but every destination is
        // still visited: its due batch closes and its ended backoff clears, so that no past
        // deadline is left to wake the loop at once (it spun until the next token).
        let mut paced = false;
        for k in (first..count).chain(0..first) {
            let i = self.active.list[k];
            let flush_due = self.destinations[i]
                .as_ref()
                .and_then(|s| s.opened_at)
                .map(|at| self.flush_due(at));
            let Some(state) = self.destinations[i].as_mut() else {
                continue;
            };
            // A destination that may take no more bytes (the budget is spent, or its share) gets
            // no more events until something is delivered: a batch of it that only waits for
            // its timer goes now, or with many streams the whole budget sat in open batches
            // for `force_flush_interval` at a time. One with requests queued or in flight
            // frees room anyway and keeps filling its batch.
            let stuck = state.opened_at.is_some()
                && state.in_flight == 0
                && state.queue.is_empty()
                && !self.budget.would_allow(&state.share);
            if flush_due.is_some_and(|at| now >= at) || draining || stuck {
                state.close_open();
            }
            // Backoff holds during the drain too: a down endpoint must not be hammered.
            if state.retry_at.is_some_and(|at| at > now) {
                continue;
            }
            state.retry_at = None;
            while !paced
                && state.in_flight < self.settings.concurrency.max(1)
                && self.sending.len() < self.settings.requests_in_flight.max(1)
                && !state.queue.is_empty()
            {
                if let Err(next) = self.puts.try_take() {
                    // The pace is the process's: nothing else can go out before `next`.
                    self.pace_wake = Some(next);
                    paced = true;
                    // It is first in line for the next token.
                    self.cursor = k;
                    break;
                }
                let Some(queued) = state.next_request() else {
                    break;
                };
                state.in_flight += 1;
                self.cursor = k + 1;
                let sink = self.sink.clone();
                let control = self.control.clone();
                let destination = state.destination.clone();
                let format = if state.emf {
                    Format::Emf
                } else {
                    Format::Plain
                };
                let batch = Arc::new(queued.batch);
                let shared = batch.clone();
                let task = self.sending.spawn(async move {
                    send(&sink, &control, &destination, format, &shared).await
                });
                self.in_flight.insert(
                    task.id(),
                    InFlight {
                        destination: i,
                        place: queued.place,
                        span: queued.span,
                        merge: queued.merge,
                        batch,
                        sent_at: now,
                    },
                );
            }
        }
        self.active.prune(&mut self.destinations);
    }

    /// Whether the drain is over: nothing left that may still go out before the deadline.
    fn drained(&self, now: Instant) -> bool {
        let Some(deadline) = self.drain_until else {
            return false;
        };
        let idle = self.sending.is_empty()
            && self.destinations.iter().flatten().all(|d| {
                (d.queue.is_empty() && d.batcher.is_empty())
                    || d.retry_at.is_some_and(|at| at >= deadline)
            });
        if idle {
            return true;
        }
        if now >= deadline {
            warn!(
                "shutdown deadline reached: unsent log data will be read again at the next start"
            );
            return true;
        }
        false
    }

    /// The next moment something is due: a partial batch's flush, a retry, a token of the
    /// pace, the drain deadline, or the heartbeat.
    fn next_wake(&self, now: Instant) -> Instant {
        self.active
            .list
            .iter()
            .filter_map(|&i| self.destinations[i].as_ref())
            .flat_map(|d| {
                [
                    d.opened_at.map(|at| self.flush_due(at)),
                    d.retry_at.filter(|_| !d.queue.is_empty()),
                ]
            })
            .flatten()
            .chain(self.pace_wake)
            .chain(self.drain_until)
            .chain(Some(now + HEARTBEAT))
            .min()
            .unwrap_or(now + HEARTBEAT)
    }

    /// Acts on the end of a send task.
    fn finish(&mut self, id: tokio::task::Id, result: Sent) {
        self.telemetry.shipper_progressed();
        let Some(InFlight {
            destination: i,
            place,
            span,
            merge,
            batch,
            sent_at,
        }) = self.in_flight.remove(&id)
        else {
            return;
        };
        // The task has ended, so the loop holds the only reference.
        let batch = Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
        let mut queued = Queued {
            place,
            span,
            batch,
            merge,
        };
        let Some(state) = self.destinations[i].as_mut() else {
            return;
        };
        state.in_flight -= 1;
        state.last_used = Instant::now();
        let stats = &mut self.stats;
        let budget = &self.budget;
        let acks = &self.acks;
        let acknowledge =
            |events: &[LogEvent], share: &Share| acknowledge(events, acks, budget, share);
        match result {
            Ok(rejected) => {
                if rejected.any() {
                    let (too_old, too_new, expired) =
                        rejected_split(&rejected, queued.batch.events.len());
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
                self.puts.accepted();
                stats.batches_sent += 1;
                stats.events_sent += queued.batch.events.len() as u64;
                stats.bytes_sent += queued.batch.bytes as u64;
                self.refused_changed |= state.accepted_again(budget);
                acknowledge(&queued.batch.events, &state.share);
                // Group names are case-sensitive: `App` and `app` are two groups.
                if let Some(days) = state.destination.retention_days
                    && !self.retention.contains(&state.destination.group)
                {
                    if self.retention.len() >= MAX_RETENTION_GROUPS {
                        // A group per path over a long life: forgetting costs one more call.
                        self.retention.clear();
                    }
                    let group = state.destination.group.clone();
                    self.retention.insert(group.clone());
                    let (sink, control) = (self.sink.clone(), self.control.clone());
                    // Runs until the retention is set (or the shipper stops).
                    self.retention_tasks.spawn(async move {
                        set_retention(&sink, &control, &group, days).await;
                    });
                }
            }
            Err(error) if error.disposition() == Disposition::BadEvents => {
                // CloudWatch took the request up and judged its events: the destination works.
                self.refused_changed |= state.accepted_again(budget);
                if queued.batch.events.len() > 1 {
                    // Isolate the refused event: resend each half on its own, in order.
                    let second = queued.batch.events.split_off(queued.batch.events.len() / 2);
                    let bytes =
                        |events: &[LogEvent]| events.iter().map(super::batch::billed_bytes).sum();
                    let second = LogBatch {
                        bytes: bytes(&second),
                        events: second,
                    };
                    queued.batch.bytes = bytes(&queued.batch.events);
                    let half = (queued.span / 2).max(1);
                    state.requeue(Queued {
                        place: (queued.place.0, queued.place.1 + half),
                        span: half,
                        batch: second,
                        merge: false,
                    });
                    state.requeue(Queued {
                        place: queued.place,
                        span: half,
                        batch: queued.batch,
                        merge: false,
                    });
                    info!(group = %state.destination.group, "a batch was refused as invalid; resending it in halves to find the refused event: {error}");
                } else {
                    let source = queued.batch.events[0].source();
                    stats.events_given_up += 1;
                    warn!(
                        group = %state.destination.group,
                        stream = %state.destination.stream,
                        file = source.file,
                        start = source.start_offset,
                        end = source.end_offset,
                        "a log event was refused as invalid and is given up: {error}"
                    );
                    acknowledge(&queued.batch.events, &state.share);
                }
            }
            Err(error) => match error.disposition() {
                Disposition::Throttled => {
                    stats.retries += 1;
                    stats.throttles += 1;
                    if error.operation == "PutLogEvents" {
                        self.puts.throttled(sent_at);
                    } else {
                        self.control.throttled(sent_at);
                    }
                    debug!(group = %state.destination.group, "{error}");
                    // A half isolating a refused event stays apart: merged, the bisection
                    // would start over.
                    state.requeue(queued);
                }
                Disposition::Refused => {
                    stats.retries += 1;
                    let delay = state.refused_backoff.next_delay();
                    state.retry_at = Some(Instant::now() + delay);
                    budget.set_failing(&state.share, true);
                    let changed = state
                        .refused
                        .as_ref()
                        .is_none_or(|r| r.operation != error.operation || r.code != error.code);
                    if changed {
                        warn!(
                            group = %state.destination.group,
                            stream = %state.destination.stream,
                            operation = error.operation,
                            permission = %error.permission(),
                            retry_in_s = delay.as_secs(),
                            "CloudWatch refuses this destination: only its files pause, it is tried again every few minutes and nothing is given up: {error}"
                        );
                        state.refused = Some(Refusal {
                            operation: error.operation,
                            code: error.code.clone(),
                            report: RefusedDestination {
                                group: state.destination.group.clone(),
                                stream: state.destination.stream.clone(),
                                operation: error.operation.to_owned(),
                                permission: error.permission(),
                                error: error.message.clone(),
                                since: epoch_ms() as u64 / 1000,
                            },
                        });
                        self.refused_changed = true;
                    } else {
                        debug!(group = %state.destination.group, retry_in_s = delay.as_secs(), "still refused: {error}");
                    }
                    state.requeue(queued);
                }
                Disposition::Transient | Disposition::BadEvents => {
                    stats.retries += 1;
                    let delay = state.backoff.next_delay();
                    state.retry_at = Some(Instant::now() + delay);
                    budget.set_failing(&state.share, true);
                    warn!(group = %state.destination.group, retry_in_ms = delay.as_millis() as u64, "{error}");
                    state.requeue(queued);
                }
            },
        }
        self.active.note(&mut self.destinations, i);
    }

    /// Forgets the destinations idle for [`FORGET_AFTER`] with nothing held.
    fn forget_idle(&mut self, now: Instant) {
        let mut forgotten = 0;
        for i in 0..self.destinations.len() {
            let forget = self.destinations[i].as_ref().is_some_and(|d| {
                !d.listed
                    && d.in_flight == 0
                    && d.refused.is_none()
                    && d.queue.is_empty()
                    && d.batcher.is_empty()
                    && now.duration_since(d.last_used) >= FORGET_AFTER
            });
            if forget && let Some(state) = self.destinations[i].take() {
                self.index.remove(&state.destination);
                self.free.push(i);
                forgotten += 1;
            }
        }
        if forgotten > 0 {
            // Slots at the end go for good; the index gives back its room once mostly empty.
            while matches!(self.destinations.last(), Some(None)) {
                self.destinations.pop();
            }
            self.free.retain(|&i| i < self.destinations.len());
            if self.index.capacity() > 4 * self.index.len().max(16) {
                self.index.shrink_to_fit();
            }
            if self.destinations.capacity() > 4 * self.destinations.len().max(16) {
                self.destinations.shrink_to_fit();
            }
            debug!(
                forgotten,
                left = self.index.len(),
                "idle destinations forgotten"
            );
        }
    }
}

/// Acknowledges delivered (or given-up) events: adjacent ranges of one file merged into one
/// acknowledgement, and their bytes given back to the destination's share at once.
fn acknowledge(
    events: &[LogEvent],
    acks: &mpsc::UnboundedSender<Ack>,
    budget: &ByteBudget,
    share: &Share,
) {
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
    budget.release(share, bytes);
}

async fn sleep_until(at: Instant) {
    tokio::time::sleep_until(at).await;
}

fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One PutLogEvents; on ResourceNotFound the stream (and the group) is created, paced by
/// `control`, and the put tried once more.
async fn send(
    sink: &LogsSink,
    control: &Pace,
    destination: &Destination,
    format: Format,
    batch: &LogBatch,
) -> Result<Rejected, AwsError> {
    match sink.put(destination, format, batch).await {
        Err(err) if err.kind == AwsErrorKind::NotFound => {
            sink.create_stream(destination, control).await?;
            sink.put(destination, format, batch).await
        }
        other => other,
    }
}

/// Sets `group`'s retention, trying until it is set: throttled calls wait for the pace,
/// others back off (long after a refusal, logged when it starts and when it changes).
async fn set_retention(sink: &LogsSink, control: &Pace, group: &str, days: u32) {
    let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP);
    let mut refused = Backoff::new(REFUSED_RETRY_BASE, REFUSED_RETRY_CAP);
    let mut reported: Option<Option<String>> = None;
    loop {
        control.take().await;
        let sent_at = Instant::now();
        let error = match sink.put_retention(group, days).await {
            Ok(()) => {
                if reported.is_some() {
                    info!(group, "retention set to {days} days");
                }
                return;
            }
            Err(error) => error,
        };
        let delay = match error.disposition() {
            Disposition::Throttled => {
                control.throttled(sent_at);
                Duration::ZERO
            }
            Disposition::Refused | Disposition::BadEvents => refused.next_delay(),
            Disposition::Transient => backoff.next_delay(),
        };
        if reported.as_ref() != Some(&error.code) {
            reported = Some(error.code.clone());
            warn!(
                group,
                permission = %error.permission(),
                retry_in_s = delay.as_secs(),
                "cannot set retention to {days} days yet; trying again until it is set: {error}"
            );
        }
        tokio::time::sleep(delay).await;
    }
}

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

    fn destination() -> Destination {
        Destination {
            group: "g".into(),
            stream: "s".into(),
            class: None,
            retention_days: None,
        }
    }

    #[test]
    fn acknowledgements_merge_adjacent_ranges_and_give_the_bytes_back_at_once() {
        let (acks, mut received) = mpsc::unbounded_channel();
        let budget = ByteBudget::new(1 << 20);
        let share = budget.share(&destination());
        let events = [
            event(1, 0, 10),
            event(1, 10, 30),
            event(2, 0, 5),
            event(1, 30, 40),
            event(1, 50, 60),
        ];
        let held: usize = events.iter().map(LogEvent::budget_bytes).sum();
        assert!(budget.try_acquire(&share, held + 100));
        acknowledge(&events, &acks, &budget, &share);
        let mut got = Vec::new();
        while let Ok(ack) = received.try_recv() {
            got.push((ack.file, ack.start, ack.end));
        }
        assert_eq!(got, [(1, 0, 30), (2, 0, 5), (1, 30, 40), (1, 50, 60)]);
        assert_eq!(budget.used(), 100, "messages and events given back");
    }

    fn state(budget: &ByteBudget) -> DestinationState {
        DestinationState::new(Arc::new(destination()), budget.share(&destination()))
    }

    #[test]
    fn waiting_batches_go_out_merged_in_file_order_and_a_returned_batch_keeps_its_place() {
        let budget = ByteBudget::new(1 << 20);
        let mut state = state(&budget);
        // Five flushes of 20 events each waited behind a throttled request.
        for flush in 0..5u64 {
            state.batcher.extend(
                (0..20)
                    .map(|n| event(1, (flush * 20 + n) * 10, (flush * 20 + n) * 10 + 10))
                    .collect(),
                &mut Vec::new(),
            );
            state.close_open();
        }
        state
            .batcher
            .extend(vec![event(1, 1000, 1010)], &mut Vec::new());
        let request = state.next_request().unwrap();
        assert_eq!(
            request.batch.events.len(),
            101,
            "the queue and the open batch in one request"
        );
        assert!(state.queue.is_empty() && state.batcher.is_empty());
        let offsets: Vec<u64> = request
            .batch
            .events
            .iter()
            .map(|e| e.message.start_offset)
            .collect();
        assert!(offsets.is_sorted());
        // It is throttled; meanwhile a new batch closes. It goes back before the new one.
        state
            .batcher
            .extend(vec![event(1, 1010, 1020)], &mut Vec::new());
        state.close_open();
        state.requeue(request);
        assert_eq!(state.queue[0].place, (0, 0));
        let again = state.next_request().unwrap();
        assert_eq!(again.batch.events.len(), 102);
        assert_eq!(
            again.batch.events.last().unwrap().message.start_offset,
            1010
        );
    }

    #[test]
    fn halves_of_halves_keep_file_order_and_are_not_merged_back() {
        let budget = ByteBudget::new(1 << 20);
        let mut state = state(&budget);
        // Batch 0 split in halves, its first half split again: [q1, q2, h2] in file order,
        // whatever order they come back in.
        let one = |n: u64| LogBatch {
            bytes: 36,
            events: vec![event(1, n * 10, n * 10 + 10)],
        };
        let quarter = WHOLE / 4;
        state.next_seq = 1;
        for (place, n) in [((0, 2 * quarter), 2), ((0, quarter), 1), ((0, 0), 0)] {
            state.requeue(Queued {
                place,
                span: quarter,
                batch: one(n),
                merge: false,
            });
        }
        state
            .batcher
            .extend(vec![event(1, 100, 110)], &mut Vec::new());
        state.close_open();
        let order: Vec<u64> = std::iter::from_fn(|| state.next_request())
            .map(|q| q.batch.events[0].message.start_offset)
            .collect();
        assert_eq!(order, [0, 10, 20, 100], "each alone, in file order");
    }

    #[test]
    fn destinations_idle_for_a_minute_are_forgotten_and_their_room_given_back() {
        let budget = Arc::new(ByteBudget::new(1 << 20));
        let (acks, _received) = mpsc::unbounded_channel();
        let mut shipper = Shipper::new(
            LogShipperSettings {
                flush_interval: Duration::from_secs(1),
                concurrency: 1,
                requests_in_flight: MAX_REQUESTS_IN_FLIGHT,
                drain_deadline: Duration::from_secs(1),
            },
            LogsSink::DryRun,
            acks,
            budget.clone(),
            Arc::new(Telemetry::default()),
        );
        // 100,000 short-lived files, a stream each, one after another.
        for i in 0..100_000 {
            let destination = Arc::new(Destination {
                stream: format!("file-{i}"),
                ..destination()
            });
            shipper.slot(&destination);
        }
        assert_eq!(budget.shares_live(), 100_000);
        let start = Instant::now();
        shipper.forget_idle(start + FORGET_AFTER / 2);
        assert_eq!(shipper.index.len(), 100_000, "not idle long enough yet");
        shipper.forget_idle(start + FORGET_AFTER * 2);
        assert!(shipper.index.is_empty() && shipper.destinations.is_empty());
        assert!(shipper.index.capacity() < 1_000 && shipper.destinations.capacity() < 1_000);
        assert_eq!(budget.shares_live(), 0, "their shares are gone too");
        // A destination with data waiting is never forgotten.
        let busy = Arc::new(destination());
        let i = shipper.slot(&busy);
        shipper.destinations[i]
            .as_mut()
            .unwrap()
            .queue
            .push_back(Queued {
                place: (0, 0),
                span: WHOLE,
                batch: LogBatch::default(),
                merge: true,
            });
        shipper.active.note(&mut shipper.destinations, i);
        shipper.forget_idle(Instant::now() + FORGET_AFTER * 2);
        assert_eq!(shipper.index.len(), 1);
    }

    #[test]
    fn the_retry_constants_are_the_documented_ones() {
        assert_eq!(RETRY_CAP, Duration::from_secs(60));
        assert_eq!(REFUSED_RETRY_BASE, Duration::from_secs(30));
        assert_eq!(REFUSED_RETRY_CAP, Duration::from_secs(300));
        assert_eq!(FORGET_AFTER, Duration::from_secs(60));
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
