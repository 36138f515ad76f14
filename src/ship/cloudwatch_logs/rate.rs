//! The process's pace for one CloudWatch Logs API under throttling: a token bucket whose rate
//! a throttle cuts and each accepted request grows back.
//!
//! Owns [`Pace`]. Every host of a fleet shares one account quota per API (PutLogEvents: 800 to
//! 5,000 requests a second by region; CreateLogStream and PutRetentionPolicy far fewer). A
//! throttled request cuts the process's request rate for that API, across all its streams, and
//! each accepted request grows it back by a small share; a throttle answered to a request sent
//! before the last decrease belongs to the burst that caused it and does not cut again. Until
//! the first throttle, and a while after the last, the pace is unlimited. It only counts and
//! decides when; what is sent, and in which order, is the shipper's business.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// What a throttle multiplies the rate by: 0.7, as CUBIC does, rather than TCP Reno's 0.5. A
/// quota is hit by a few requests over it, not by a collapse, and halving left a single
/// process using under half of a quota it had to itself.
pub const DECREASE_FACTOR: f64 = 0.7;
/// What the first throttle multiplies the rate in use by, when the pace was unlimited: the
/// process knows nothing yet of how many share the quota, and a fleet started together is
/// over it by a wide margin (as TCP halves when it leaves slow start).
pub const FIRST_DECREASE_FACTOR: f64 = 0.5;
/// How much each accepted request grows the rate, as a share of it. Growth per accepted
/// request (rather than per second) keeps the share of throttled requests near
/// `INCREASE_PER_REQUEST / (1 - DECREASE_FACTOR)` whatever each process's share of the quota:
/// forty processes sharing 10 requests a second grew by 1.2 a second together at +0.03 a
/// second each, and half of their requests were throttled.
pub const INCREASE_PER_REQUEST: f64 = 0.04;
/// The slowest pace: one request every 20 s. A fleet of 100,000 hosts at the largest
/// regions' quota gets that much each.
pub const MIN_RATE: f64 = 0.05;
/// Without a throttle for this long, the pace is unlimited again.
pub const UNLIMITED_AFTER: Duration = Duration::from_secs(300);
/// Seconds of sends over which the rate in use is measured (for the first decrease).
const MEASURE_SECS: usize = 5;
/// Largest burst the bucket holds, in seconds of the rate (at least one request).
const BURST_SECONDS: f64 = 1.0;

/// The pace of one API, shared by the shipper loop and its send tasks.
#[derive(Debug, Default)]
pub struct Pace {
    inner: Mutex<Aimd>,
}

/// The pace's state, driven by explicit instants so that tests need no clock.
#[derive(Debug, Default)]
pub struct Aimd {
    /// Requests a second allowed now; `None` while unlimited.
    rate: Option<f64>,
    tokens: f64,
    refilled_at: Option<Instant>,
    last_decrease: Option<Instant>,
    last_throttle: Option<Instant>,
    /// Sends per second over the last [`MEASURE_SECS`] seconds, by second since `epoch`.
    sends: [(u64, u32); MEASURE_SECS],
    epoch: Option<Instant>,
    /// Throttle instants of the last minute, for the status (bounded by the rate of answers).
    throttles: std::collections::VecDeque<Instant>,
}

