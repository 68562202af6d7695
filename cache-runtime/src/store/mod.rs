//! Where entries live: the [`Store`] operations every store implements, and [`AnyStore`], the
//! one place that picks a store and dispatches to it.
//!
//! Adding a store (a Redis Cluster, a Sentinel-managed primary) is a new variant here, an arm
//! in [`dispatch!`] and [`AnyStore::open`], and the store's own files; the call engine only
//! ever sees [`AnyStore`].

pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::circuit::Circuit;
use crate::config::{CacheConfig, Target};
use crate::counters::Counters;
use crate::error::CacheError;
use crate::fence::Fence;
use crate::hot::Epochs;
use crate::keys::ScopeKind;
use memory::{MemoryStore, Slot};

/// The result of a lookup on the hot path. Errors are already logged and counted by the
/// store, because the caller's only choice is to run the body.
// Some variants are only made by remote stores.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum Fetch {
    /// The bytes, and the time the entry has left when the caller asked for it.
    Hit(Held, Option<Duration>),
    Miss,
    /// The store could not be asked (unreachable, timed out, answered an error).
    Unavailable,
    /// The connection the lookup went out on was found closed (a server restart, an idle
    /// timeout, `CLIENT KILL`, a failover) and has been dropped: asking once more
    /// ([`Store::get_again`]) may well answer.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Dropped,
}

/// What a lookup hands out: bytes fresh from a reply, or an in-process copy, which keeps a
/// decoded value next to its bytes (the memory store and the near-cache).
// Some variants are only made by remote stores.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum Held {
    Reply(Vec<u8>),
    Copy(Arc<Slot>),
}

impl Held {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Held::Reply(bytes) => bytes,
            Held::Copy(slot) => slot.as_bytes(),
        }
    }

    /// The in-process copy, if this is one.
    pub(crate) fn slot(&self) -> Option<&Slot> {
        match self {
            Held::Reply(_) => None,
            Held::Copy(slot) => Some(slot),
        }
    }
}

/// The outcome of trying the cross-process lock of a key.
// Some variants are only made by remote stores.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum Locked {
    /// This caller computes the value; release with the token.
    Acquired(String),
    /// Another process computes it.
    Held,
    /// No lock: the store is in this process (single-flight is enough), or it could not be
    /// asked. The caller computes without one.
    Skipped,
}

/// A page of entries of a namespace, for the admin API.
#[derive(Debug, Default)]
pub(crate) struct Page {
    /// Each entry's key and the time it has left (`None`: no expiry).
    pub(crate) entries: Vec<(String, Option<Duration>)>,
    /// Where the next page starts; 0 after the last.
    pub(crate) next: u64,
}

/// The operations of a store. Keys arrive complete (`{prefix}:{namespace}:{key}`).
pub(crate) trait Store: Send + Sync {
    /// The entry under `key`; with `want_ttl`, also the time it has left.
    fn get(&self, key: &str, want_ttl: bool) -> impl Future<Output = Fetch> + Send;

    /// [`get`](Self::get) once more, after it said [`Fetch::Dropped`]: on a fresh connection,
    /// within one command timeout. Never [`Fetch::Dropped`] again.
    fn get_again(&self, key: &str, want_ttl: bool) -> impl Future<Output = Fetch> + Send {
        self.get(key, want_ttl)
    }

    /// The fence of `key` now, read by a miss before its body runs; `None` when it cannot be
    /// read (the store is unreachable): the result is then not stored.
    fn fence(&self, key: &str) -> impl Future<Output = Option<Fence>> + Send;

    /// Stores `value` for `ttl_secs`, unless a clear moved `fence` (the fence the miss read
    /// before its body ran): then nothing is stored. Failures are logged and swallowed
    /// (fail-open).
    fn set(
        &self,
        key: &str,
        value: Arc<[u8]>,
        ttl_secs: u64,
        fence: Fence,
    ) -> impl Future<Output = ()> + Send;

    /// Removes entries; an explicit action, so errors are returned. It moves the fence of
    /// `scope` before it removes anything, and has moved it when it returns `Ok`.
    fn clear(&self, scope: &ScopeKind) -> impl Future<Output = Result<u64, CacheError>> + Send;

