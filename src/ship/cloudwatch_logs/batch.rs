//! PutLogEvents limits, the time window CloudWatch accepts, and the per-stream batch.
//!
//! Owns the named limits of one PutLogEvents call (each with a test at and just past its
//! boundary) and [`LogBatcher`], which closes a batch before an event would break one: 10,000
//! events, 1,048,576 bytes counting each message's UTF-8 length plus 26, and a 24-hour span.
//! Batches are sorted by timestamp (stably, so lines with equal timestamps keep file order)
//! before they are sent. It knows nothing of files or of how a batch is sent.

pub use crate::event::{EventSource, LogEvent};

/// Most events in one PutLogEvents call.
pub const MAX_EVENTS_PER_BATCH: usize = 10_000;
/// Most bytes in one call, counted as the sum of message bytes plus [`EVENT_OVERHEAD_BYTES`].
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// What CloudWatch adds to each message when it counts a batch's size.
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// Largest message of one event: an event, overhead included, is at most 1 MB.
pub const MAX_EVENT_MESSAGE_BYTES: usize = MAX_BATCH_BYTES - EVENT_OVERHEAD_BYTES;
/// Longest time span between the oldest and newest event of one call.
pub const MAX_BATCH_SPAN_MS: i64 = 24 * 60 * 60 * 1000;
/// Events older than this are refused by CloudWatch.
pub const MAX_EVENT_AGE_MS: i64 = 14 * 24 * 60 * 60 * 1000;
/// Events further in the future than this are refused by CloudWatch.
pub const MAX_EVENT_AHEAD_MS: i64 = 2 * 60 * 60 * 1000;

/// An event's size as CloudWatch counts it: message bytes plus the per-event overhead.
pub fn billed_bytes(event: &LogEvent) -> usize {
    event.message.len + EVENT_OVERHEAD_BYTES
}

/// Whether CloudWatch would accept an event's timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeWindow {
    /// Within 14 days back and 2 hours ahead.
    Accepted,
    /// More than 14 days old.
    TooOld,
    /// More than 2 hours ahead.
    TooNew,
}

/// Checks `timestamp_ms` against CloudWatch's window around `now_ms`.
pub fn time_window(timestamp_ms: i64, now_ms: i64) -> TimeWindow {
    if timestamp_ms < now_ms - MAX_EVENT_AGE_MS {
        TimeWindow::TooOld
    } else if timestamp_ms > now_ms + MAX_EVENT_AHEAD_MS {
        TimeWindow::TooNew
    } else {
        TimeWindow::Accepted
    }
}

/// A closed batch for one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogBatch {
    /// The events, sorted by timestamp once closed.
    pub events: Vec<LogEvent>,
    /// Their size as CloudWatch counts it.
    pub bytes: usize,
}

impl LogBatch {
    /// Moves the events of `next`, from its first, that fit this batch within every limit onto
    /// its end, and returns how many; with `whole`, all of them or none. The result is not
    /// sorted: call [`LogBatch::sort`] once everything is in.
    ///
    /// This is how batches that waited (throttled, retrying, at the in-flight limit) go out in
    /// as few requests as the limits allow. `next` must hold events that came after this
    /// batch's in their files, so that the stable sort keeps each file's order.
    pub fn absorb(&mut self, next: &mut LogBatch, whole: bool) -> usize {
        let mut span = self.events.iter().map(|e| e.timestamp_ms);
        let first = span.next();
        let (mut oldest, mut newest) = span.fold(
            (first.unwrap_or(0), first.unwrap_or(0)),
            |(oldest, newest), ts| (oldest.min(ts), newest.max(ts)),
        );
        let held = self.events.len();
        let mut bytes = self.bytes;
        let mut fit = 0;
        for event in &next.events {
            let count = held + fit;
            let size = billed_bytes(event);
            let ts = event.timestamp_ms;
            let (o, n) = if count == 0 {
                (ts, ts)
            } else {
                (oldest.min(ts), newest.max(ts))
            };
            if count >= MAX_EVENTS_PER_BATCH
                || bytes + size > MAX_BATCH_BYTES
                || n - o > MAX_BATCH_SPAN_MS
            {
                break;
            }
            (oldest, newest) = (o, n);
            bytes += size;
            fit += 1;
        }
        if fit == 0 || (whole && fit < next.events.len()) {
            return 0;
        }
        let moved = bytes - self.bytes;
        if fit == next.events.len() {
            self.events.append(&mut next.events);
        } else {
            self.events.extend(next.events.drain(..fit));
        }
        self.bytes = bytes;
        next.bytes -= moved;
        fit
    }

