//! The hot set: each thread's small table of decoded values in front of the in-process stores
//! (the memory backend and the near-cache).
//!
//! A hit in moka costs the MD5 key, a lookup in a table every core shares (which records the
//! read in a buffer every core writes) and a reference count every core writes: from 64 tasks
//! on 2 cores, about 1 µs. A hit here costs the arguments' JSON written to the stack, a
//! multiply-rotate hash, one slot of this thread's table and the clone of the value, and it
//! writes nothing another core reads.
//!
//! A slot copies one entry of a store and is served only while that entry is unchanged: every
//! change of a store (an insert, a removal, a flush) bumps one of its [`Epochs`] after it is
//! made, a slot remembers the epochs it was filled under (read before the store was), and a
//! slot whose epochs moved is not served. A slot never outlives its entry's expiry either.
//! Slots are told apart by the exact bytes that make the key, never by a hash alone.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

mod clock;

use clock::Deadline;

use crate::keys::Inline;

/// Epoch stripes of a store: a change to one key makes the slots of about 1/256 of the keys
/// refetch, not all of them.
const STRIPES: usize = 256;
/// Ways per set: the tags of a set fill one cache line. With fewer ways, the few sets that
/// three keys land in made those keys take turns evicting each other: 2 ways over 1,000 hot
/// keys missed about 7 % of lookups.
const WAYS: usize = 8;
/// The most sets a thread's table has (`CacheConfig::hot_set` beyond 524,288 copies).
const MAX_SETS: usize = 1 << 16;

/// The sets of a table for `copies` slots (a power of two, so that a set is picked by a mask;
/// 0 for none).
pub(crate) fn sets_for(copies: usize) -> usize {
    if copies == 0 {
        return 0;
    }
    copies.div_ceil(WAYS).next_power_of_two().min(MAX_SETS)
}

/// The hot sets in front of one store: how many sets each thread's table has, and the
/// store's epochs.
#[derive(Clone, Copy)]
pub(crate) struct HotSet<'a> {
    pub(crate) epochs: &'a Epochs,
    pub(crate) sets: usize,
}
/// Versions of a store's contents: `global` moves when many keys change at once (a namespace
/// or full clear, a flush), a stripe when a key of that stripe changes.
pub(crate) struct Epochs {
    global: AtomicU64,
    stripes: [AtomicU64; STRIPES],
}

/// The epochs a slot was filled under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    stripe: u16,
    global: u64,
    local: u64,
}

impl Epochs {
    pub(crate) fn new() -> Self {
        Self {
            global: AtomicU64::new(0),
            stripes: [const { AtomicU64::new(0) }; STRIPES],
        }
    }

    fn stripe(key: &str) -> usize {
        (hash(key.as_bytes(), 0) >> 56) as usize % STRIPES
    }

    /// Called after the entry under `key` was inserted, overwritten or removed.
    pub(crate) fn changed(&self, key: &str) {
        self.stripes[Self::stripe(key)].fetch_add(1, Ordering::AcqRel);
    }

    /// Called after any number of entries were removed at once.
    pub(crate) fn all_changed(&self) {
        self.global.fetch_add(1, Ordering::AcqRel);
    }

    /// The epochs of `key` now; taken before the store is read, so that a change made after
    /// that read is seen as one.
    pub(crate) fn seen(&self, key: &str) -> Seen {
        let stripe = Self::stripe(key);
        Seen {
            stripe: stripe as u16,
            global: self.global.load(Ordering::Acquire),
            local: self.stripes[stripe].load(Ordering::Acquire),
        }
    }

    fn unchanged(&self, seen: &Seen) -> bool {
        self.global.load(Ordering::Acquire) == seen.global
            && self.stripes[usize::from(seen.stripe) % STRIPES].load(Ordering::Acquire)
                == seen.local
    }
}

/// Where a call's slot would be: the function, the backend, the key's bytes and their hash.
pub(crate) struct Probe<'a> {
    pub(crate) function: usize,
    pub(crate) backend: u64,
    pub(crate) ident: &'a [u8],
    pub(crate) tag: u64,
}

impl<'a> Probe<'a> {
    pub(crate) fn new(function: usize, backend: u64, ident: &'a [u8]) -> Self {
        Self {
            function,
            backend,
            ident,
            tag: hash(ident, Self::seed(function, backend)),
        }
    }

