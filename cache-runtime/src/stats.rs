//! [`Stats`]: a snapshot of what a cache (or every cache of the process) did.

use crate::circuit::Circuit;
use crate::counters::{self, ns_slot, Count, NsCount, Totals};

/// A snapshot of counters: of one cache since it was made ([`Cache::stats`](crate::Cache::stats)),
/// or of every cache of the process since it started ([`stats`](crate::stats)).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
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
    /// Hits, misses and errors of each namespace that was called (`""`: functions without a
    /// namespace), in the order they were first called. The first 63 namespaces of the
    /// process are counted apart; any more are summed under `None`.
    pub namespaces: Vec<NamespaceStats>,
    /// The most requested keys (up to 10), most first, with an estimate of their requests:
    /// one call in 64 per thread is sampled into a summary of 64 keys, so memory is bounded
    /// whatever the number of keys, and a key asked for more than 1/64 of the time is always
    /// there. Empty for [`stats`](crate::stats), which sums every cache.
    pub top_keys: Vec<(String, u64)>,
}

/// What one namespace did; see [`Stats::namespaces`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct NamespaceStats {
    /// The namespace; `None` for the namespaces beyond the 63 counted apart.
    pub namespace: Option<&'static str>,
    /// Calls answered from the cache.
    pub hits: u64,
    /// Calls that found nothing (or something undecodable) and ran the body.
    pub misses: u64,
    /// Calls that could not ask the store (unreachable, timed out, circuit open).
    pub errors: u64,
}

impl NamespaceStats {
    /// Hits among the calls that asked the store: `hits / (hits + misses)`, 0 before any.
    pub fn hit_rate(&self) -> f64 {
        let asked = self.hits + self.misses;
        if asked == 0 {
            0.0
        } else {
            self.hits as f64 / asked as f64
        }
    }
}

/// The [`Stats`] of `totals`.
pub(crate) fn snapshot(totals: Totals, circuit: Circuit, top_keys: Vec<(String, u64)>) -> Stats {
    let total = |count: Count| totals[count as usize];
    Stats {
        hits: total(Count::Hits) + counters::sum(&totals, NsCount::Hits),
        local_hits: total(Count::LocalHits),
        misses: total(Count::Misses) + counters::sum(&totals, NsCount::Misses),
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
        namespaces: counters::namespace_names()
            .into_iter()
            .enumerate()
            .map(|(slot, namespace)| NamespaceStats {
                namespace,
                hits: totals[ns_slot(slot, NsCount::Hits)],
                misses: totals[ns_slot(slot, NsCount::Misses)],
                errors: totals[ns_slot(slot, NsCount::Errors)],
            })
            .filter(|ns| ns.hits + ns.misses + ns.errors > 0)
            .collect(),
        top_keys,
    }
}