    /// Sorts the events by timestamp, stably (a file's lines with equal timestamps keep their
    /// order), unless they are in order already.
    pub fn sort(&mut self) {
        if !self.events.is_sorted_by_key(|e| e.timestamp_ms) {
            self.events.sort_by_key(|e| e.timestamp_ms);
        }
    }
}

/// Accumulates one stream's events into batches within the limits.
#[derive(Debug, Default)]
pub struct LogBatcher {
    open: LogBatch,
    oldest_ms: i64,
    newest_ms: i64,
}

impl LogBatcher {
    /// Adds an event; returns the batch that had to be closed first to make room, if any.
    pub fn push(&mut self, event: LogEvent) -> Option<LogBatch> {
        let one = std::slice::from_ref(&event);
        let closed = if self.fitting(one) == 0 {
            let closed = self.take();
            self.fitting(one);
            closed
        } else {
            None
        };
        self.open.events.push(event);
        closed
    }

    /// Adds events in order; each batch closed to make room for the next event goes to
    /// `closed`.
    ///
    /// What fits the open batch is appended in one block copy; only the part of a run that ends
    /// a batch moves event by event. The batch never takes the run's vector over: a run cut
    /// into batches of a few events each (timestamps a day apart) would otherwise leave each
    /// batch holding the capacity of the whole run.
    pub fn extend(&mut self, events: Vec<LogEvent>, closed: &mut impl Extend<LogBatch>) {
        let mut events = events.into_iter();
        loop {
            let fit = self.fitting(events.as_slice());
            if fit == events.len() {
                self.open.events.extend(events);
                return;
            }
            if fit == 0 {
                closed.extend(self.take());
                continue;
            }
            self.open.events.extend(events.by_ref().take(fit));
        }
    }

    /// How many of `events`, from the first, fit the open batch; counts them in. An event
    /// always fits an empty batch (its message is at most [`MAX_EVENT_MESSAGE_BYTES`]), so a
    /// batch closed for want of room is never closed empty.
    fn fitting(&mut self, events: &[LogEvent]) -> usize {
        let held = self.open.events.len();
        for (fit, event) in events.iter().enumerate() {
            let size = billed_bytes(event);
            let ts = event.timestamp_ms;
            if held + fit == 0 {
                self.oldest_ms = ts;
                self.newest_ms = ts;
            } else {
                let (oldest, newest) = (self.oldest_ms.min(ts), self.newest_ms.max(ts));
                if held + fit >= MAX_EVENTS_PER_BATCH
                    || self.open.bytes + size > MAX_BATCH_BYTES
                    || newest - oldest > MAX_BATCH_SPAN_MS
                {
                    return fit;
                }
                self.oldest_ms = oldest;
                self.newest_ms = newest;
            }
            self.open.bytes += size;
        }
        events.len()
    }

    /// Closes the open batch (sorted by timestamp), if it holds anything.
    pub fn take(&mut self) -> Option<LogBatch> {
        if self.open.events.is_empty() {
            return None;
        }
        let mut batch = std::mem::take(&mut self.open);
        // Lines of one file are almost always in order already. A stable sort allocates
        // scratch for half the batch (hundreds of KB) before it finds that out; the check
        // reads each timestamp once.
        batch.sort();
        Some(batch)
    }

    /// Whether all of the open batch would fit into `batch` within every limit: checked on
    /// counts and bytes first, so that a full `batch` (the usual case) costs nothing more.
    pub fn fits_whole_into(&self, batch: &LogBatch) -> bool {
        if self.open.events.is_empty()
            || batch.events.len() + self.open.events.len() > MAX_EVENTS_PER_BATCH
            || batch.bytes + self.open.bytes > MAX_BATCH_BYTES
        {
            return false;
        }
        let (oldest, newest) = batch
            .events
            .iter()
            .fold((self.oldest_ms, self.newest_ms), |(o, n), e| {
                (o.min(e.timestamp_ms), n.max(e.timestamp_ms))
            });
        newest - oldest <= MAX_BATCH_SPAN_MS
    }