    /// [`Probe::new`] of the arguments' JSON in `inline`.
    pub(crate) fn of_inline(function: usize, backend: u64, inline: &'a Inline) -> Self {
        Self {
            function,
            backend,
            ident: inline.as_slice(),
            tag: hash_words(
                inline.padded_words(),
                inline.as_slice().len(),
                Self::seed(function, backend),
            ),
        }
    }

    fn seed(function: usize, backend: u64) -> u64 {
        function as u64 ^ backend.rotate_left(32)
    }

    /// The index of the first way of this probe's set, in a table of `sets` sets.
    fn set(&self, sets: usize) -> usize {
        set_of(self.tag, sets)
    }

    fn matches(&self, slot: &Slot) -> bool {
        slot.function == self.function && slot.backend == self.backend && slot.ident() == self.ident
    }
}

/// The index of the first way of the set of `tag`, in a table of `sets` sets (a power of two).
fn set_of(tag: u64, sets: usize) -> usize {
    ((tag >> 32) as usize & sets.wrapping_sub(1)) * WAYS
}

/// Key bytes up to this long are kept in the slot itself, longer ones behind a pointer.
const SHORT: usize = 22;

enum Ident {
    Short([u8; SHORT], u8),
    Long(Box<[u8]>),
}

struct Slot {
    function: usize,
    backend: u64,
    ident: Ident,
    seen: Seen,
    /// Before the entry's expiry, on the cheap clock.
    deadline: Deadline,
    value: Arc<dyn Any + Send + Sync>,
}

impl Slot {
    fn ident(&self) -> &[u8] {
        match &self.ident {
            Ident::Short(bytes, len) => &bytes[..usize::from(*len).min(SHORT)],
            Ident::Long(bytes) => bytes,
        }
    }

    fn live(&self, epochs: &Epochs) -> bool {
        self.deadline.ahead() && epochs.unchanged(&self.seen)
    }
}

/// How many sets a thread's table starts with (512 slots of 88 bytes and their tags: 48 KB);
/// it doubles, up to the configured size, whenever a full set would have to give up a live
/// copy, so that a thread that copies a few entries holds a few slots.
const FIRST_SETS: usize = 64;

/// One thread's slots. The tags sit apart from the slots, so that looking at all ways of a
/// set reads one cache line, and a slot is read only when its tag matches.
#[derive(Default)]
struct Table {
    /// A power of two; 0 until the first fill.
    sets: usize,
    /// The most sets it may grow to (`CacheConfig::hot_set`).
    max_sets: usize,
    tags: Vec<u64>,
    slots: Vec<Option<Slot>>,
    /// Picks the way a full set gives up.
    turn: usize,
}

impl Table {
    /// Empty, with `sets` sets.
    fn with_sets(sets: usize, max_sets: usize) -> Self {
        let mut slots = Vec::new();
        slots.resize_with(sets * WAYS, || None);
        Table {
            sets,
            max_sets,
            tags: vec![0; sets * WAYS],
            slots,
            turn: 0,
        }
    }

    /// Twice the sets, each slot moved to the set its tag picks now. The ways of an old set
    /// go to two new sets, so they always fit.
    fn grow(&mut self) {
        let mut grown = Table::with_sets(self.sets * 2, self.max_sets);
        let old = std::mem::take(&mut self.slots);
        for (tag, slot) in self.tags.iter().zip(old) {
            let Some(slot) = slot else { continue };
            let set = set_of(*tag, grown.sets);
            let Some(ways) = grown.slots.get_mut(set..set + WAYS) else {
                continue;
            };
            if let Some(way) = ways.iter().position(Option::is_none) {
                ways[way] = Some(slot);
                if let Some(kept) = grown.tags.get_mut(set + way) {
                    *kept = *tag;
                }
            }
        }
        grown.turn = self.turn;
        *self = grown;
    }
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::new(Table::default());
}

/// The value this thread keeps for `probe`, if the entry it copies is unchanged and unexpired;
/// `fetch` clones it out as the caller's type (`None` for another type).
pub(crate) fn get<T>(
    probe: &Probe<'_>,
    epochs: &Epochs,
    fetch: fn(&(dyn Any + Send + Sync)) -> Option<T>,
) -> Option<T> {
    TABLE
        .try_with(|table| {
            // A `Clone` that makes a cached call finds the table borrowed: that call misses.
            let table = table.try_borrow().ok()?;
            let set = probe.set(table.sets);
            let way = table
                .tags
                .get(set..set + WAYS)?
                .iter()
                .position(|&tag| tag == probe.tag)?;
            let slot = table.slots.get(set + way)?.as_ref()?;
            if !probe.matches(slot) || !slot.live(epochs) {
                return None;
            }
            fetch(&*slot.value)
        })
        .ok()
        .flatten()
}

