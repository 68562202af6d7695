//! Process-wide counters of what the cache did.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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

/// What is counted; each names one slot of a [`Shard`].
#[derive(Clone, Copy)]
pub(crate) enum Count {
    Hits,
    LocalHits,
    Misses,
    Bypassed,
    Errors,
    DecodeFailures,
    Coalesced,
    StaleServed,
    Refreshes,
    SkippedOpen,
    CircuitTrips,
}

const COUNTS: usize = 11;
const SHARDS: usize = 8;

/// One thread's counters, on cache lines of their own: every cached call counts something,
/// and tasks on different cores must not fight over one line.
#[repr(align(128))]
struct Shard([AtomicU64; COUNTS]);

static SHARD_OF_THREAD: AtomicUsize = AtomicUsize::new(0);
static COUNTERS: [Shard; SHARDS] = [const { Shard([const { AtomicU64::new(0) }; COUNTS]) }; SHARDS];

thread_local! {
    static SHARD: usize = SHARD_OF_THREAD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

pub(crate) fn bump(count: Count) {
    let shard = SHARD.try_with(|s| *s).unwrap_or(0);
    COUNTERS[shard].0[count as usize].fetch_add(1, Ordering::Relaxed);
}

fn total(count: Count) -> u64 {
    COUNTERS
        .iter()
        .map(|shard| shard.0[count as usize].load(Ordering::Relaxed))
        .sum()
}

/// The counters of this process.
///
/// ```
/// let s = cache_runtime::stats();
/// assert!(s.hits <= s.hits + s.misses);
/// ```
pub fn stats() -> Stats {
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
        circuit: crate::backend::current_arc().map_or(Circuit::Closed, |b| b.circuit()),
        enabled: crate::is_enabled(),
    }
}
