//! The circuit breaker: after a run of backend failures, stop calling Redis for a cool-down,
//! then let one probe through; its success closes the circuit again.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::circuit::Circuit;
use crate::counters::{Count, Counters};
use crate::throttle::now_ms;

pub(super) struct Breaker {
    threshold: u32,
    cooldown_ms: u64,
    failures: AtomicU32,
    /// 0 while closed; otherwise when (in `now_ms`) the next probe may go.
    open_until: AtomicU64,
    probing: AtomicBool,
    counters: Arc<Counters>,
}

/// Leave to call the backend. A probe that is dropped without a verdict (its call was
/// cancelled or panicked) counts as a failure, so the breaker can never stay half-open.
pub(super) struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    settled: bool,
}

impl Breaker {
    pub(super) fn new(threshold: u32, cooldown: Duration, counters: Arc<Counters>) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown_ms: cooldown.as_millis() as u64,
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            counters,
        }
    }

    /// `None` while open: the caller skips the backend. Costs one atomic load while closed.
    pub(super) fn permit(&self) -> Option<Permit<'_>> {
        let until = self.open_until.load(Ordering::Acquire);
        let probe = until != 0;
        if probe
            && (now_ms() < until
                || self
                    .probing
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                    .is_err())
        {
            return None;
        }
        Some(Permit {
            breaker: self,
            probe,
            settled: false,
        })
    }

    /// Closes the circuit: the server it opened for was replaced.
    pub(super) fn reset(&self) {
        self.failures.store(0, Ordering::Release);
        self.open_until.store(0, Ordering::Release);
    }

    pub(super) fn state(&self) -> Circuit {
        match self.open_until.load(Ordering::Acquire) {
            0 => Circuit::Closed,
            _ if self.probing.load(Ordering::Acquire) => Circuit::HalfOpen,
            _ => Circuit::Open,
        }
    }

    fn succeeded(&self, probe: bool) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if probe {
            self.open_until.store(0, Ordering::Release);
            self.probing.store(false, Ordering::Release);
            tracing::info!("redis answers again: circuit closed, caching resumed");
        }
    }

    fn failed(&self, probe: bool) {
        if probe {
            self.open_until
                .store(now_ms() + self.cooldown_ms, Ordering::Release);
            self.probing.store(false, Ordering::Release);
            tracing::debug!("probe failed: circuit stays open");
            return;
        }
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.threshold
            && self
                .open_until
                .compare_exchange(
                    0,
                    now_ms() + self.cooldown_ms,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
        {
            self.counters.bump(Count::CircuitTrips);
            tracing::warn!(
                failures,
                cooldown_ms = self.cooldown_ms,
                "redis failed {failures} times in a row: circuit open, calls skip the cache"
            );
        }
    }
}

impl Permit<'_> {
    pub(super) fn success(mut self) {
        self.settled = true;
        self.breaker.succeeded(self.probe);
    }

    pub(super) fn failure(mut self) {
        self.settled = true;
        self.breaker.failed(self.probe);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled && self.probe {
            self.breaker.failed(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_then_probes_once_then_closes() {
        let b = Breaker::new(3, Duration::from_millis(30), Counters::open());
        for _ in 0..2 {
            b.permit().unwrap().failure();
        }
        assert_eq!(b.state(), Circuit::Closed);
        b.permit().unwrap().success();
        for _ in 0..2 {
            b.permit().unwrap().failure();
        }
        assert_eq!(b.state(), Circuit::Closed, "a success resets the run");
        b.permit().unwrap().failure();
        assert_eq!(b.state(), Circuit::Open);
        assert!(b.permit().is_none(), "open: no calls");
        std::thread::sleep(Duration::from_millis(40));
        let probe = b.permit().expect("one probe after the cool-down");
        assert!(b.permit().is_none(), "only one probe");
        assert_eq!(b.state(), Circuit::HalfOpen);
        probe.failure();
        assert_eq!(b.state(), Circuit::Open);
        std::thread::sleep(Duration::from_millis(40));
        b.permit().unwrap().success();
        assert_eq!(b.state(), Circuit::Closed);
        assert!(b.permit().is_some());
    }

    #[test]
    fn an_abandoned_probe_reopens() {
        let b = Breaker::new(1, Duration::from_millis(10), Counters::open());
        b.permit().unwrap().failure();
        std::thread::sleep(Duration::from_millis(20));
        drop(b.permit().unwrap());
        assert_eq!(b.state(), Circuit::Open);
    }
}
