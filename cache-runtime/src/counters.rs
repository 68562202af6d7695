//! Counts of what each cache did, written by each thread on a shard of its own.
//!
//! Every cached call counts something, and tasks on different cores must not fight over one
//! cache line: a thread adds to its own shard of a cache's counters with a plain load and
//! store, not a locked read-modify-write (two of those were 3 % of a hot-set hit), and any
//! thread reads them. A thread keeps its shards of the last few caches it counted for.

use std::cell::RefCell;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::sync::lock;

/// What is counted; each names one slot of a shard.
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
    InvalidationFailures,
}

pub(crate) const COUNTS: usize = 12;

/// Counts, each in one slot, on cache lines of their own.
#[repr(align(128))]
struct Shard([AtomicU64; COUNTS]);

impl Shard {
    const fn new() -> Self {
        Shard([const { AtomicU64::new(0) }; COUNTS])
    }

    fn add_to(&self, totals: &mut [u64; COUNTS]) {
        for (total, counter) in totals.iter_mut().zip(&self.0) {
            *total += counter.load(Ordering::Relaxed);
        }
    }
}

/// One cache's counters: a shard per thread that counted for it.
pub(crate) struct Counters {
    /// Tells a thread's kept shards of one cache from another's; never reused.
    id: u64,
    /// Every shard handed out. A shard whose only reference is this list has no thread: it is
    /// handed out again, so that there are no more shards than threads that counted at once.
    shards: Mutex<Vec<Arc<Shard>>>,
    /// Counts of threads that could not use a shard of their own (during their teardown),
    /// added to atomically.
    shared: Shard,
}

/// How many caches' shards a thread keeps at once.
const KEPT: usize = 8;

thread_local! {
    /// This thread's shards, by the id of their counters; the last used is last.
    static MINE: RefCell<Vec<(u64, Arc<Shard>)>> = const { RefCell::new(Vec::new()) };
}

/// Counters of caches still open, and the sums of the closed ones: what [`process_totals`]
/// adds up.
static OPEN: Mutex<Vec<Arc<Counters>>> = Mutex::new(Vec::new());
static CLOSED: Shard = Shard::new();
/// Counts of calls that found no cache to count for (before `init`).
static NO_CACHE: Shard = Shard::new();