    /// Events waiting in the open batch.
    pub fn len(&self) -> usize {
        self.open.events.len()
    }

    /// Whether the open batch is empty.
    pub fn is_empty(&self) -> bool {
        self.open.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tail::multiline::RawEvent;
    use bytes::Bytes;

    fn event(timestamp_ms: i64, len: usize, n: u64) -> LogEvent {
        let text = Bytes::from(vec![b'x'; len]);
        LogEvent {
            timestamp_ms,
            message: RawEvent {
                parts: smallvec::smallvec![text],
                len,
                start_offset: n * 10,
                end_offset: n * 10 + 10,
            },
            file: 1,
        }
    }

    #[test]
    fn the_limits_are_the_documented_ones() {
        assert_eq!(MAX_EVENTS_PER_BATCH, 10_000);
        assert_eq!(MAX_BATCH_BYTES, 1_048_576);
        assert_eq!(EVENT_OVERHEAD_BYTES, 26);
        assert_eq!(MAX_EVENT_MESSAGE_BYTES + EVENT_OVERHEAD_BYTES, 1024 * 1024);
        assert_eq!(MAX_BATCH_SPAN_MS, 86_400_000);
    }

    #[test]
    fn ten_thousand_events_fit_and_the_next_one_closes_the_batch() {
        let mut batcher = LogBatcher::default();
        for n in 0..MAX_EVENTS_PER_BATCH as u64 {
            assert!(batcher.push(event(0, 1, n)).is_none());
        }
        let closed = batcher
            .push(event(0, 1, 10_000))
            .expect("the 10,001st event closes the batch");
        assert_eq!(closed.events.len(), MAX_EVENTS_PER_BATCH);
        assert_eq!(batcher.len(), 1);
    }

    #[test]
    fn bytes_count_message_plus_26_up_to_exactly_the_limit() {
        // Two events filling the batch to exactly 1,048,576 bytes.
        let first = 524_288 - EVENT_OVERHEAD_BYTES;
        let mut batcher = LogBatcher::default();
        assert!(batcher.push(event(0, first, 0)).is_none());
        assert!(
            batcher.push(event(0, first, 1)).is_none(),
            "exactly at the limit fits"
        );
        let closed = batcher
            .push(event(0, 0, 2))
            .expect("one more byte-counted event does not");
        assert_eq!(closed.bytes, MAX_BATCH_BYTES);
    }

    #[test]
    fn one_byte_over_the_limit_closes_the_batch() {
        let mut batcher = LogBatcher::default();
        batcher.push(event(0, 524_288 - EVENT_OVERHEAD_BYTES, 0));
        assert!(
            batcher
                .push(event(0, 524_288 - EVENT_OVERHEAD_BYTES + 1, 1))
                .is_some()
        );
    }

    #[test]
    fn a_maximal_event_fits_alone() {
        let mut batcher = LogBatcher::default();
        assert!(batcher.push(event(0, MAX_EVENT_MESSAGE_BYTES, 0)).is_none());
        assert_eq!(batcher.take().unwrap().bytes, MAX_BATCH_BYTES);
    }

    #[test]
    fn a_span_of_exactly_24_hours_fits_and_one_more_millisecond_does_not() {
        let mut batcher = LogBatcher::default();
        batcher.push(event(1_000, 1, 0));
        assert!(
            batcher
                .push(event(1_000 + MAX_BATCH_SPAN_MS, 1, 1))
                .is_none()
        );
        let closed = batcher
            .push(event(999, 1, 2))
            .expect("older than the span allows");
        assert_eq!(closed.events.len(), 2);
        assert_eq!(batcher.len(), 1);
    }

    #[test]
    fn a_closed_batch_is_sorted_by_time_keeping_file_order_for_ties() {
        let mut batcher = LogBatcher::default();
        for (n, ts) in [(0, 30), (1, 10), (2, 20), (3, 10)] {
            batcher.push(event(ts, 1, n));
        }
        let batch = batcher.take().unwrap();
        let order: Vec<_> = batch
            .events
            .iter()
            .map(|e| (e.timestamp_ms, e.message.start_offset))
            .collect();
        assert_eq!(order, [(10, 10), (10, 30), (20, 20), (30, 0)]);
    }

    /// Where a greedy batcher cuts `events` (sizes and timestamps in file order): the index
    /// of each batch's first event. Written from the limits alone, apart from the batcher.
    fn reference_cuts(events: &[(usize, i64)]) -> Vec<usize> {
        let mut cuts = vec![0];
        let (mut count, mut bytes, mut oldest, mut newest) = (0, 0, 0, 0);
        for (i, &(len, ts)) in events.iter().enumerate() {
            let size = len + 26;
            if count > 0
                && (count == 10_000
                    || bytes + size > 1_048_576
                    || newest.max(ts) - oldest.min(ts) > 86_400_000)
            {
                cuts.push(i);
                count = 0;
            }
            if count == 0 {
                (bytes, oldest, newest) = (0, ts, ts);
            }
            count += 1;
            bytes += size;
            oldest = oldest.min(ts);
            newest = newest.max(ts);
        }
        cuts
    }

    #[test]
    fn runs_of_events_are_batched_as_one_by_one_within_every_limit() {
        for seed in 0..40 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut shape = Vec::new();
            let mut ts = 1_000_000_000_000i64;
            // One seed in four writes short lines a millisecond apart: batches then end at 10,000
            // events.
            let short = seed % 4 == 0;
            for _ in 0..rng.usize(1..30_000) {
                let len = match rng.u8(..100) {
                    _ if short => rng.usize(0..40),
                    0 => rng.usize(100_000..=MAX_EVENT_MESSAGE_BYTES),
                    1..=20 => 0,
                    _ => rng.usize(1..300),
                };
                ts += match rng.u16(..1000) {
                    _ if short => 1,
                    0 => 20 * 3_600_000,
                    1 => -20 * 3_600_000,
                    n => i64::from(n % 7),
                };
                shape.push((len, ts));
            }
            let events: Vec<LogEvent> = shape
                .iter()
                .enumerate()
                .map(|(n, &(len, ts))| event(ts, len, n as u64))
                .collect();
            // The same events one by one, and in runs of random length (as hand-offs come).
            let mut one_by_one = LogBatcher::default();
            let mut expected: Vec<LogBatch> = Vec::new();
            for event in events.clone() {
                expected.extend(one_by_one.push(event));
            }
            expected.extend(one_by_one.take());
            let mut in_runs = LogBatcher::default();
            let mut got: Vec<LogBatch> = Vec::new();
            let mut rest = events;
            while !rest.is_empty() {
                let tail = rest.split_off(rest.len().min(rng.usize(1..6_000)));
                in_runs.extend(rest, &mut got);
                rest = tail;
            }
            got.extend(in_runs.take());
            assert_eq!(got, expected, "seed {seed}");
            let firsts: Vec<usize> = got
                .iter()
                .map(|b| {
                    let first = b.events.iter().map(|e| e.message.start_offset).min();
                    (first.unwrap() / 10) as usize
                })
                .collect();
            assert_eq!(firsts, reference_cuts(&shape), "seed {seed}");
            for batch in &got {
                let sizes: usize = batch.events.iter().map(billed_bytes).sum();
                assert_eq!(batch.bytes, sizes, "seed {seed}");
                assert!(batch.events.is_sorted_by_key(|e| e.timestamp_ms));
            }
        }
    }

