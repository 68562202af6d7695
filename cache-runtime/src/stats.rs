//! Process-wide counters of what the cache did.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::Circuit;

/// A snapshot of the cache's counters since the process started; see [`stats`](crate::stats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Calls answered from the cache.
    pub hits: u64,
    /// Of the hits, those served by the near-cache without a round trip to Redis.
    pub local_hits: u64,
    /// Calls whose body ran because the entry was absent, expired or undecodable.
    pub misses: u64,
    /// Calls that ran their body without the cache: not initialised, backend unreachable,
    /// or arguments that could not be hashed.
    pub bypassed: u64,
    /// Backend operations that failed (and were failed open).
    pub errors: u64,
    /// Stored values that did not decode into the function's type.
    pub decode_failures: u64,
    /// Calls that waited for another caller's run of the same key instead of running the body
    /// (single-flight).
    pub coalesced: u64,
    /// Calls that got a stale copy because the body failed (`stale_if_error`).
    pub stale_served: u64,
    /// Hits near expiry that recomputed the entry (`refresh`).
    pub refreshes: u64,
    /// Calls that skipped Redis because the circuit was open.
    pub skipped_open: u64,
    /// How many times the circuit opened.
    pub circuit_trips: u64,
    /// The circuit breaker of the current backend now.
    pub circuit: Circuit,
    /// Whether caching is switched on (see [`set_enabled`](crate::set_enabled)).
    pub enabled: bool,
}

pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) local_hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) bypassed: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) decode_failures: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) skipped_open: AtomicU64,
    pub(crate) circuit_trips: AtomicU64,
}

pub(crate) static COUNTERS: Counters = Counters {
    hits: AtomicU64::new(0),
    local_hits: AtomicU64::new(0),
    misses: AtomicU64::new(0),
    bypassed: AtomicU64::new(0),
    errors: AtomicU64::new(0),
    decode_failures: AtomicU64::new(0),
    coalesced: AtomicU64::new(0),
    stale_served: AtomicU64::new(0),
    refreshes: AtomicU64::new(0),
    skipped_open: AtomicU64::new(0),
    circuit_trips: AtomicU64::new(0),
};

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The counters of this process.
///
/// ```
/// let s = cache_runtime::stats();
/// assert!(s.hits <= s.hits + s.misses);
/// ```
pub fn stats() -> Stats {
    let c = &COUNTERS;
    Stats {
        hits: c.hits.load(Ordering::Relaxed),
        local_hits: c.local_hits.load(Ordering::Relaxed),
        misses: c.misses.load(Ordering::Relaxed),
        bypassed: c.bypassed.load(Ordering::Relaxed),
        errors: c.errors.load(Ordering::Relaxed),
        decode_failures: c.decode_failures.load(Ordering::Relaxed),
        coalesced: c.coalesced.load(Ordering::Relaxed),
        stale_served: c.stale_served.load(Ordering::Relaxed),
        refreshes: c.refreshes.load(Ordering::Relaxed),
        skipped_open: c.skipped_open.load(Ordering::Relaxed),
        circuit_trips: c.circuit_trips.load(Ordering::Relaxed),
        circuit: crate::backend::current().map_or(Circuit::Closed, |b| b.circuit()),
        enabled: crate::is_enabled(),
    }
}