impl Counters {
    /// New counters, counted in [`process_totals`] until [`close`](Self::close).
    pub(crate) fn open() -> Arc<Self> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let counters = Arc::new(Counters {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shards: Mutex::new(Vec::new()),
            shared: Shard::new(),
        });
        lock(&OPEN).push(Arc::clone(&counters));
        counters
    }

    /// Folds these counts into the process's closed sums; called when the cache they count
    /// for is gone, so that nothing counts here any more.
    pub(crate) fn close(self: &Arc<Self>) {
        let mut open = lock(&OPEN);
        let totals = self.totals();
        for (closed, total) in CLOSED.0.iter().zip(totals) {
            closed.fetch_add(total, Ordering::Relaxed);
        }
        open.retain(|other| !Arc::ptr_eq(other, self));
    }

    #[inline]
    pub(crate) fn bump(&self, count: Count) {
        self.bump_all(&[count]);
    }

    /// [`bump`](Self::bump) of two counts with one look at the thread's shard (a near-cache
    /// hit is a hit and a local hit).
    #[inline]
    pub(crate) fn bump_both(&self, a: Count, b: Count) {
        self.bump_all(&[a, b]);
    }

    #[inline(always)]
    fn bump_all(&self, counts: &[Count]) {
        let counted = MINE.try_with(|mine| {
            let Ok(mut mine) = mine.try_borrow_mut() else {
                return false;
            };
            if !matches!(mine.last(), Some((id, _)) if *id == self.id) {
                self.find_or_claim(&mut mine);
            }
            let Some((_, shard)) = mine.last() else {
                return false;
            };
            for &count in counts {
                // Only this thread writes its shard, so no increment is lost between load
                // and store.
                let counter = &shard.0[count as usize];
                counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            }
            true
        });
        if counted != Ok(true) {
            for &count in counts {
                self.shared.0[count as usize].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Moves this thread's shard of these counters last in its list; claims a free shard or
    /// a new one if the thread has none.
    #[cold]
    fn find_or_claim(&self, mine: &mut Vec<(u64, Arc<Shard>)>) {
        if let Some(at) = mine.iter().position(|(id, _)| *id == self.id) {
            let kept = mine.remove(at);
            mine.push(kept);
        } else {
            if mine.len() >= KEPT {
                mine.remove(0);
            }
            mine.push((self.id, self.claim()));
        }
    }

    fn claim(&self) -> Arc<Shard> {
        let mut shards = lock(&self.shards);
        if let Some(free) = shards.iter().find(|shard| Arc::strong_count(shard) == 1) {
            // The thread that let it go wrote its counts before it dropped its reference;
            // make those writes visible before this thread adds to them.
            fence(Ordering::Acquire);
            return Arc::clone(free);
        }
        let shard = Arc::new(Shard::new());
        shards.push(Arc::clone(&shard));
        shard
    }

    /// Every count, summed over the shards.
    pub(crate) fn totals(&self) -> [u64; COUNTS] {
        let mut totals = [0; COUNTS];
        self.shared.add_to(&mut totals);
        for shard in lock(&self.shards).iter() {
            shard.add_to(&mut totals);
        }
        totals
    }
}

/// Counts a call that found no cache (before `init`, or with caching switched off).
pub(crate) fn bump_uncached(count: Count) {
    NO_CACHE.0[count as usize].fetch_add(1, Ordering::Relaxed);
}

/// Every count of every cache this process has had, and of calls that found none.
pub(crate) fn process_totals() -> [u64; COUNTS] {
    let open = lock(&OPEN);
    let mut totals = [0; COUNTS];
    CLOSED.add_to(&mut totals);
    NO_CACHE.add_to(&mut totals);
    for counters in open.iter() {
        for (total, count) in totals.iter_mut().zip(counters.totals()) {
            *total += count;
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts made on many threads add up, also after those threads ended and others took
    /// their shards, and they stay in the process's totals after the counters close.
    #[test]
    fn counts_of_every_thread_add_up() {
        let counters = Counters::open();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counters = Arc::clone(&counters);
                std::thread::spawn(move || {
                    for _ in 0..1_000 {
                        counters.bump(Count::StaleServed);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let again = Arc::clone(&counters);
        std::thread::spawn(move || again.bump(Count::StaleServed))
            .join()
            .unwrap();
        counters.bump_both(Count::StaleServed, Count::Hits);
        assert_eq!(counters.totals()[Count::StaleServed as usize], 4_002);
        assert_eq!(counters.totals()[Count::Hits as usize], 1);
        assert!(
            lock(&counters.shards).len() <= 5,
            "shards are handed out again"
        );
        let before = process_totals()[Count::StaleServed as usize];
        counters.close();
        assert_eq!(process_totals()[Count::StaleServed as usize], before);
    }

    #[test]
    fn two_caches_count_apart_on_one_thread() {
        let (a, b) = (Counters::open(), Counters::open());
        for _ in 0..3 {
            a.bump(Count::Misses);
            b.bump(Count::Hits);
        }
        assert_eq!(a.totals()[Count::Misses as usize], 3);
        assert_eq!(a.totals()[Count::Hits as usize], 0);
        assert_eq!(b.totals()[Count::Hits as usize], 3);
        // More caches than a thread keeps shards of: counts still land.
        let many: Vec<_> = (0..KEPT + 2).map(|_| Counters::open()).collect();
        for counters in many.iter().chain(&many) {
            counters.bump(Count::Errors);
        }
        assert!(many.iter().all(|c| c.totals()[Count::Errors as usize] == 2));
        for counters in many.iter().chain([&a, &b]) {
            counters.close();
        }
    }
}
