//! Bounds between producers and shippers.
//!
//! Owns [`ByteBudget`]: the bytes of log data read but not yet acknowledged by CloudWatch, and
//! each destination's [`Share`] of them. A tailer takes a chunk's bytes from its destination's
//! share before handing the chunk on, and never waits for them: when the share (or the whole
//! budget) is spent, only the files feeding that destination pause, nothing is dropped, memory
//! stays bounded, and the budget wakes the tailer when room is given back. The shipper gives
//! bytes back when CloudWatch acknowledged them (or they were given up), and marks a share as
//! failing while its destination's requests fail, which shrinks what that destination may
//! hold: one refused group can never take the room every other destination needs. Counts of
//! events are bounded by the channels themselves. It knows nothing of files or of AWS.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::event::Destination;

/// Default bytes of log data in memory between reading and acknowledgement, events included
/// (see `LogEvent::budget_bytes`). One destination may hold half of it ([`ByteBudget::share_cap`]):
/// 8 MiB, four full 1 MiB requests in flight and the next being batched, which is what one busy
/// stream needs to reach its full speed (the bulk benchmark read 334 MB/s with 8 MiB at 38 MB
/// peak RSS, and 354 MB/s at 48 MB with 16, so more only costs memory). The other half is there
/// for every other destination when one of them fails while it holds its whole share.
/// `--log-buffer-mib` raises it for hosts with many busy streams.
pub const DEFAULT_LOG_BUDGET_BYTES: usize = 16 * 1024 * 1024;

/// One destination's part of the budget. Files of the same destination share one (see
/// [`ByteBudget::share`]); the shipper holds it too, to give bytes back.
#[derive(Debug, Default)]
pub struct Share {
    /// Bytes it holds now. Written under the budget's lock only, read anywhere.
    held: AtomicUsize,
    /// Its destination's requests fail: it may take only from the failing part of the budget.
    failing: AtomicBool,
    /// Files of the destination whose read chunks wait for room (kept by the tailer): while
    /// any does, no other file of the destination is read, so room that comes back goes to
    /// what was read first, and what waits in memory is one pass, not one per file.
    stalled_files: AtomicUsize,
}

impl Share {
    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Whether its destination is marked failing.
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Files of the destination whose read chunks wait for room.
    pub fn stalled_files(&self) -> usize {
        self.stalled_files.load(Ordering::Relaxed)
    }

    /// A file's chunks started (`true`) or stopped (`false`) waiting for room.
    pub fn set_stalled(&self, stalled: bool) {
        if stalled {
            self.stalled_files.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stalled_files.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The totals the budget's lock guards.
#[derive(Debug, Default)]
struct Totals {
    /// Bytes held by every share.
    used: usize,
    /// Of them, bytes held by failing shares.
    failing: usize,
    /// A take was refused since the last wake: the next give-back wakes the tailer.
    waiting: bool,
}

/// A counting budget of bytes, shared out among destinations.
///
/// Rules, each checked when bytes are taken. A take passes while the holder is under each limit
/// and may go past it by its own size: one chunk larger than a share still goes out, and
/// [`ByteBudget::has_room`] tells a reader beforehand whether what it reads can be handed on.
/// - the whole budget: at most [`ByteBudget::max`] held in all, where failing destinations
///   count for at most [`ByteBudget::failing_cap`]: what they held beyond it when they started
///   failing does not take the healthy ones' room (memory then stays under 1.75 times the
///   budget, plus a chunk);
/// - a destination: at most [`ByteBudget::share_cap`] (half the budget);
/// - failing destinations together: at most [`ByteBudget::failing_cap`] (a quarter) for new
///   takes, so any number of refused destinations leave three quarters to the healthy ones.
pub struct ByteBudget {
    max: usize,
    totals: Mutex<Totals>,
    /// Shares by destination, so that every file of one destination, and the shipper, use the
    /// same share. An entry is pruned only when nobody else holds its share and it holds no
    /// bytes: bytes taken by a file that is gone are still given back to the share they were
    /// taken from.
    shares: Mutex<ShareMap>,
    /// Wakes the tailer when bytes come back after a take was refused.
    wake: Option<crossbeam_channel::Sender<()>>,
    /// Wakes the sources that run as tasks (the journal, EMF over TCP) at the same moments:
    /// they wait in [`ByteBudget::acquire`].
    room: tokio::sync::Notify,
    /// Wakes the shipper when a take is refused: a batch that only waits for its flush timer
    /// can go now, since nothing more joins it until something is delivered.
    refused: tokio::sync::Notify,
}

#[derive(Default)]
struct ShareMap {
    map: HashMap<Destination, Arc<Share>>,
    /// Size at which unused entries are pruned next.
    prune_at: usize,
}

impl ShareMap {
    /// Drops the entries only the map holds that hold no bytes.
    fn prune(&mut self) {
        self.map
            .retain(|_, share| Arc::strong_count(share) > 1 || share.held() > 0);
    }
}

impl std::fmt::Debug for ByteBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteBudget")
            .field("max", &self.max)
            .field("used", &self.used())
            .finish_non_exhaustive()
    }
}

impl ByteBudget {
    /// A budget of `max` bytes that wakes no one.
    pub fn new(max: usize) -> Self {
        Self::with_wake(max, None)
    }

