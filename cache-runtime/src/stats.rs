//! [`Stats`]: a snapshot of what a cache (or every cache of the process) did.

use crate::circuit::Circuit;
use crate::counters::{Count, COUNTS};

/// A snapshot of counters: of one cache since it was made ([`Cache::stats`](crate::Cache::stats)),
/// or of every cache of the process since it started ([`stats`](crate::stats)).
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
    /// Clears of `#[invalidate]` that failed (the write still succeeded; the entries live
    /// until their TTL).
    pub invalidation_failures: u64,
    /// The circuit breaker of the cache's store now (of the default cache, for [`stats`](crate::stats)).
    pub circuit: Circuit,
    /// Whether caching is switched on (see [`set_enabled`](crate::set_enabled)).
    pub enabled: bool,
}

/// The [`Stats`] of `totals`.
pub(crate) fn snapshot(totals: [u64; COUNTS], circuit: Circuit) -> Stats {
    let total = |count: Count| totals[count as usize];
    Stats {
        hits: total(Count::Hits),
        local_hits: total(Count::LocalHits),
        misses: total(Count::Misses),
        bypassed: total(Count::Bypassed),
        errors: total(Count::Errors),
        decode_failures: total(Count::DecodeFailures),
        coalesced: total(Count::Coalesced),
        stale_served: total(Count::StaleServed),
        refreshes: total(Count::Refreshes),
        skipped_open: total(Count::SkippedOpen),
        circuit_trips: total(Count::CircuitTrips),
        invalidation_failures: total(Count::InvalidationFailures),
        circuit,
        enabled: crate::enabled::is_enabled(),
    }
}