    /// Moves the fence of `scope` without removing anything: misses under way from before
    /// store nothing, and later calls do not join their flights (an invalidation does this
    /// before its write runs, then clears after it succeeded).
    fn raise(&self, scope: &ScopeKind) -> impl Future<Output = Result<(), CacheError>> + Send;

    /// A page of the entries of `namespace` whose key segment matches `pattern` (`*` and `?`
    /// are wildcards), from `cursor` (0: the first page), about `count` long. Found through
    /// the namespace's index on Redis, never a scan of the keyspace.
    fn list(
        &self,
        namespace: &str,
        pattern: &str,
        cursor: u64,
        count: usize,
    ) -> impl Future<Output = Result<Page, CacheError>> + Send;

    /// Removes the entries of `namespace` whose key segment matches any of `patterns`, after
    /// moving the namespace's fence once; how many there were.
    fn clear_matching(
        &self,
        namespace: &str,
        patterns: &[&str],
    ) -> impl Future<Output = Result<u64, CacheError>> + Send;

    /// How long the store takes to answer a `PING` (an in-process store: at once).
    fn ping(&self) -> impl Future<Output = Result<Duration, CacheError>> + Send {
        std::future::ready(Ok(Duration::ZERO))
    }

    /// Tries to take the cross-process lock of `key`, for a function with `lock = true`.
    fn lock(&self, key: &str) -> impl Future<Output = Locked> + Send {
        let _ = key;
        std::future::ready(Locked::Skipped)
    }

    /// Releases a lock [`lock`](Self::lock) took, if it is still this caller's.
    fn unlock(&self, key: &str, token: &str) -> impl Future<Output = ()> + Send {
        let _ = (key, token);
        std::future::ready(())
    }

    /// Waits for the value another process computes under the lock of `key`, for at most the
    /// lock timeout; `None` when it did not come.
    fn wait_for(&self, key: &str) -> impl Future<Output = Option<Vec<u8>>> + Send {
        let _ = key;
        std::future::ready(None)
    }

    /// The state of the store's circuit breaker.
    fn circuit(&self) -> Circuit {
        Circuit::Closed
    }

    /// The epochs of the in-process copies of entries that the threads' hot sets may copy in
    /// turn; `None` when the store keeps none.
    fn epochs(&self) -> Option<&Epochs>;

    /// Whether the store is remote, so that a hit on an in-process copy saved a round trip
    /// (counted as a local hit).
    fn remote(&self) -> bool {
        false
    }

    /// Lets go of what the store holds when its cache is shut down: connections, copies,
    /// entries. Calls still running on it finish, uncached when they need it again.
    fn retire(&self);
}

/// Every store there is.
// One per cache, inside its `Arc`: boxing the large variant would only add a pointer to
// follow on every lookup.
#[allow(clippy::large_enum_variant)]
pub(crate) enum AnyStore {
    Memory(MemoryStore),
    #[cfg(feature = "redis")]
    Redis(redis::RedisStore),
}

/// Runs `$body` with `$store` bound to the store inside `$any`: the one `match` on the kind
/// of store.
macro_rules! dispatch {
    ($any:expr, $store:ident => $body:expr) => {
        match $any {
            AnyStore::Memory($store) => $body,
            #[cfg(feature = "redis")]
            AnyStore::Redis($store) => $body,
        }
    };
}