    /// A budget of `max` bytes that sends on `wake` when bytes come back after a refused take.
    pub fn with_wake(max: usize, wake: Option<crossbeam_channel::Sender<()>>) -> Self {
        Self {
            max: max.max(1),
            totals: Mutex::default(),
            shares: Mutex::default(),
            wake,
            room: tokio::sync::Notify::new(),
            refused: tokio::sync::Notify::new(),
        }
    }

    /// The share of `destination`: the same one for every caller while any holds it.
    pub fn share(&self, destination: &Destination) -> Arc<Share> {
        let mut shares = self.shares.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(share) = shares.map.get(destination) {
            return share.clone();
        }
        if shares.map.len() >= shares.prune_at {
            shares.prune();
            shares.prune_at = (shares.map.len() * 2).max(64);
        }
        let share = Arc::new(Share::default());
        shares.map.insert(destination.clone(), share.clone());
        share
    }

    /// Destinations whose share someone holds or that hold bytes (for tests and memory
    /// accounting).
    pub fn shares_live(&self) -> usize {
        let mut shares = self.shares.lock().unwrap_or_else(PoisonError::into_inner);
        shares.prune();
        shares.map.len()
    }

    /// Whether a take for `share` would pass now (a tailer reads a file only then, so what it
    /// reads is almost always handed on at once instead of waiting in memory). A `false` makes
    /// the next give-back wake the tailer.
    pub fn has_room(&self, share: &Share) -> bool {
        let mut totals = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
        let allowed = self.allows(&totals, share);
        if !allowed {
            self.refuse(&mut totals);
        }
        allowed
    }

    /// Notes a refused take: the next give-back wakes the tailer, and the shipper is told now
    /// (once per wait, not at every refusal).
    fn refuse(&self, totals: &mut Totals) {
        if !std::mem::replace(&mut totals.waiting, true) {
            self.refused.notify_one();
        }
    }

    /// Completes when a take was refused since the last call (a refusal before the first
    /// call counts): the shipper then sends what only waits for its timer (see
    /// [`ByteBudget::would_allow`]).
    pub async fn refused(&self) {
        self.refused.notified().await;
    }

    /// Whether a take for `share` would pass now, without asking to be woken.
    pub fn would_allow(&self, share: &Share) -> bool {
        let totals = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
        self.allows(&totals, share)
    }

    fn allows(&self, totals: &Totals, share: &Share) -> bool {
        // What failing destinations hold beyond their cap does not count against the others.
        let counted = totals.used - totals.failing.saturating_sub(self.failing_cap());
        counted < self.max
            && share.held() < self.share_cap()
            && (!share.failing() || totals.failing < self.failing_cap())
    }