/// Keeps `value`, the decoded copy of an entry that expires at `expires_at`, for this
/// thread's next calls of `probe`; `seen` are the epochs read before the store was.
pub(crate) fn fill(
    probe: &Probe<'_>,
    hot: HotSet<'_>,
    seen: Seen,
    expires_at: Instant,
    value: Arc<dyn Any + Send + Sync>,
) {
    let ident = if probe.ident.len() <= SHORT {
        let mut bytes = [0; SHORT];
        bytes[..probe.ident.len()].copy_from_slice(probe.ident);
        // At most SHORT, which fits a u8.
        Ident::Short(bytes, probe.ident.len() as u8)
    } else {
        Ident::Long(probe.ident.into())
    };
    let slot = Slot {
        function: probe.function,
        backend: probe.backend,
        ident,
        seen,
        deadline: Deadline::before(expires_at),
        value,
    };
    let epochs = hot.epochs;
    let replaced = TABLE
        .try_with(|table| {
            let mut table = table.try_borrow_mut().ok()?;
            let table = &mut *table;
            let mut old = None;
            if table.max_sets != hot.sets {
                // The first fill, or `init` with another size: start over, small.
                let fresh = Table::with_sets(FIRST_SETS.min(hot.sets), hot.sets);
                old = Some(std::mem::replace(table, fresh));
            }
            let (set, way) = loop {
                let set = probe.set(table.sets);
                let ways = table.slots.get(set..set + WAYS)?;
                // The slot of this key, else an empty or dead one.
                let free = ways
                    .iter()
                    .position(|s| s.as_ref().is_some_and(|s| probe.matches(s)))
                    .or_else(|| ways.iter().position(Option::is_none))
                    .or_else(|| {
                        ways.iter()
                            .position(|s| s.as_ref().is_some_and(|s| !s.live(epochs)))
                    });
                match free {
                    Some(way) => break (set, way),
                    None if table.sets < table.max_sets => table.grow(),
                    // Full at its full size: each way in turn.
                    None => {
                        table.turn = table.turn.wrapping_add(1);
                        break (set, table.turn % WAYS);
                    }
                }
            };
            *table.tags.get_mut(set + way)? = probe.tag;
            let replaced = table.slots.get_mut(set + way).map(|old| old.replace(slot));
            Some((replaced, old))
        })
        .ok()
        .flatten();
    // Outside the borrow: dropping a value runs the user's `Drop`.
    drop(replaced);
}

/// Drops this thread's slots (a test's way to start from nothing).
#[cfg(test)]
pub(crate) fn forget_all() {
    let old = TABLE.with(|table| std::mem::take(&mut *table.borrow_mut()));
    drop(old);
}

/// [`hash`] of `len` bytes given as whole words, zero-padded: the same hash, without copying
/// the last few bytes apart.
fn hash_words(words: &[u8], len: usize, seed: u64) -> u64 {
    let mut h = hash_start(len, seed);
    for chunk in words.chunks_exact(8) {
        h = hash_word(h, chunk);
    }
    hash_finish(h)
}

/// A fast, well-mixed hash of a few bytes (not for defending against crafted input: slots are
/// compared by their bytes, so a collision only costs a miss).
fn hash(bytes: &[u8], seed: u64) -> u64 {
    let mut h = hash_start(bytes.len(), seed);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        h = hash_word(h, chunk);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        h = hash_word(h, rest);
    }
    hash_finish(h)
}

const HASH_K: u64 = 0x9e37_79b9_7f4a_7c15;

fn hash_start(len: usize, seed: u64) -> u64 {
    seed ^ (len as u64).wrapping_mul(HASH_K)
}

/// Mixes in 8 bytes (a shorter chunk counts as zero-padded).
#[inline(always)]
fn hash_word(h: u64, chunk: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    let n = chunk.len().min(8);
    word[..n].copy_from_slice(&chunk[..n]);
    (h ^ u64::from_le_bytes(word))
        .wrapping_mul(HASH_K)
        .rotate_left(31)
}