impl AnyStore {
    /// The store `config` names; fails only on a configuration that cannot work, never
    /// because a server is unreachable now.
    pub(crate) async fn open(
        config: &CacheConfig,
        counters: &Arc<Counters>,
    ) -> Result<Self, CacheError> {
        match &config.target {
            Target::Memory => Ok(AnyStore::Memory(MemoryStore::new(
                &config.prefix,
                config.max_capacity,
            ))),
            #[cfg(feature = "redis")]
            Target::Redis(url) => Ok(AnyStore::Redis(
                redis::RedisStore::connect(url, config, Arc::clone(counters)).await?,
            )),
            #[cfg(feature = "redis")]
            Target::Sentinel { urls, master } => Ok(AnyStore::Redis(
                redis::RedisStore::connect_sentinel(urls, master, config, Arc::clone(counters))
                    .await?,
            )),
            #[cfg(feature = "redis")]
            Target::Cluster(urls) => Ok(AnyStore::Redis(
                redis::RedisStore::connect_cluster(urls, config, Arc::clone(counters)).await?,
            )),
            #[cfg(not(feature = "redis"))]
            Target::Redis(_) | Target::Sentinel { .. } | Target::Cluster(_) => {
                let _ = counters;
                Err(crate::error::ConfigError::new(
                    "url",
                    "this build of cache-runtime has no Redis support: enable its `redis` feature",
                )
                .into())
            }
        }
    }
}

impl Store for AnyStore {
    // The hit path: the store's own future, not one more state machine around it (an
    // `async fn` here made every call's boxed future 56 bytes larger, and a hit copy them).
    fn get(&self, key: &str, want_ttl: bool) -> impl Future<Output = Fetch> + Send {
        #[cfg(feature = "redis")]
        {
            use futures_util::future::Either;
            match self {
                AnyStore::Memory(store) => Either::Left(store.get(key, want_ttl)),
                AnyStore::Redis(store) => Either::Right(store.get(key, want_ttl)),
            }
        }
        #[cfg(not(feature = "redis"))]
        {
            let AnyStore::Memory(store) = self;
            store.get(key, want_ttl)
        }
    }

    async fn get_again(&self, key: &str, want_ttl: bool) -> Fetch {
        dispatch!(self, store => store.get_again(key, want_ttl).await)
    }

    async fn fence(&self, key: &str) -> Option<Fence> {
        dispatch!(self, store => store.fence(key).await)
    }

    async fn set(&self, key: &str, value: Arc<[u8]>, ttl_secs: u64, fence: Fence) {
        dispatch!(self, store => store.set(key, value, ttl_secs, fence).await)
    }

    async fn clear(&self, scope: &ScopeKind) -> Result<u64, CacheError> {
        dispatch!(self, store => store.clear(scope).await)
    }

    async fn raise(&self, scope: &ScopeKind) -> Result<(), CacheError> {
        dispatch!(self, store => store.raise(scope).await)
    }

    async fn list(
        &self,
        namespace: &str,
        pattern: &str,
        cursor: u64,
        count: usize,
    ) -> Result<Page, CacheError> {
        dispatch!(self, store => store.list(namespace, pattern, cursor, count).await)
    }

    async fn clear_matching(&self, namespace: &str, patterns: &[&str]) -> Result<u64, CacheError> {
        dispatch!(self, store => store.clear_matching(namespace, patterns).await)
    }

    async fn ping(&self) -> Result<Duration, CacheError> {
        dispatch!(self, store => store.ping().await)
    }

    async fn lock(&self, key: &str) -> Locked {
        dispatch!(self, store => store.lock(key).await)
    }

    async fn unlock(&self, key: &str, token: &str) {
        dispatch!(self, store => store.unlock(key, token).await)
    }

    async fn wait_for(&self, key: &str) -> Option<Vec<u8>> {
        dispatch!(self, store => store.wait_for(key).await)
    }

    fn circuit(&self) -> Circuit {
        dispatch!(self, store => store.circuit())
    }

    fn epochs(&self) -> Option<&Epochs> {
        dispatch!(self, store => store.epochs())
    }

    fn remote(&self) -> bool {
        dispatch!(self, store => store.remote())
    }

    fn retire(&self) {
        dispatch!(self, store => store.retire())
    }
}

#[cfg(all(test, not(feature = "redis")))]
mod tests {
    use super::*;

    /// Built without Redis, a Redis URL (from `REDIS_URL`, say) is refused, not ignored.
    #[tokio::test]
    async fn a_redis_url_without_the_redis_feature_is_a_config_error() {
        let mut config = CacheConfig::memory();
        config.target = Target::Redis("redis://127.0.0.1/".into());
        let err = AnyStore::open(&config, &Counters::open())
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("`redis` feature"), "{err}");
    }
}