impl Aimd {
    /// Takes a token for a request at `now`, or says when the next one will be there.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Instant> {
        self.refill(now);
        let Some(rate) = self.rate else {
            self.count_send(now);
            return Ok(());
        };
        // Refills in floating point land a hair under whole tokens.
        if self.tokens >= 1.0 - 1e-9 {
            self.tokens = (self.tokens - 1.0).max(0.0);
            self.count_send(now);
            Ok(())
        } else {
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / rate);
            Err(now + wait.max(Duration::from_millis(1)))
        }
    }

    /// A request was accepted at `now`: the rate grows, up to twice what is in use (a process
    /// that sends less than it may must not bank a rate it never tried).
    pub fn accepted(&mut self, now: Instant) {
        self.refill(now);
        if let Some(rate) = self.rate {
            let ceiling = (2.0 * self.measured(now)).max(1.0);
            self.rate = Some((rate * (1.0 + INCREASE_PER_REQUEST)).min(ceiling.max(rate)));
        }
    }

    /// A request sent at `sent_at` was throttled (answered at `now`).
    pub fn throttled(&mut self, sent_at: Instant, now: Instant) {
        self.throttles.push_back(now);
        self.last_throttle = Some(now);
        self.trim_throttles(now);
        if self.last_decrease.is_some_and(|at| sent_at < at) {
            return;
        }
        self.refill(now);
        let decreased = match self.rate {
            Some(rate) => rate * DECREASE_FACTOR,
            None => self.measured(now) * FIRST_DECREASE_FACTOR,
        };
        self.rate = Some(decreased.max(MIN_RATE));
        self.tokens = self.tokens.min(0.0);
        self.last_decrease = Some(now);
    }

    /// Requests a second allowed now, `None` while unlimited.
    pub fn limit(&mut self, now: Instant) -> Option<f64> {
        self.refill(now);
        self.rate
    }

    /// Throttles answered in the last minute.
    pub fn throttles_last_minute(&mut self, now: Instant) -> u64 {
        self.trim_throttles(now);
        self.throttles.len() as u64
    }

    fn trim_throttles(&mut self, now: Instant) {
        while self
            .throttles
            .front()
            .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(60))
        {
            self.throttles.pop_front();
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = self
            .refilled_at
            .map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64());
        self.refilled_at = Some(now);
        let Some(rate) = self.rate else {
            return;
        };
        if self
            .last_throttle
            .is_some_and(|at| now.duration_since(at) >= UNLIMITED_AFTER)
        {
            self.rate = None;
            return;
        }
        self.tokens = (self.tokens + elapsed * rate).min((rate * BURST_SECONDS).max(1.0));
    }

    fn second(&mut self, now: Instant) -> u64 {
        now.duration_since(*self.epoch.get_or_insert(now)).as_secs()
    }

    fn count_send(&mut self, now: Instant) {
        let second = self.second(now);
        let slot = &mut self.sends[second as usize % MEASURE_SECS];
        if slot.0 != second {
            *slot = (second, 0);
        }
        slot.1 += 1;
    }

    /// Requests a second sent over the last few seconds.
    fn measured(&mut self, now: Instant) -> f64 {
        let second = self.second(now);
        let sent: u32 = self
            .sends
            .iter()
            .filter(|(at, _)| second.saturating_sub(*at) < MEASURE_SECS as u64)
            .map(|(_, count)| count)
            .sum();
        let span = (second + 1).min(MEASURE_SECS as u64) as f64;
        (f64::from(sent) / span).max(MIN_RATE)
    }
}

impl Pace {
    fn lock(&self) -> std::sync::MutexGuard<'_, Aimd> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a token now, or says when the next one will be there.
    pub fn try_take(&self) -> Result<(), Instant> {
        self.lock().try_take(Instant::now())
    }

    /// Waits for a token and takes it.
    pub async fn take(&self) {
        loop {
            let next = self.try_take();
            match next {
                Ok(()) => return,
                Err(at) => tokio::time::sleep_until(at).await,
            }
        }
    }

    /// A request sent at `sent_at` was throttled.
    pub fn throttled(&self, sent_at: Instant) {
        self.lock().throttled(sent_at, Instant::now());
    }

    /// A request was accepted.
    pub fn accepted(&self) {
        self.lock().accepted(Instant::now());
    }

    /// Requests a second allowed now, `None` while unlimited.
    pub fn limit(&self) -> Option<f64> {
        self.lock().limit(Instant::now())
    }