    /// Takes `bytes` for `share` if the rules allow it now; never waits. A refused take makes
    /// the next give-back wake the tailer.
    pub fn try_acquire(&self, share: &Share, bytes: usize) -> bool {
        let mut totals = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.allows(&totals, share) {
            self.refuse(&mut totals);
            return false;
        }
        totals.used += bytes;
        if share.failing() {
            totals.failing += bytes;
        }
        share.held.store(share.held() + bytes, Ordering::Relaxed);
        true
    }

    /// Takes `bytes` for `share`, waiting until the rules allow it: for sources that can stop
    /// reading while they wait (a journal reader, an EMF TCP connection), so what they accepted
    /// is never dropped. Cancel-safe: nothing is taken unless it completes.
    pub async fn acquire(&self, share: &Share, bytes: usize) {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            // Registered before the try, so a give-back between the try and the wait is seen.
            room.as_mut().enable();
            if self.try_acquire(share, bytes) {
                return;
            }
            room.await;
        }
    }

    fn wake_waiters(&self) {
        if let Some(wake) = &self.wake {
            let _ = wake.try_send(());
        }
        self.room.notify_waiters();
    }

    /// Gives `bytes` of `share` back.
    pub fn release(&self, share: &Share, bytes: usize) {
        let wake = {
            let mut totals = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
            // Bytes are given back to the share they were taken from, never more.
            debug_assert!(
                bytes <= share.held(),
                "{bytes} given back, {} held",
                share.held()
            );
            let bytes = bytes.min(share.held());
            totals.used = totals.used.saturating_sub(bytes);
            if share.failing() {
                totals.failing = totals.failing.saturating_sub(bytes);
            }
            share.held.store(share.held() - bytes, Ordering::Relaxed);
            std::mem::take(&mut totals.waiting)
        };
        if wake {
            self.wake_waiters();
        }
    }

    /// Marks `share` failing or healthy again. Its bytes move between the failing and healthy
    /// parts; either may make room (for it, or for the others), so whoever waits is woken.
    pub fn set_failing(&self, share: &Share, failing: bool) {
        let wake = {
            let mut totals = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
            if share.failing() == failing {
                return;
            }
            share.failing.store(failing, Ordering::Relaxed);
            if failing {
                totals.failing += share.held();
            } else {
                totals.failing = totals.failing.saturating_sub(share.held());
            }
            // Either way the counted total changes (what failing shares hold beyond their cap
            // stops counting against the others), so whoever waits looks again.
            std::mem::take(&mut totals.waiting)
        };
        if wake {
            self.wake_waiters();
        }
    }

    /// The budget's size in bytes.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Most one destination holds: half the budget.
    pub fn share_cap(&self) -> usize {
        (self.max / 2).max(1)
    }

    /// Most failing destinations hold together: a quarter of the budget.
    pub fn failing_cap(&self) -> usize {
        (self.max / 4).max(1)
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .used
    }

