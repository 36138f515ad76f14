//! Bounds between producers and shippers.
//!
//! Owns [`ByteBudget`]: the bytes of log data read but not yet acknowledged by CloudWatch. A
//! tailer acquires before handing an event on and blocks when the budget is spent (backpressure:
//! reading pauses, nothing is dropped, memory stays bounded); the shipper releases when
//! CloudWatch acknowledged (or the event was given up). Counts of events are bounded by the
//! channels themselves.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Default bytes of log data in memory between reading and acknowledgement, events included
/// (see `LogEvent::budget_bytes`): four full 1 MiB requests in flight and the next being
/// batched. The bulk benchmark reads 334 MB/s with it at 38 MB peak RSS, and 354 MB/s at
/// 48 MB with twice as much, so more only costs memory; `--log-buffer-mib` raises it for
/// hosts with many busy streams.
pub const DEFAULT_LOG_BUDGET_BYTES: usize = 8 * 1024 * 1024;

/// A counting budget of bytes.
#[derive(Debug)]
pub struct ByteBudget {
    max: usize,
    used: Mutex<usize>,
    freed: Condvar,
}

impl ByteBudget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            used: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Takes `bytes`, waiting up to `wait` for room. A request larger than the whole budget is
    /// granted when nothing else is held, so one huge event cannot block for ever. Returns false
    /// on timeout (the caller checks for shutdown and tries again).
    pub fn acquire(&self, bytes: usize, wait: Duration) -> bool {
        // The counter stays consistent even if a holder panicked; recover it.
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let fits = |used: usize| used == 0 || used + bytes <= self.max;
        if !fits(*used) {
            let (guard, _) = self
                .freed
                .wait_timeout_while(used, wait, |u| !fits(*u))
                .unwrap_or_else(|p| p.into_inner());
            used = guard;
            if !fits(*used) {
                return false;
            }
        }
        *used += bytes;
        true
    }

    /// Gives `bytes` back.
    pub fn release(&self, bytes: usize) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(bytes);
        self.freed.notify_all();
    }

    /// The budget's size in bytes.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        *self.used.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn acquiring_past_the_budget_waits_for_a_release() {
        let budget = Arc::new(ByteBudget::new(100));
        assert!(budget.acquire(80, Duration::ZERO));
        assert!(
            !budget.acquire(30, Duration::from_millis(1)),
            "no room and nobody releases"
        );
        let releaser = {
            let budget = budget.clone();
            std::thread::spawn(move || budget.release(50))
        };
        assert!(
            budget.acquire(30, Duration::from_secs(30)),
            "granted once the release happens"
        );
        releaser.join().unwrap();
        assert_eq!(budget.used(), 60);
    }

    #[test]
    fn an_event_larger_than_the_budget_passes_alone() {
        let budget = ByteBudget::new(10);
        assert!(budget.acquire(50, Duration::ZERO));
        assert!(!budget.acquire(1, Duration::ZERO));
        budget.release(50);
        assert_eq!(budget.used(), 0);
    }
}
