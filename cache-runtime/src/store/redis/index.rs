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

    /// Adds to `pipe` what keeps the index of `key`'s namespace (if it has one) up to date
    /// with a write of `ttl_secs`: all in the write's round trip.
    pub(super) fn on_write(
        &self,
        pipe: &mut redis::Pipeline,
        prefix: &str,
        key: &str,
        ttl_secs: u64,
    ) {
        let Some(index) = keys::index_of(prefix, key) else {
            return;
        };
        let now = wall_ms();
        let keep = ttl_secs + self.grace_secs;
        pipe.cmd("ZADD")
            .arg(index)
            .arg(now + ttl_secs * 1000)
            .arg(key)
            .ignore();
        // Members expired for a while are trimmed, so the index cannot grow without bound
        // when entries expire instead of being cleared. One write in TRIM_EVERY does it: the
        // index then holds at most about that many more dead members per namespace.
        if self
            .writes
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(TRIM_EVERY)
        {
            pipe.cmd("ZREMRANGEBYSCORE")
                .arg(index)
                .arg("-inf")
                .arg(now.saturating_sub(self.grace_secs * 1000))
                .ignore();
        }
        // The index outlives its longest-lived entry and no more.
        pipe.cmd("EXPIRE").arg(index).arg(keep).arg("NX").ignore();
        pipe.cmd("EXPIRE").arg(index).arg(keep).arg("GT").ignore();
    }
}

/// Milliseconds since the Unix epoch, the score of an index member (its expiry).
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