    /// Bytes held now by failing destinations.
    pub fn used_failing(&self) -> usize {
        self.totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination(group: &str) -> Destination {
        Destination {
            group: group.into(),
            stream: "s".into(),
            class: None,
            retention_days: None,
        }
    }

    #[test]
    fn the_default_budget_gives_one_destination_eight_mib() {
        assert_eq!(DEFAULT_LOG_BUDGET_BYTES, 16 * 1024 * 1024);
        let budget = ByteBudget::new(DEFAULT_LOG_BUDGET_BYTES);
        assert_eq!(budget.share_cap(), 8 * 1024 * 1024);
        assert_eq!(budget.failing_cap(), 4 * 1024 * 1024);
    }

    #[test]
    fn one_destination_holds_at_most_half_and_the_rest_stays_for_the_others() {
        let budget = ByteBudget::new(100);
        let (a, b) = (
            budget.share(&destination("a")),
            budget.share(&destination("b")),
        );
        assert!(budget.try_acquire(&a, 50));
        assert!(!budget.try_acquire(&a, 1), "a's share is spent");
        assert!(budget.try_acquire(&b, 50), "b still has its half");
        assert!(!budget.try_acquire(&b, 1), "and the whole budget is spent");
        budget.release(&a, 50);
        assert_eq!((budget.used(), a.held(), b.held()), (50, 0, 50));
    }

    #[test]
    fn failing_destinations_together_hold_at_most_a_quarter() {
        let budget = ByteBudget::new(100);
        let shares: Vec<_> = (0..4)
            .map(|i| budget.share(&destination(&format!("refused-{i}"))))
            .collect();
        for share in &shares {
            budget.set_failing(share, true);
        }
        assert!(budget.try_acquire(&shares[0], 20));
        assert!(budget.try_acquire(&shares[1], 5));
        assert!(
            !budget.try_acquire(&shares[2], 1),
            "failing shares hold 25 of 25"
        );
        let healthy = budget.share(&destination("healthy"));
        assert!(budget.try_acquire(&healthy, 50), "the healthy keep theirs");
        // Recovery moves the bytes back to the healthy part, and room opens for the others.
        budget.set_failing(&shares[0], false);
        assert_eq!(budget.used_failing(), 5);
        assert!(budget.try_acquire(&shares[2], 20));
    }

    #[test]
    fn a_destination_failing_while_it_holds_its_share_keeps_it_and_takes_no_more() {
        let budget = ByteBudget::new(100);
        let busy = budget.share(&destination("busy"));
        assert!(budget.try_acquire(&busy, 50));
        budget.set_failing(&busy, true);
        assert_eq!(budget.used_failing(), 50);
        budget.release(&busy, 20);
        assert!(!budget.try_acquire(&busy, 10), "failing part at its cap");
        assert!(!budget.has_room(&busy));
        budget.release(&busy, 10);
        assert!(budget.has_room(&busy));
        assert!(budget.try_acquire(&busy, 10));
        assert_eq!(budget.used_failing(), 30);
    }

    #[test]
    fn two_busy_destinations_refused_together_leave_room_for_the_healthy() {
        let budget = ByteBudget::new(100);
        let (a, b) = (
            budget.share(&destination("a")),
            budget.share(&destination("b")),
        );
        assert!(budget.try_acquire(&a, 50));
        assert!(budget.try_acquire(&b, 50));
        budget.set_failing(&a, true);
        budget.set_failing(&b, true);
        let healthy = budget.share(&destination("healthy"));
        assert!(
            budget.try_acquire(&healthy, 50),
            "failing bytes beyond 25 do not count"
        );
        assert!(!budget.try_acquire(&healthy, 1), "its own half is spent");
        let other = budget.share(&destination("other"));
        assert!(budget.try_acquire(&other, 25));
        assert!(
            !budget.try_acquire(&other, 1),
            "25 of the failing, 50 and 25 of the healthy: 100 of 100 counted"
        );
    }

    #[test]
    fn bytes_of_a_file_that_is_gone_go_back_to_the_share_they_came_from() {
        let budget = ByteBudget::new(100);
        let taken = budget.share(&destination("a"));
        assert!(budget.try_acquire(&taken, 30));
        drop(taken);
        assert_eq!(budget.shares_live(), 1, "it still holds bytes");
        let shipper = budget.share(&destination("a"));
        budget.release(&shipper, 30);
        assert_eq!(budget.used(), 0);
        drop(shipper);
        assert_eq!(budget.shares_live(), 0);
    }

    #[test]
    fn an_event_larger_than_a_share_passes_alone() {
        let budget = ByteBudget::new(10);
        let share = budget.share(&destination("a"));
        assert!(budget.try_acquire(&share, 50));
        assert!(!budget.try_acquire(&share, 1));
        budget.release(&share, 50);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn files_of_one_destination_take_from_one_share_and_a_gone_share_is_forgotten() {
        let budget = ByteBudget::new(100);
        let first = budget.share(&destination("a"));
        let second = budget.share(&destination("a"));
        assert!(Arc::ptr_eq(&first, &second));
        drop((first, second));
        assert_eq!(budget.shares_live(), 0);
        for i in 0..10_000 {
            drop(budget.share(&destination(&format!("short-lived-{i}"))));
        }
        let map = budget.shares.lock().unwrap().map.len();
        assert!(map < 200, "dead entries pruned as the map grows: {map}");
    }

    #[test]
    fn a_give_back_after_a_refused_take_wakes_the_tailer_once() {
        let (wake, woken) = crossbeam_channel::bounded(1);
        let budget = ByteBudget::with_wake(100, Some(wake));
        let share = budget.share(&destination("a"));
        assert!(budget.try_acquire(&share, 50));
        budget.release(&share, 10);
        assert!(woken.try_recv().is_err(), "nobody was refused");
        assert!(budget.try_acquire(&share, 10));
        assert!(!budget.try_acquire(&share, 10));
        budget.release(&share, 10);
        assert!(woken.try_recv().is_ok());
        budget.release(&share, 10);
        assert!(woken.try_recv().is_err(), "one wake per refusal");
    }

    /// The shipper is told of a refusal once per wait: the refusals of one wait (every file of
    /// a pass) wake it once, and it is told again after a give-back and a new refusal.
    #[test]
    fn a_refused_take_tells_the_shipper_once_per_wait() {
        use std::future::Future;
        let told = |budget: &ByteBudget| {
            let waker = std::task::Waker::noop();
            let mut context = std::task::Context::from_waker(waker);
            let mut refused = std::pin::pin!(budget.refused());
            refused.as_mut().poll(&mut context).is_ready()
        };
        let budget = ByteBudget::new(100);
        let share = budget.share(&destination("a"));
        assert!(budget.try_acquire(&share, 100));
        assert!(!told(&budget), "nothing refused yet");
        assert!(!budget.has_room(&share));
        assert!(!budget.try_acquire(&share, 1));
        assert!(told(&budget));
        assert!(!told(&budget), "once per wait");
        budget.release(&share, 100);
        assert!(budget.try_acquire(&share, 100));
        assert!(!budget.has_room(&share));
        assert!(told(&budget), "a new wait");
    }

    /// A task waiting for room (the journal, an EMF connection) takes it when bytes come back,
    /// and waits while there is none.
    #[test]
    fn a_source_waiting_for_room_takes_it_when_bytes_come_back() {
        use std::future::Future;
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        let budget = ByteBudget::new(100);
        let share = budget.share(&destination("a"));
        assert!(budget.try_acquire(&share, 50));
        let mut waiting = std::pin::pin!(budget.acquire(&share, 10));
        assert!(
            waiting.as_mut().poll(&mut context).is_pending(),
            "the share is spent"
        );
        assert!(waiting.as_mut().poll(&mut context).is_pending());
        budget.release(&share, 50);
        assert!(waiting.as_mut().poll(&mut context).is_ready());
        assert_eq!(share.held(), 10);
    }

    /// Two destinations holding the budget start failing: what they hold beyond the failing
    /// cap stops counting, and a source waiting for a third destination is woken to take it.
    #[test]
    fn a_source_waiting_for_room_is_woken_when_the_holders_start_failing() {
        use std::future::Future;
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        let budget = ByteBudget::new(100);
        let (a, b, c) = (
            budget.share(&destination("a")),
            budget.share(&destination("b")),
            budget.share(&destination("c")),
        );
        assert!(budget.try_acquire(&a, 50));
        assert!(budget.try_acquire(&b, 50));
        let mut waiting = std::pin::pin!(budget.acquire(&c, 10));
        assert!(
            waiting.as_mut().poll(&mut context).is_pending(),
            "the budget is spent"
        );
        budget.set_failing(&a, true);
        budget.set_failing(&b, true);
        assert!(
            waiting.as_mut().poll(&mut context).is_ready(),
            "room for the healthy destination"
        );
    }
}
