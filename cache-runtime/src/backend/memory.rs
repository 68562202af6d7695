//! The in-memory backend (moka), the embedded default when no Redis is configured.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;

use super::{scope_prefix, Fetch, Store};
use crate::clear::ScopeKind;
use crate::CacheError;

#[derive(Clone)]
struct Entry {
    bytes: Arc<[u8]>,
    ttl: Duration,
}

/// Gives each entry the TTL it was stored with, like `SET .. EX` does in Redis.
struct PerEntryTtl;

impl Expiry<Arc<str>, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &Arc<str>, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _: &Arc<str>,
        entry: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

pub(crate) struct MemoryStore {
    cache: Cache<Arc<str>, Entry>,
    prefix: Box<str>,
}

impl MemoryStore {
    pub(crate) fn new(prefix: &str, max_capacity: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(max_capacity)
                .expire_after(PerEntryTtl)
                .build(),
            prefix: prefix.into(),
        }
    }
}

impl Store for MemoryStore {
    type Bytes = Arc<[u8]>;

    async fn get(&self, key: &str) -> Fetch<Arc<[u8]>> {
        let found = self.cache.get(key).await;
        // A memory hit does no I/O: spend the task's budget so busy callers still yield.
        tokio::task::coop::consume_budget().await;
        match found {
            Some(entry) => Fetch::Hit(entry.bytes),
            None => Fetch::Miss,
        }
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl_secs: u64) {
        let entry = Entry {
            bytes: value.into(),
            ttl: Duration::from_secs(ttl_secs),
        };
        self.cache.insert(Arc::from(key), entry).await;
    }

    async fn clear(&self, scope: &ScopeKind) -> Result<u64, CacheError> {
        let (start, exact) = scope_prefix(&self.prefix, scope);
        if exact {
            return Ok(u64::from(self.cache.remove(start.as_str()).await.is_some()));
        }
        // Apply pending evictions and expirations first, so the count is what was really held.
        self.cache.run_pending_tasks().await;
        let doomed: Vec<Arc<str>> = self
            .cache
            .iter()
            .filter(|(k, _)| k.starts_with(start.as_str()))
            .map(|(k, _)| Arc::clone(&*k))
            .collect();
        let mut removed = 0;
        for key in doomed {
            if self.cache.remove(&key).await.is_some() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}
