//! [`Cache`]: a cache the application holds.

use std::fmt;
use std::sync::Arc;

use crate::backend::Backend;
use crate::config::CacheConfig;
use crate::error::CacheError;
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
        self.backend.store.retire();
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
        let backend = Backend::open(&config).await?;
        Ok(Self {
            handle: Arc::new(Handle {
                backend: Arc::new(backend),
            }),
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

    /// The counters of this cache since it was made, and its circuit now.
    pub fn stats(&self) -> Stats {
        let backend = self.backend();
        stats::snapshot(backend.counters.totals(), backend.circuit())
    }

    /// The prefix every key of this cache starts with.
    pub fn prefix(&self) -> &str {
        &self.backend().prefix
    }

    pub(crate) fn backend(&self) -> &Arc<Backend> {
        &self.handle.backend
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("prefix", &self.prefix())
            .field("remote", &self.backend().remote())
            .finish_non_exhaustive()
    }
}
