//! [`Cache`]: a cache the application holds.

use std::fmt;
use std::sync::Arc;

use crate::backend::Backend;
use crate::config::CacheConfig;
use crate::error::CacheError;
use crate::metrics;
use crate::scope::Scope;
use crate::stats::{self, Stats};
use crate::store::Store;

/// A cache: a store (Redis, or the in-memory default) with its prefix, limits, counters and
/// the single-flight of its misses. Cheap to clone (a reference count) and to share between
/// tasks and threads; clones are the same cache.
///
/// `#[cache]` functions use the process default, which [`init`](crate::init) (or
/// [`set_default`](crate::set_default)) installs; `#[cache(cache = EXPR)]` names another,
/// such as one kept in the application's state, so that two instances of an application in
/// one process (two tests, two tenants) never share entries. Two caches see each other's
/// entries only when they share a store and a prefix (one Redis, one `prefix`).
///
/// When the last clone is dropped, the cache shuts down: its connections are closed, its
/// near-cache stops listening and in-memory entries are dropped; calls still running on it
/// finish, uncached.
///
/// ```
/// use cache_runtime::{cache, Cache, CacheConfig, Scope};
///
/// struct Articles {
///     cache: Cache,
///     db: Vec<String>, // a database in real life
/// }
///
/// impl Articles {
///     // `self` is left out of the key, and each `Articles` has a cache of its own, so two
///     // of them never serve each other's articles.
///     #[cache(namespace = "articles", cache = &self.cache, skip = [self])]
///     async fn title(&self, id: usize) -> Option<String> {
///         self.db.get(id).cloned()
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_runtime::CacheError> {
/// let a = Articles { cache: Cache::new(CacheConfig::memory()).await?, db: vec!["a".into()] };
/// let b = Articles { cache: Cache::new(CacheConfig::memory()).await?, db: vec!["b".into()] };
/// assert_eq!(a.title(0).await.as_deref(), Some("a"));
/// assert_eq!(b.title(0).await.as_deref(), Some("b"));
/// assert_eq!(a.cache.stats().misses, 1);
/// a.cache.clear(Scope::namespace("articles")).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Cache {
    handle: Arc<Handle>,
}

/// What the clones of one [`Cache`] share. Calls hold the backend, not this: when the last
/// handle goes, the backend shuts down even while calls still run on it.
struct Handle {
    backend: Arc<Backend>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.backend.close();
    }
}

impl Cache {
    /// A cache as `config` describes it.
    ///
    /// Errors come only from the configuration (a malformed URL, a zero timeout): a Redis
    /// that is unreachable now is retried later, and cached functions run uncached meanwhile.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use cache_runtime::{Cache, CacheConfig};
    /// let cache = Cache::new(CacheConfig::memory().max_capacity(1_000)).await.unwrap();
    /// assert_eq!(cache.prefix(), "cache");
    /// assert!(Cache::new(CacheConfig::memory().prefix("")).await.is_err());
    /// # }
    /// ```
    pub async fn new(config: CacheConfig) -> Result<Self, CacheError> {
        let backend = Arc::new(Backend::open(&config).await?);
        if !config.metrics_interval.is_zero() {
            tokio::spawn(metrics::publish_every(
                Arc::downgrade(&backend),
                config.metrics_interval,
            ));
        }
        Ok(Self {
            handle: Arc::new(Handle { backend }),
        })
    }

