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

/// How many namespaces are counted apart; the last slot counts all the others.
pub(crate) const NAMESPACES: usize = 64;
/// What is counted per namespace, after the `COUNTS` and a tick.
const PER_NAMESPACE: usize = 3;
/// Every slot of a shard: the counts, then hits, misses and errors of each namespace.
pub(crate) const SLOTS: usize = COUNTS + PER_NAMESPACE * NAMESPACES;

/// Every count of one cache (or of the process), slot by slot.
pub(crate) type Totals = [u64; SLOTS];

/// What is counted per namespace.
#[derive(Clone, Copy)]
pub(crate) enum NsCount {
    Hits,
    Misses,
    Errors,
}

/// The slot of `count` of the namespace in slot `namespace`.
#[inline(always)]
pub(crate) fn ns_slot(namespace: usize, count: NsCount) -> usize {
    COUNTS + namespace.min(NAMESPACES - 1) * PER_NAMESPACE + count as usize
}

/// The total of `count` (hits or misses) over every namespace, in `totals`.
pub(crate) fn sum(totals: &Totals, count: NsCount) -> u64 {
    (0..NAMESPACES).map(|ns| totals[ns_slot(ns, count)]).sum()
}

/// The namespaces counted apart, in the order they were first counted (process-wide).
static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// Where a function's namespace is counted: found once, then kept in its `Spec`.
#[doc(hidden)]
#[derive(Debug)]
pub struct NamespaceSlot(AtomicU64);

impl NamespaceSlot {
    /// Not looked up yet. (A `const`: each `Spec` made from it has a slot of its own.)
    #[allow(clippy::declare_interior_mutable_const)]
    pub const NEW: Self = NamespaceSlot(AtomicU64::new(0));

    /// The slot of `namespace` (the same for every function of it).
    #[inline]
    pub(crate) fn of(&self, namespace: &'static str) -> usize {
        match self.0.load(Ordering::Relaxed) {
            0 => self.look_up(namespace),
            kept => (kept - 1) as usize,
        }
    }

    #[cold]
    fn look_up(&self, namespace: &'static str) -> usize {
        let mut names = lock(&NAMES);
        let slot = match names.iter().position(|n| *n == namespace) {
            Some(slot) => slot,
            None if names.len() < NAMESPACES - 1 => {
                names.push(namespace);
                names.len() - 1
            }
            None => NAMESPACES - 1,
        };
        self.0.store(slot as u64 + 1, Ordering::Relaxed);
        slot
    }
}

/// The namespace counted in each slot, `None` for the slot of all the others.
pub(crate) fn namespace_names() -> Vec<Option<&'static str>> {
    let names = lock(&NAMES);
    let mut all: Vec<Option<&'static str>> = names.iter().copied().map(Some).collect();
    if names.len() == NAMESPACES - 1 {
        all.push(None);
    }
    all
}

/// Counts, each in one slot, on cache lines of their own.
#[repr(align(128))]
struct Shard([AtomicU64; SLOTS]);

impl Shard {
    const fn new() -> Self {
        Shard([const { AtomicU64::new(0) }; SLOTS])
    }

    fn add_to(&self, totals: &mut Totals) {
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
        self.bump_all(&[count as usize]);
    }

    /// A hit of a function of the namespace in `namespace` (see [`NamespaceSlot`]), also a
    /// local hit when `local`, with one look at the thread's shard. The total of hits is the
    /// sum of the namespaces' (see [`hits`]), so a hit adds to one count (two when local).
    /// Returns the namespace's hits on this thread, which a caller samples one in so many of.
    #[inline(always)]
    pub(crate) fn hit(&self, namespace: usize, local: bool) -> u64 {
        let ns = ns_slot(namespace, NsCount::Hits);
        if local {
            self.bump_all(&[Count::LocalHits as usize, ns])
        } else {
            self.bump_all(&[ns])
        }
    }

    /// A miss (or an undecodable value) of the namespace in `namespace`; the count, as
    /// [`hit`](Self::hit).
    pub(crate) fn miss(&self, namespace: usize) -> u64 {
        self.bump_all(&[ns_slot(namespace, NsCount::Misses)])
    }

    /// A call of the namespace in `namespace` that could not ask the store.
    pub(crate) fn unavailable(&self, namespace: usize) {
        self.bump_all(&[
            Count::Bypassed as usize,
            ns_slot(namespace, NsCount::Errors),
        ]);
    }

    /// Adds one to each slot; returns the last slot's new value.
    #[inline(always)]
    fn bump_all(&self, slots: &[usize]) -> u64 {
        let mut last = 0;
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
            for &slot in slots {
                // Only this thread writes its shard, so no increment is lost between load
                // and store.
                let Some(counter) = shard.0.get(slot) else {
                    continue;
                };
                last = counter.load(Ordering::Relaxed) + 1;
                counter.store(last, Ordering::Relaxed);
            }
            true
        });
        if counted != Ok(true) {
            for &slot in slots {
                if let Some(counter) = self.shared.0.get(slot) {
                    last = counter.fetch_add(1, Ordering::Relaxed) + 1;
                }
            }
        }
        last
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
    pub(crate) fn totals(&self) -> Totals {
        let mut totals = [0; SLOTS];
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
pub(crate) fn process_totals() -> Totals {
    let open = lock(&OPEN);
    let mut totals = [0; SLOTS];
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
        counters.bump(Count::StaleServed);
        counters.hit(0, true);
        assert_eq!(counters.totals()[Count::StaleServed as usize], 4_002);
        assert_eq!(sum(&counters.totals(), NsCount::Hits), 1);
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