/// murmur3's finalizer: every input bit moves the top bits, which pick the set.
fn hash_finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::INLINE;
    use std::time::Duration;

    fn value(n: u32) -> Arc<dyn Any + Send + Sync> {
        Arc::new(n)
    }

    fn fetch(any: &(dyn Any + Send + Sync)) -> Option<u32> {
        any.downcast_ref::<u32>().copied()
    }

    const SETS: usize = 512;

    fn hs(epochs: &Epochs) -> HotSet<'_> {
        HotSet { epochs, sets: SETS }
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    /// Fills a slot of the default size for a minute with the number `n`.
    fn put(probe: &Probe<'_>, epochs: &Epochs, seen: Seen, n: u32) {
        fill(probe, hs(epochs), seen, later(), value(n));
    }

    #[test]
    fn a_slot_is_served_until_its_key_changes() {
        forget_all();
        let epochs = Epochs::new();
        let probe = Probe::new(1, 1, b"[1]");
        let seen = epochs.seen("p::f:a");
        put(&probe, &epochs, seen, 7);
        assert_eq!(get(&probe, &epochs, fetch), Some(7));
        epochs.changed("p::f:a");
        assert_eq!(get(&probe, &epochs, fetch), None);
    }

    #[test]
    fn a_change_before_the_fill_wins() {
        forget_all();
        let epochs = Epochs::new();
        let probe = Probe::new(1, 1, b"[1]");
        let seen = epochs.seen("p::f:a");
        epochs.changed("p::f:a");
        put(&probe, &epochs, seen, 7);
        assert_eq!(get(&probe, &epochs, fetch), None);
        epochs.all_changed();
        let seen = epochs.seen("p::f:a");
        put(&probe, &epochs, seen, 8);
        assert_eq!(get(&probe, &epochs, fetch), Some(8));
        epochs.all_changed();
        assert_eq!(get(&probe, &epochs, fetch), None);
    }

    #[test]
    fn slots_are_told_apart_by_their_bytes_function_and_backend() {
        forget_all();
        let epochs = Epochs::new();
        let seen = epochs.seen("k");
        put(&Probe::new(1, 1, b"[1]"), &epochs, seen, 1);
        put(&Probe::new(2, 1, b"[1]"), &epochs, seen, 2);
        put(&Probe::new(1, 2, b"[1]"), &epochs, seen, 3);
        assert_eq!(get(&Probe::new(1, 1, b"[1]"), &epochs, fetch), Some(1));
        assert_eq!(get(&Probe::new(2, 1, b"[1]"), &epochs, fetch), Some(2));
        assert_eq!(get(&Probe::new(1, 2, b"[1]"), &epochs, fetch), Some(3));
        assert_eq!(get(&Probe::new(1, 1, b"[2]"), &epochs, fetch), None);
        // The same hash with other bytes is still another key.
        let mut forged = Probe::new(1, 1, b"[3]");
        forged.tag = Probe::new(1, 1, b"[1]").tag;
        assert_eq!(get(&forged, &epochs, fetch), None);
        // Long key bytes are compared whole.
        let long = [b'x'; 100];
        let mut other = long;
        other[99] = b'y';
        put(&Probe::new(1, 1, &long), &epochs, seen, 4);
        assert_eq!(get(&Probe::new(1, 1, &long), &epochs, fetch), Some(4));
        let mut forged = Probe::new(1, 1, &other);
        forged.tag = Probe::new(1, 1, &long).tag;
        assert_eq!(get(&forged, &epochs, fetch), None);
    }

    /// Whether a slot filled with `value` until `expires_at` is refused by a lookup for `u32`.
    fn refused(expires_at: Instant, value: Arc<dyn Any + Send + Sync>) -> bool {
        forget_all();
        let epochs = Epochs::new();
        let probe = Probe::new(1, 1, b"[1]");
        fill(&probe, hs(&epochs), epochs.seen("k"), expires_at, value);
        get(&probe, &epochs, fetch).is_none()
    }

    #[test]
    fn an_expired_slot_is_not_served() {
        assert!(refused(Instant::now(), value(1)));
    }

    #[test]
    fn another_type_is_not_served() {
        assert!(refused(later(), Arc::new("text")));
    }

    #[test]
    fn a_full_set_keeps_the_newest() {
        forget_all();
        let epochs = Epochs::new();
        let seen = epochs.seen("k");
        let probes: Vec<Vec<u8>> = (0..20_000u32).map(|i| i.to_string().into_bytes()).collect();
        for (i, ident) in probes.iter().enumerate() {
            put(&Probe::new(1, 1, ident), &epochs, seen, i as u32);
        }
        let last = probes.len() - 1;
        assert_eq!(
            get(&Probe::new(1, 1, &probes[last]), &epochs, fetch),
            Some(last as u32)
        );
        let kept = probes
            .iter()
            .filter(|ident| get(&Probe::new(1, 1, ident), &epochs, fetch).is_some())
            .count();
        assert!(kept <= SETS * WAYS, "{kept}");
    }

    #[test]
    fn a_table_takes_the_size_it_is_asked_for() {
        assert_eq!(sets_for(0), 0);
        assert_eq!(sets_for(1), 1);
        assert_eq!(sets_for(4_096), 512);
        assert_eq!(sets_for(4_097), 1_024);
        assert_eq!(sets_for(usize::MAX), MAX_SETS);
        forget_all();
        let epochs = Epochs::new();
        let seen = epochs.seen("k");
        let small = HotSet {
            epochs: &epochs,
            sets: 1,
        };
        for i in 0..20u32 {
            let ident = i.to_string();
            fill(
                &Probe::new(1, 1, ident.as_bytes()),
                small,
                seen,
                later(),
                value(i),
            );
        }
        let kept = (0..20u32)
            .filter(|i| get(&Probe::new(1, 1, i.to_string().as_bytes()), &epochs, fetch).is_some())
            .count();
        assert_eq!(kept, WAYS, "one set of {WAYS} ways");
        // Another size starts over.
        put(&Probe::new(1, 1, b"x"), &epochs, seen, 99);
        assert_eq!(get(&Probe::new(1, 1, b"x"), &epochs, fetch), Some(99));
        assert_eq!(get(&Probe::new(1, 1, b"19"), &epochs, fetch), None);
    }

    #[test]
    fn a_table_starts_small_and_grows_to_its_size_as_copies_come() {
        forget_all();
        let epochs = Epochs::new();
        let seen = epochs.seen("k");
        let sets = || TABLE.with(|table| table.borrow().sets);
        put(&Probe::new(1, 1, b"[0]"), &epochs, seen, 0);
        assert_eq!(sets(), FIRST_SETS);
        let idents: Vec<String> = (0..3_000u32).map(|i| format!("[{i}]")).collect();
        for (i, ident) in idents.iter().enumerate() {
            put(&Probe::new(1, 1, ident.as_bytes()), &epochs, seen, i as u32);
        }
        assert!(sets() > FIRST_SETS && sets() <= SETS, "{}", sets());
        // Growing moved every copy to where lookups find it.
        let found = idents
            .iter()
            .filter(|ident| get(&Probe::new(1, 1, ident.as_bytes()), &epochs, fetch).is_some())
            .count();
        assert!(found > 2_500, "{found} of 3,000 copies found");
    }

    #[test]
    fn inline_probes_hash_like_the_bytes_they_hold() {
        for text in [
            "",
            "[1]",
            "[12345]",
            "[1234567]",
            "[12345678]",
            "[\"a\",\"bcdefghij\"]",
        ] {
            let mut inline = Inline::new();
            assert!(inline.push(text.as_bytes()));
            assert_eq!(
                Probe::of_inline(7, 9, &inline).tag,
                Probe::new(7, 9, text.as_bytes()).tag,
                "{text}"
            );
        }
        let mut full = Inline::new();
        assert!(full.push(&[b'x'; INLINE]));
        assert_eq!(
            Probe::of_inline(1, 2, &full).tag,
            Probe::new(1, 2, &[b'x'; INLINE]).tag
        );
    }

    #[test]
    fn the_hash_spreads_small_inputs_over_the_sets() {
        let sets: std::collections::HashSet<usize> = (0..1_000u32)
            .map(|i| Probe::new(1, 1, format!("[{i}]").as_bytes()).set(SETS))
            .collect();
        // 1,000 keys into 512 sets: about 440 distinct sets if the hash mixes well.
        assert!(sets.len() > 400, "{}", sets.len());
    }
}
