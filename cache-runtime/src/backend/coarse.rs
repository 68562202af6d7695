//! A cheap clock for the hot set's expiry checks, and deadlines on it that are never late.
//!
//! A hot-set hit reads the clock once. `Instant::now` costs about 25 ns here, which was a
//! third of a near-cache hit's own work from 64 tasks (perf); Linux's
//! `CLOCK_MONOTONIC_COARSE` costs a few, and lags the real monotonic clock by up to a tick.
//! A [`Deadline`] is set earlier than the real expiry by more than that lag, so a copy checked
//! against the coarse clock still never outlives its entry; it only expires a few
//! milliseconds early, and the next call then reads the store.

use std::time::{Duration, Instant};

/// A moment on the coarse clock, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Deadline(u64);

impl Deadline {
    /// The coarse moment by which `expires_at` has surely not passed yet.
    pub(crate) fn before(expires_at: Instant) -> Self {
        // Coarse first: it is then at most the real time read after it.
        let coarse = now_nanos();
        let left = expires_at.saturating_duration_since(Instant::now());
        let left = u64::try_from(left.as_nanos()).unwrap_or(u64::MAX);
        Deadline(coarse.saturating_add(left).saturating_sub(margin()))
    }

    /// Whether the coarse clock has not reached it.
    pub(crate) fn ahead(self) -> bool {
        now_nanos() < self.0
    }
}

/// How much earlier than the real expiry a deadline is set: twice the coarse clock's
/// resolution (it lags by up to one tick), and a millisecond more.
fn margin() -> u64 {
    static MARGIN: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *MARGIN.get_or_init(|| {
        let tick = resolution().unwrap_or(Duration::from_millis(10));
        let margin = tick.saturating_mul(2) + Duration::from_millis(1);
        u64::try_from(margin.as_nanos()).unwrap_or(u64::MAX)
    })
}

#[cfg(target_os = "linux")]
fn now_nanos() -> u64 {
    // No reading: a time past every deadline, so nothing is served on it.
    read_coarse(libc::clock_gettime).map_or(u64::MAX, |(secs, nanos)| {
        secs.saturating_mul(1_000_000_000)
            .saturating_add(u64::from(nanos))
    })
}

#[cfg(target_os = "linux")]
fn resolution() -> Option<Duration> {
    read_coarse(libc::clock_getres).map(|(secs, nanos)| Duration::new(secs, nanos))
}

/// What `call` (`clock_gettime` or `clock_getres`) says of `CLOCK_MONOTONIC_COARSE`: seconds
/// and nanoseconds.
#[cfg(target_os = "linux")]
#[inline]
fn read_coarse(
    call: unsafe extern "C" fn(libc::clockid_t, *mut libc::timespec) -> libc::c_int,
) -> Option<(u64, u32)> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec, the only memory either call writes.
    let rc = unsafe { call(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u32::try_from(ts.tv_nsec).ok()?;
    (rc == 0).then_some((secs, nanos))
}

/// Elsewhere, the real clock, from a base taken on first use.
#[cfg(not(target_os = "linux"))]
fn now_nanos() -> u64 {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(not(target_os = "linux"))]
fn resolution() -> Option<Duration> {
    Some(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_comes_before_its_expiry_and_not_much_before() {
        let expires_at = Instant::now() + Duration::from_millis(200);
        let deadline = Deadline::before(expires_at);
        assert!(deadline.ahead());
        // Whenever the coarse clock says it is not reached, the real clock is before expiry.
        let started = Instant::now();
        while deadline.ahead() && started.elapsed() < Duration::from_secs(2) {
            assert!(Instant::now() < expires_at);
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!deadline.ahead(), "reached within 2 s");
        assert!(
            Instant::now() + Duration::from_millis(150) > expires_at,
            "reached at most about the margin ({} ns) early",
            margin()
        );
    }

    #[test]
    fn a_past_expiry_is_already_reached() {
        assert!(!Deadline::before(Instant::now()).ahead());
    }
}