    /// Removes the entries of `scope` and returns how many there were.
    ///
    /// Unlike a cached call, this reports failures: the caller asked for the removal and must
    /// know whether it happened. On Redis a key is one `UNLINK`, a namespace is found through
    /// its index (time in proportion to the namespace, not to the database), and
    /// [`Scope::all`] is a `SCAN` of the prefix; nothing outside the prefix is touched.
    ///
    /// An invalidation is final: once this returns `Ok`, no read that starts afterwards (in
    /// this process, or in any other on the same Redis) returns a value computed before the
    /// clear started. A miss that was running meanwhile does not store its result, and a call
    /// that starts afterwards does not wait for it; it runs the body itself.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::CacheError> {
    /// use cache_runtime::{Cache, CacheConfig, Scope};
    /// let cache = Cache::new(CacheConfig::memory()).await?;
    /// assert_eq!(cache.clear(Scope::namespace("catalog")).await?, 0);
    /// assert!(cache.clear(Scope::namespace("a:b")).await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn clear(&self, scope: Scope) -> Result<u64, CacheError> {
        scope.validate()?;
        self.backend().clear(scope.kind()).await
    }

    /// A page of the entries of `namespace` whose key segment (after `{prefix}:{namespace}:`)
    /// matches `pattern`, in which only `*` and `?` are wildcards, from `cursor` (0: the first
    /// page), about `count` long; the page's `next_cursor` is 0 after the last. On Redis the
    /// entries are found through the namespace's index, never by a scan of the keyspace.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::CacheError> {
    /// use cache_runtime::{Cache, CacheConfig};
    /// let cache = Cache::new(CacheConfig::memory()).await?;
    /// let page = cache.keys("users", "user:*", 0, 100).await?;
    /// assert!(page.keys.is_empty() && page.next_cursor == 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn keys(
        &self,
        namespace: &str,
        pattern: &str,
        cursor: u64,
        count: usize,
    ) -> Result<KeysPage, CacheError> {
        Scope::namespace(namespace).validate()?;
        let page = self
            .backend()
            .store
            .list(namespace, pattern, cursor, count)
            .await?;
        Ok(KeysPage {
            keys: page.entries,
            next_cursor: page.next,
        })
    }

    /// Removes the entries of `namespace` whose key segment matches `pattern` (`*` and `?`
    /// are wildcards), and returns how many there were. Like any clear it is final: the
    /// namespace's misses under way store nothing.
    pub async fn clear_matching(&self, namespace: &str, pattern: &str) -> Result<u64, CacheError> {
        Scope::namespace(namespace).validate()?;
        self.backend().clear_matching(namespace, &[pattern]).await
    }

    /// How long the store takes to answer a `PING` (the memory store: no time).
    pub async fn ping(&self) -> Result<std::time::Duration, CacheError> {
        self.backend().store.ping().await
    }

    /// The counters of this cache since it was made, and its circuit now.
    pub fn stats(&self) -> Stats {
        let backend = self.backend();
        stats::snapshot(
            backend.counters.totals(),
            backend.circuit(),
            backend.top.top(10),
        )
    }

    /// Publishes this cache's counters and latency samples through the `metrics` facade now
    /// (a task also does it every [`metrics_interval`](crate::CacheConfig::metrics_interval));
    /// without a recorder installed, they go nowhere. See the crate's README for the names.
    pub fn publish_metrics(&self) {
        metrics::publish(self.backend());
    }

    /// The prefix every key of this cache starts with.
    pub fn prefix(&self) -> &str {
        &self.backend().prefix
    }

    pub(crate) fn backend(&self) -> &Arc<Backend> {
        &self.handle.backend
    }
}

/// What `#[cache(cache = EXPR)]` accepts: a cache, or none (the call then runs uncached,
/// as before [`init`](crate::init)).
#[diagnostic::on_unimplemented(
    message = "`cache = ...` must be a `&Cache` or an `Option<&Cache>`, not `{Self}`",
    label = "this names the cache the function uses",
    note = "for example `cache = &state.cache`, `cache = &*CACHE` or `cache = CACHE.get()`"
)]
pub trait CacheRef<'a> {
    /// The cache, if there is one.
    fn cache(self) -> Option<&'a Cache>;
}

impl<'a> CacheRef<'a> for &'a Cache {
    fn cache(self) -> Option<&'a Cache> {
        Some(self)
    }
}

impl<'a> CacheRef<'a> for Option<&'a Cache> {
    fn cache(self) -> Option<&'a Cache> {
        self
    }
}

/// A page of entries; see [`Cache::keys`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeysPage {
    /// Each entry's key and the time it has left (`None`: no expiry).
    pub keys: Vec<(String, Option<std::time::Duration>)>,
    /// Where the next page starts; 0 after the last.
    pub next_cursor: u64,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("prefix", &self.prefix())
            .field("remote", &self.backend().remote())
            .finish_non_exhaustive()
    }
}
