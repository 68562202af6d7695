//! A cheap clock for the hot set's expiry checks, and deadlines on it that are never late.
//!
//! A hot-set hit reads the clock once. `Instant::now` costs ~25 ns here; Linux's
//! `CLOCK_MONOTONIC_COARSE` (via `coarsetime`, from the vDSO) costs 6-8 ns and lags the real
//! clock by up to a tick. A [`Deadline`] is set earlier than the real expiry by more than that
//! lag, so a copy checked against the coarse clock never outlives its entry; it only expires a
//! few milliseconds early, and the next call then reads the store.

use std::time::{Duration, Instant};

/// The longest tick assumed for the coarse clock: Linux's is 1/HZ, HZ >= 100 (tested below).
#[cfg(target_os = "linux")]
const TICK: Duration = Duration::from_millis(10);
/// How much earlier than the real expiry a deadline is set: two ticks and a millisecond.
#[cfg(target_os = "linux")]
const MARGIN: Duration = TICK
    .saturating_mul(2)
    .saturating_add(Duration::from_millis(1));
/// Elsewhere the clock is the real one (below): only the millisecond.
#[cfg(not(target_os = "linux"))]
const MARGIN: Duration = Duration::from_millis(1);

/// A moment on the coarse clock: `coarsetime` ticks (2^-32 s) on Linux, nanoseconds elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Deadline(u64);

impl Deadline {
    /// The coarse moment by which `expires_at` has surely not passed yet.
    pub(crate) fn before(expires_at: Instant) -> Self {
        let coarse = now(); // Coarse first: it is then at most the real time read after it.
        let left = expires_at.saturating_duration_since(Instant::now());
        Deadline(
            coarse
                .saturating_add(span(left))
                .saturating_sub(span(MARGIN)),
        )
    }

    /// Whether the coarse clock has not reached it.
    pub(crate) fn ahead(self) -> bool {
        now() < self.0
    }
}

/// Not `coarsetime::Instant::now`: it also stores every reading into one process-wide
/// atomic, which made each read twice as slow with two threads reading.
#[cfg(target_os = "linux")]
#[inline]
fn now() -> u64 {
    coarsetime::Instant::now_without_cache_update().as_ticks()
}

#[cfg(target_os = "linux")]
fn span(d: Duration) -> u64 {
    coarsetime::Duration::from(d).as_ticks() // saturates
}

/// Elsewhere, the real clock, from a base taken on first use.
#[cfg(not(target_os = "linux"))]
fn now() -> u64 {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    span(BASE.get_or_init(Instant::now).elapsed())
}

#[cfg(not(target_os = "linux"))]
fn span(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_comes_before_its_expiry_and_not_much_before() {
        let expires_at = Instant::now() + Duration::from_millis(200);
        let deadline = Deadline::before(expires_at);
        assert!(deadline.ahead());
        let started = Instant::now();
        while deadline.ahead() && started.elapsed() < Duration::from_secs(2) {
            assert!(Instant::now() < expires_at);
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!deadline.ahead(), "reached within 2 s");
        let early = Instant::now() + Duration::from_millis(150) > expires_at;
        assert!(early, "reached at most about the margin ({MARGIN:?}) early");
    }

    #[test]
    fn a_past_expiry_is_already_reached() {
        assert!(!Deadline::before(Instant::now()).ahead());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_coarse_clock_ticks_within_the_assumed_tick() {
        let (mut last, mut steps, started) = (now(), Vec::new(), Instant::now());
        while steps.len() < 5 && started.elapsed() < Duration::from_secs(1) {
            let t = now();
            if t != last {
                steps.push(t - last);
                last = t;
            }
        }
        let shortest = *steps
            .iter()
            .min()
            .expect("the coarse clock moved within 1 s");
        assert!(
            shortest <= span(TICK + Duration::from_micros(10)),
            "{shortest} ticks"
        );
    }
}