    /// Throttles answered in the last minute.
    pub fn throttles_last_minute(&self) -> u64 {
        self.lock().throttles_last_minute(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, secs: f64) -> Instant {
        start + Duration::from_secs_f64(secs)
    }

    #[test]
    fn the_pace_is_unlimited_until_the_first_throttle() {
        let start = Instant::now();
        let mut pace = Aimd::default();
        for i in 0..1000 {
            assert!(pace.try_take(at(start, f64::from(i) / 1000.0)).is_ok());
        }
        assert_eq!(pace.limit(at(start, 1.0)), None);
    }

    #[test]
    fn a_throttle_cuts_the_rate_in_use_and_it_grows_back_by_steps() {
        let start = Instant::now();
        let mut pace = Aimd::default();
        // Four requests a second for five seconds.
        for i in 0..20 {
            pace.try_take(at(start, f64::from(i) * 0.25)).unwrap();
        }
        pace.throttled(at(start, 4.8), at(start, 4.9));
        let limit = pace.limit(at(start, 4.9)).unwrap();
        assert!(
            (limit - 4.0 * FIRST_DECREASE_FACTOR).abs() < 0.01,
            "{limit}"
        );
        // Acceptances while nothing is sent do not bank a rate.
        pace.accepted(at(start, 15.0));
        let idle = pace.limit(at(start, 15.0)).unwrap();
        assert!((idle - 4.0 * FIRST_DECREASE_FACTOR).abs() < 0.01, "{idle}");
        // Sent at the limit, each acceptance grows it by a share.
        let mut now = at(start, 15.0);
        let mut accepted = 0;
        while now < at(start, 25.0) {
            match pace.try_take(now) {
                Ok(()) => {
                    pace.accepted(now);
                    accepted += 1;
                }
                Err(next) => now = next,
            }
        }
        let grown = pace.limit(now).unwrap();
        // At most a share per acceptance, and at most twice the rate in use.
        let most = 4.0 * FIRST_DECREASE_FACTOR * (1.0 + INCREASE_PER_REQUEST).powi(accepted);
        assert!(
            grown > idle * 2.0 && grown <= most && grown <= 2.0 * f64::from(accepted) / 5.0 + 1e-9,
            "{grown} after {accepted} accepted, at most {most}"
        );
        assert_eq!(pace.throttles_last_minute(at(start, 15.0)), 1);
        assert_eq!(pace.throttles_last_minute(at(start, 65.0)), 0);
    }

    #[test]
    fn throttles_of_requests_sent_before_the_decrease_cut_once() {
        let start = Instant::now();
        let mut pace = Aimd::default();
        for i in 0..40 {
            pace.try_take(at(start, f64::from(i) * 0.125)).unwrap();
        }
        // Three requests of one burst, all sent before the first answer.
        pace.throttled(at(start, 4.8), at(start, 4.9));
        pace.throttled(at(start, 4.85), at(start, 4.95));
        pace.throttled(at(start, 4.875), at(start, 4.99));
        let limit = pace.limit(at(start, 4.99)).unwrap();
        assert!(
            (limit - 8.0 * FIRST_DECREASE_FACTOR).abs() < 0.05,
            "{limit}"
        );
        // One sent after the decrease cuts again.
        pace.throttled(at(start, 5.0), at(start, 5.1));
        let limit = pace.limit(at(start, 5.1)).unwrap();
        let twice = 8.0 * FIRST_DECREASE_FACTOR * DECREASE_FACTOR;
        assert!((limit - twice).abs() < 0.05, "{limit}");
    }

    #[test]
    fn tokens_pace_requests_at_the_limit() {
        let start = Instant::now();
        let mut pace = Aimd::default();
        pace.try_take(start).unwrap();
        pace.throttled(start, start);
        // One request in the first second: the rate in use, decreased.
        let mut sent = 0;
        let mut now = start;
        while now < at(start, 20.0) {
            match pace.try_take(now) {
                Ok(()) => sent += 1,
                Err(next) => {
                    assert!(next > now);
                    now = next;
                }
            }
        }
        // The decreased rate over 20 s (nothing accepted: it does not grow).
        let expected = FIRST_DECREASE_FACTOR * 20.0;
        assert!(
            (f64::from(sent) - expected).abs() <= 2.0,
            "{sent} against {expected}"
        );
    }

    #[test]
    fn the_rate_never_falls_below_the_floor_and_recovers_to_unlimited() {
        let start = Instant::now();
        let mut pace = Aimd::default();
        let mut now = start;
        for _ in 0..20 {
            now += Duration::from_secs(1);
            pace.throttled(now, now);
        }
        assert!(pace.limit(now).unwrap() >= MIN_RATE);
        let later = now + UNLIMITED_AFTER;
        assert_eq!(pace.limit(later), None);
    }

    #[test]
    fn the_constants_are_the_documented_ones() {
        assert_eq!(FIRST_DECREASE_FACTOR, 0.5);
        assert_eq!(DECREASE_FACTOR, 0.7);
        assert_eq!(MIN_RATE, 0.05);
        assert_eq!(UNLIMITED_AFTER, Duration::from_secs(300));
    }
}