    #[test]
    fn a_run_cut_into_many_batches_leaves_each_batch_only_room_for_its_own() {
        // Timestamps two days apart every third event: batches of three.
        let run: Vec<LogEvent> = (0..4096u64)
            .map(|n| event((n / 3) as i64 * 2 * MAX_BATCH_SPAN_MS, 10, n))
            .collect();
        let mut batcher = LogBatcher::default();
        let mut closed = Vec::new();
        batcher.extend(run, &mut closed);
        closed.extend(batcher.take());
        assert_eq!(closed.len(), 4096usize.div_ceil(3));
        let room: usize = closed.iter().map(|b| b.events.capacity()).sum();
        assert!(room <= 2 * 4096, "room for {room} events");
    }

    fn batch(events: Vec<LogEvent>) -> LogBatch {
        LogBatch {
            bytes: events.iter().map(billed_bytes).sum(),
            events,
        }
    }

    #[test]
    fn waiting_batches_merge_up_to_each_limit_and_keep_file_order_for_ties() {
        let mut first = batch((0..6_000).map(|n| event(5, 1, n)).collect());
        let mut second = batch((6_000..12_000).map(|n| event(5, 1, n)).collect());
        assert_eq!(first.absorb(&mut second, true), 0, "not all of it fits");
        assert_eq!(first.absorb(&mut second, false), 4_000);
        assert_eq!(first.events.len(), MAX_EVENTS_PER_BATCH);
        assert_eq!(second.events.len(), 2_000);
        assert_eq!(second.bytes, 2_000 * 27);
        first.sort();
        let offsets: Vec<u64> = first
            .events
            .iter()
            .map(|e| e.message.start_offset)
            .collect();
        assert!(offsets.is_sorted(), "equal timestamps keep file order");

        // Bytes: two batches of 600 KB do not fit one request.
        let mut a = batch(vec![event(0, 600_000, 0)]);
        let mut b = batch(vec![event(0, 600_000, 1)]);
        assert_eq!(a.absorb(&mut b, false), 0);
        assert_eq!((a.events.len(), b.events.len()), (1, 1));
        // Time: a batch a day and a millisecond later stays apart.
        let mut a = batch(vec![event(0, 1, 0)]);
        let mut b = batch(vec![event(MAX_BATCH_SPAN_MS + 1, 1, 1), event(10, 1, 2)]);
        assert_eq!(a.absorb(&mut b, false), 0);
        // Later timestamps of the second batch come out sorted after the merge.
        let mut a = batch(vec![event(30, 1, 0)]);
        let mut b = batch(vec![event(10, 1, 1), event(20, 1, 2)]);
        assert_eq!(a.absorb(&mut b, true), 2);
        a.sort();
        let order: Vec<i64> = a.events.iter().map(|e| e.timestamp_ms).collect();
        assert_eq!(order, [10, 20, 30]);
        assert_eq!(a.bytes, 3 * 27);
        assert_eq!(b.bytes, 0);
    }

