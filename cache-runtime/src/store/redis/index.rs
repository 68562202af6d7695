//! The namespace index: each write to a namespace also adds its key to a sorted set at
//! `{prefix}:{namespace}`, scored by the entry's expiry, so that a namespace clear costs time
//! in proportion to the namespace, not to the database. The index trims its long-expired
//! members now and then, and expires with its longest-lived entry.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::keys;

/// One write in this many to a namespace trims its index of expired members.
const TRIM_EVERY: u64 = 8;

/// How a store keeps its namespaces' indexes.
pub(super) struct Index {
    /// How long an index keeps a member past its expiry: slack for clocks that differ between
    /// the processes writing it.
    grace_secs: u64,
    /// Writes to namespaces so far, to pick the ones that trim.
    writes: AtomicU64,
}

impl Index {
    pub(super) fn new(grace_secs: u64) -> Self {
        Self {
            grace_secs,
            writes: AtomicU64::new(0),
        }
    }

    /// What keeps the index of `key`'s namespace (if it has one) up to date with a write
    /// of `ttl_secs`; the write's script applies it in the same round trip.
    pub(super) fn on_write<'k>(
        &self,
        prefix: &str,
        key: &'k str,
        ttl_secs: u64,
    ) -> Option<Upkeep<'k>> {
        let index = keys::index_of(prefix, key)?;
        let now = wall_ms();
        // Members expired for a while are trimmed, so the index cannot grow without bound
        // when entries expire instead of being cleared. One write in TRIM_EVERY does it: the
        // index then holds at most about that many more dead members per namespace.
        let trim = self
            .writes
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(TRIM_EVERY);
        Some(Upkeep {
            index,
            score: now + ttl_secs * 1000,
            trim_below: trim.then(|| now.saturating_sub(self.grace_secs * 1000)),
            // The index outlives its longest-lived entry and no more.
            keep_secs: ttl_secs + self.grace_secs,
        })
    }
}

/// One write's change to its namespace's index: `ZADD index score key`, then (sometimes)
/// `ZREMRANGEBYSCORE index -inf trim_below`, then `EXPIRE index keep_secs NX` and `.. GT`.
pub(super) struct Upkeep<'k> {
    pub(super) index: &'k str,
    /// The entry's expiry, in Unix milliseconds.
    pub(super) score: u64,
    pub(super) trim_below: Option<u64>,
    pub(super) keep_secs: u64,
}

/// Milliseconds since the Unix epoch, the score of an index member (its expiry).
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
