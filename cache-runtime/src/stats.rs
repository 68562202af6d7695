//! Process-wide counters of what the cache did.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

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

/// Counters that one thread at a time writes, on cache lines of their own: every cached call
/// counts something, and tasks on different cores must not fight over one line. Their owner
/// adds with a plain load and store, not a locked read-modify-write (two of those were 3 % of
/// a hot-set hit); any thread reads them.
#[repr(align(128))]
struct Shard([AtomicU64; COUNTS]);

impl Shard {
    const fn new() -> Self {
        Shard([const { AtomicU64::new(0) }; COUNTS])
    }
}

/// Every shard ever handed out (they are never freed: a thread's counts outlive it), and the
/// ones whose thread has ended, to hand out again, so that there are no more shards than
/// threads that ran at once.
struct Registry {
    all: Vec<&'static Shard>,
    free: Vec<&'static Shard>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    all: Vec::new(),
    free: Vec::new(),
});

/// Counts of threads that have no shard (while one is handed out, or during their teardown),
/// added to atomically.
static SHARED: Shard = Shard::new();

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// A thread's own shard; given back when the thread ends.
struct Owned(&'static Shard);

impl Owned {
    fn claim() -> Self {
        let mut registry = registry();
        let shard = match registry.free.pop() {
            Some(shard) => shard,
            None => {
                let shard: &'static Shard = Box::leak(Box::new(Shard::new()));
                registry.all.push(shard);
                shard
            }
        };
        Owned(shard)
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        registry().free.push(self.0);
    }
}

thread_local! {
    static OWNED: Owned = Owned::claim();
}

pub(crate) fn bump(count: Count) {
    bump_all(&[count]);
}

/// [`bump`] of two counts with one look at the thread's shard (a near-cache hit is a hit and
/// a local hit).
pub(crate) fn bump_both(a: Count, b: Count) {
    bump_all(&[a, b]);
}

#[inline(always)]
fn bump_all(counts: &[Count]) {
    let owned = OWNED.try_with(|owned| {
        for &count in counts {
            // Only this thread writes its shard, so no increment is lost between load and
            // store.
            let counter = &owned.0 .0[count as usize];
            counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
    });
    if owned.is_err() {
        for &count in counts {
            SHARED.0[count as usize].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Every count, summed over the shards.
fn totals() -> [u64; COUNTS] {
    let mut totals: [u64; COUNTS] = std::array::from_fn(|i| SHARED.0[i].load(Ordering::Relaxed));
    for shard in &registry().all {
        for (total, counter) in totals.iter_mut().zip(&shard.0) {
            *total += counter.load(Ordering::Relaxed);
        }
    }
    totals
}

/// The counters of this process.
///
/// ```
/// let s = cache_runtime::stats();
/// assert!(s.hits <= s.hits + s.misses);
/// ```
pub fn stats() -> Stats {
    let totals = totals();
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
        circuit: crate::backend::current_arc().map_or(Circuit::Closed, |b| b.circuit()),
        enabled: crate::is_enabled(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts made on many threads add up, also after those threads ended and others took
    /// their shards. (No other unit test counts stale copies served.)
    #[test]
    fn counts_of_every_thread_add_up() {
        let before = totals()[Count::StaleServed as usize];
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..1_000 {
                        bump(Count::StaleServed);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        std::thread::spawn(|| bump(Count::StaleServed))
            .join()
            .unwrap();
        bump(Count::StaleServed);
        assert_eq!(totals()[Count::StaleServed as usize] - before, 4_002);
        let registry = registry();
        assert!(registry.free.len() <= registry.all.len());
    }
}