    #[test]
    fn an_open_batch_fits_whole_only_within_every_limit() {
        let mut batcher = LogBatcher::default();
        batcher.extend(
            (0..10).map(|n| event(n as i64, 1, n)).collect(),
            &mut Vec::new(),
        );
        assert!(batcher.fits_whole_into(&batch(vec![event(0, 1, 100)])));
        let full = batch(
            (0..MAX_EVENTS_PER_BATCH as u64)
                .map(|n| event(0, 1, n))
                .collect(),
        );
        assert!(!batcher.fits_whole_into(&full), "count");
        let big = batch(vec![event(0, MAX_EVENT_MESSAGE_BYTES - 100, 0)]);
        assert!(!batcher.fits_whole_into(&big), "bytes");
        let old = batch(vec![event(-MAX_BATCH_SPAN_MS, 1, 0)]);
        assert!(!batcher.fits_whole_into(&old), "span");
        assert!(
            !LogBatcher::default().fits_whole_into(&batch(Vec::new())),
            "nothing open"
        );
    }

    #[test]
    fn the_time_window_is_14_days_back_and_2_hours_ahead() {
        let now = 2_000_000_000_000;
        assert_eq!(
            time_window(now - MAX_EVENT_AGE_MS, now),
            TimeWindow::Accepted
        );
        assert_eq!(
            time_window(now - MAX_EVENT_AGE_MS - 1, now),
            TimeWindow::TooOld
        );
        assert_eq!(
            time_window(now + MAX_EVENT_AHEAD_MS, now),
            TimeWindow::Accepted
        );
        assert_eq!(
            time_window(now + MAX_EVENT_AHEAD_MS + 1, now),
            TimeWindow::TooNew
        );
    }
}
