//! Rate limiting of log lines, so that an outage produces a handful of lines, not one per call.
//!
//! Every warning that a failure can repeat goes through [`throttled!`]: each
//! place that logs has a gate of its own, open once per [`WINDOW`], and the line it lets through
//! carries the count of the ones held back (`suppressed`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Logs through `tracing` at the given level, at most once per [`WINDOW`] from this place, with
/// a `suppressed` field counting the lines held back since the last one:
/// `throttled!(warn, key, "message: {e}")`.
macro_rules! throttled {
    ($level:ident, $($rest:tt)+) => {{
        static GATE: crate::throttle::Throttle = crate::throttle::Throttle::new();
        if let ::core::option::Option::Some(suppressed) = GATE.allow() {
            ::tracing::$level!(suppressed, $($rest)+);
        }
    }};
}
pub(crate) use throttled;

/// How often one kind of warning may be logged.
const WINDOW: Duration = Duration::from_secs(10);

/// A gate that opens at most once per [`WINDOW`], and counts the events it held back.
pub(crate) struct Throttle {
    /// Milliseconds since [`epoch`] after which the gate opens again; 0 = open.
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since the process-wide epoch; cheap monotonic clock for atomics.
pub(crate) fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64 + 1
}

impl Throttle {
    pub(crate) const fn new() -> Self {
        Self {
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when this event may be logged, with `n` events suppressed since the last one.
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = now_ms();
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now + WINDOW.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_once_per_window_and_counts_the_rest() {
        let t = Throttle::new();
        assert_eq!(t.allow(), Some(0));
        for _ in 0..5 {
            assert_eq!(t.allow(), None);
        }
        // Force the window to end.
        t.next_ms.store(0, Ordering::Relaxed);
        assert_eq!(t.allow(), Some(5));
    }
}
