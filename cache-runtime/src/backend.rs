//! [`Backend`]: what every call of one [`Cache`](crate::Cache) works on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::circuit::Circuit;
use crate::config::CacheConfig;
use crate::counters::Counters;
use crate::error::CacheError;
use crate::fence::Era;
use crate::flight::Flights;
use crate::hot::{self, HotSet};
use crate::keys::ScopeKind;
use crate::latency::Latencies;
use crate::store::{AnyStore, Store};
use crate::top::TopKeys;

/// One cache's store, with what its calls share: the key prefix, limits, the misses in
/// flight, the counters, and the size of the hot sets in front of it.
pub(crate) struct Backend {
    /// Unique in the process: tells a thread's kept references (and hot-set copies) of one
    /// cache from another's.
    pub(crate) id: u64,
    pub(crate) prefix: Box<str>,
    pub(crate) store: AnyStore,
    /// Larger encoded values are not stored.
    pub(crate) max_value_size: usize,
    /// Sets of each thread's hot set (0: none).
    hot_sets: usize,
    pub(crate) flights: Flights,
    pub(crate) counters: Arc<Counters>,
    /// The most requested keys, sampled.
    pub(crate) top: TopKeys,
    /// Latencies of sampled calls, for the metrics.
    pub(crate) latencies: Latencies,
    /// Set when the last handle of the cache went: its metrics stop.
    closed: AtomicBool,
    /// Clears this process started on this cache: with the fence, what tells the flights of
    /// misses apart (see [`Era`]).
    clears: AtomicU64,
}

impl Backend {
    /// The backend `config` describes (checked first).
    pub(crate) async fn open(config: &CacheConfig) -> Result<Self, CacheError> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        config.validate()?;
        let counters = Counters::open();
        let store = match AnyStore::open(config, &counters).await {
            Ok(store) => store,
            Err(e) => {
                counters.close();
                return Err(e);
            }
        };
        Ok(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            prefix: config.prefix.as_str().into(),
            store,
            max_value_size: config.max_value_size,
            hot_sets: hot::sets_for(config.hot_set),
            flights: Flights::default(),
            counters,
            top: TopKeys::default(),
            latencies: Latencies::default(),
            closed: AtomicBool::new(false),
            clears: AtomicU64::new(0),
        })
    }

    /// The threads' hot sets in front of the in-process copies of the store (the memory
    /// store, or the near-cache): how large, and the copies' epochs. `None` when every hit
    /// needs Redis, or hot sets are off.
    pub(crate) fn hot(&self) -> Option<HotSet<'_>> {
        if self.hot_sets == 0 {
            return None;
        }
        Some(HotSet {
            epochs: self.store.epochs()?,
            sets: self.hot_sets,
        })
    }

    /// Marks the cache shut down (its last handle went) and retires its store.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.store.retire();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether the store is remote (a hit on an in-process copy is a local hit).
    pub(crate) fn remote(&self) -> bool {
        self.store.remote()
    }

    pub(crate) fn circuit(&self) -> Circuit {
        self.store.circuit()
    }

    pub(crate) async fn clear(&self, scope: &ScopeKind) -> Result<u64, CacheError> {
        self.clears.fetch_add(1, Ordering::SeqCst);
        self.store.clear(scope).await
    }

    /// Removes the entries of `namespace` matching any of `patterns` (see
    /// [`Store::clear_matching`]).
    pub(crate) async fn clear_matching(
        &self,
        namespace: &str,
        patterns: &[&str],
    ) -> Result<u64, CacheError> {
        self.clears.fetch_add(1, Ordering::SeqCst);
        self.store.clear_matching(namespace, patterns).await
    }

    /// Moves the fence of `scope`, removing nothing (see [`Store::raise`]).
    pub(crate) async fn raise(&self, scope: &ScopeKind) -> Result<(), CacheError> {
        self.clears.fetch_add(1, Ordering::SeqCst);
        self.store.raise(scope).await
    }

    /// The era of a miss of `key` beginning now, read before its body runs; without
    /// `read_fence` (the store could not be asked just now), no fence: nothing is stored.
    pub(crate) async fn era(&self, key: &str, read_fence: bool) -> Era {
        let clears = self.clears.load(Ordering::SeqCst);
        let fence = match read_fence {
            true => self.store.fence(key).await,
            false => None,
        };
        Era { fence, clears }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        // Nothing counts here any more: keep the counts in the process's totals.
        self.counters.close();
    }
}
