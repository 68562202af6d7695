//! [`CacheConfig`]: which backend to use and how long anything may wait.

use std::time::Duration;

use crate::error::ConfigError;

/// Which store a [`CacheConfig`] points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Redis(String),
    /// A Redis Cluster, found from these nodes.
    Cluster(Vec<String>),
    /// The primary the sentinels at these URLs name `master`.
    Sentinel {
        urls: Vec<String>,
        master: String,
    },
    Memory,
}

/// How a cache is set up; pass it to [`Cache::new`](crate::Cache::new) or [`init`](crate::init).
///
/// Build one with [`CacheConfig::from_env`], [`CacheConfig::redis`] or [`CacheConfig::memory`],
/// then adjust it with the builder methods. Nothing is checked until `Cache::new`, which reports
/// every problem as [`CacheError::InvalidConfig`](crate::CacheError::InvalidConfig).
///
/// ```
/// use std::time::Duration;
/// use cache_runtime::CacheConfig;
///
/// let config = CacheConfig::redis("redis://127.0.0.1:6379/0")
///     .prefix("myapp")
///     .pool_size(16)
///     .command_timeout(Duration::from_millis(200));
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
pub struct CacheConfig {
    pub(crate) target: Target,
    pub(crate) prefix: String,
    pub(crate) pool_size: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) pool_wait_timeout: Duration,
    pub(crate) breaker_threshold: u32,
    pub(crate) breaker_cooldown: Duration,
    pub(crate) max_value_size: usize,
    pub(crate) lock_timeout: Duration,
    pub(crate) max_capacity: u64,
    pub(crate) local_cache: Option<u64>,
    pub(crate) clock_skew: Duration,
    pub(crate) hot_set: usize,
    pub(crate) metrics_interval: Duration,
}

impl CacheConfig {
    fn with_target(target: Target) -> Self {
        Self {
            target,
            prefix: "cache".to_owned(),
            pool_size: 8,
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_millis(500),
            pool_wait_timeout: Duration::from_millis(500),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(1),
            max_value_size: 1 << 20,
            lock_timeout: Duration::from_secs(10),
            max_capacity: 10_000,
            local_cache: None,
            clock_skew: Duration::from_secs(10),
            hot_set: 4_096,
            metrics_interval: Duration::from_secs(1),
        }
    }

    /// The store the environment names:
    ///
    /// - `REDIS_CLUSTER_URLS` (comma-separated URLs of some of a cluster's nodes): a Redis
    ///   Cluster, as [`cluster`](Self::cluster);
    /// - otherwise `REDIS_SENTINEL_URLS` (comma-separated sentinel URLs) with `REDIS_SENTINEL_MASTER`
    ///   (the name they monitor the primary under; `mymaster` when unset): the primary of a
    ///   Sentinel-managed set, as [`sentinel`](Self::sentinel);
    /// - otherwise `REDIS_URL`: one Redis, as [`redis`](Self::redis);
    /// - otherwise the in-memory backend.
    ///
    /// (Built without the `redis` feature, a Redis variable makes
    /// [`Cache::new`](crate::Cache::new) fail rather than be ignored.)
    /// `CACHE_PREFIX`, when set, replaces the default prefix `cache`.
    ///
    /// ```
    /// let config = cache_runtime::CacheConfig::from_env();
    /// # let _ = config;
    /// ```
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let list = |urls: String| urls.split(',').map(|u| u.trim().to_owned()).collect();
        let mut config = if let Some(urls) = var("REDIS_CLUSTER_URLS") {
            Self::with_target(Target::Cluster(list(urls)))
        } else if let Some(urls) = var("REDIS_SENTINEL_URLS") {
            Self::with_target(Target::Sentinel {
                urls: list(urls),
                master: var("REDIS_SENTINEL_MASTER").unwrap_or_else(|| "mymaster".to_owned()),
            })
        } else if let Some(url) = var("REDIS_URL") {
            Self::with_target(Target::Redis(url))
        } else {
            Self::memory()
        };
        if let Ok(prefix) = std::env::var("CACHE_PREFIX") {
            config.prefix = prefix;
        }
        config
    }

    /// Redis at `url` (`redis://[user][:password@]host[:port][/db]`), through a
    /// deadpool-redis pool whose connections are shared by concurrent callers.
    #[cfg(feature = "redis")]
    pub fn redis(url: impl Into<String>) -> Self {
        Self::with_target(Target::Redis(url.into()))
    }

    /// A Redis Cluster, found from the nodes at `urls` (some of them are enough; the rest
    /// are discovered). Every command goes to the node that holds its key's slot, through
    /// one multiplexed connection per node; `MOVED`, `ASK` and changes of topology are
    /// followed. Entries keep their keys (`{prefix}:{namespace}:{key}`), so they spread over
    /// every primary; a namespace's index and its clearing set share one slot (see the
    /// README's *Redis Cluster*). The user and password of the URLs apply to every node;
    /// every other option works as with [`redis`](Self::redis).
    ///
    /// ```
    /// use cache_runtime::CacheConfig;
    ///
    /// let config = CacheConfig::cluster(["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]);
    /// # let _ = config;
    /// ```
    #[cfg(feature = "redis")]
    pub fn cluster<U: Into<String>>(urls: impl IntoIterator<Item = U>) -> Self {
        Self::with_target(Target::Cluster(urls.into_iter().map(Into::into).collect()))
    }

    /// The primary of a Sentinel-managed set: the sentinels at `urls` name the primary they
    /// monitor as `master`, and every connection goes to the one they name when it is made
    /// (checked with `ROLE`: a replica is never written to). A failover is followed without
    /// a restart: a broken connection or a `READONLY` answer drops the connection, and the
    /// sentinels' `+switch-master` drops every connection to the old primary, so that calls
    /// reconnect to the new one at once. Everything else (timeouts, breaker, prefix,
    /// near-cache) works as with [`redis`](Self::redis).
    ///
    /// The user, password and database of the first URL are used for the sentinels and for
    /// the primary alike (`redis://:secret@127.0.0.1:26379/2`); a `rediss://` URL connects
    /// to the primary with TLS too.
    ///
    /// ```
    /// use cache_runtime::CacheConfig;
    ///
    /// let config = CacheConfig::sentinel(
    ///     ["redis://127.0.0.1:26379", "redis://127.0.0.1:26380"],
    ///     "mymaster",
    /// );
    /// # let _ = config;
    /// ```
    #[cfg(feature = "redis")]
    pub fn sentinel<U: Into<String>>(
        urls: impl IntoIterator<Item = U>,
        master: impl Into<String>,
    ) -> Self {
        Self::with_target(Target::Sentinel {
            urls: urls.into_iter().map(Into::into).collect(),
            master: master.into(),
        })
    }

    /// The in-memory backend (moka): the default when no Redis is configured. It honours
    /// TTLs, namespaces and every [`Scope`](crate::Scope), and holds at most
    /// [`max_capacity`](Self::max_capacity) entries.
    pub fn memory() -> Self {
        Self::with_target(Target::Memory)
    }

    /// The first segment of every key (default `cache`). Everything the crate reads, writes,
    /// scans or deletes lives under `{prefix}:`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How many Redis connections the pool may hold (default 8). Cached calls share
    /// multiplexed connections; the pool creates, checks and replaces them.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// How long opening a Redis connection may take (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one Redis command may take before the call fails open (default 500 ms).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// How long to wait for a free connection from the pool (default 500 ms).
    pub fn pool_wait_timeout(mut self, timeout: Duration) -> Self {
        self.pool_wait_timeout = timeout;
        self
    }

    /// After this many backend failures in a row (default 5: refused or dropped connections,
    /// timeouts, an exhausted pool, OOM/READONLY/LOADING answers) the circuit opens: cached
    /// calls skip Redis and run their body at once, for [`breaker_cooldown`](Self::breaker_cooldown).
    pub fn breaker_threshold(mut self, failures: u32) -> Self {
        self.breaker_threshold = failures;
        self
    }

    /// How long an open circuit skips Redis before one probe call tries it again (default 1 s);
    /// the probe's success closes the circuit and caching resumes by itself.
    pub fn breaker_cooldown(mut self, cooldown: Duration) -> Self {
        self.breaker_cooldown = cooldown;
        self
    }

    /// For functions with `lock = true`: how long one process may hold the lock of a key while
    /// it computes the value, and how long the others wait for it before they compute it
    /// themselves (default 10 s).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Values whose encoding is larger than this many bytes are not stored (default 1 MiB);
    /// the function still returns them, and the first such value of each key is logged.
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    /// The most entries the in-memory backend holds (default 10,000); least useful ones are
    /// evicted first.
    pub fn max_capacity(mut self, entries: u64) -> Self {
        self.max_capacity = entries;
        self
    }

    /// Keeps up to `capacity` hot entries in process memory in front of Redis (a near-cache),
    /// so a repeated hit costs no round trip.
    ///
    /// A copy lives no longer than the entry's TTL in Redis. Every overwrite and every
    /// [`clear_cache`](crate::clear_cache) is published on the Redis channel
    /// `{prefix}:invalidate`, and every process drops its copy; if that channel drops, the
    /// near-cache is flushed and off until it is subscribed again, so a lost message never
    /// leaves stale data behind. An ACL user needs the channel permission `&{prefix}:*`.
    /// The in-memory backend ignores this: it is in process memory already.
    ///
    /// ```
    /// let config = cache_runtime::CacheConfig::redis("redis://127.0.0.1/").local_cache(10_000);
    /// # let _ = config;
    /// ```
    pub fn local_cache(mut self, capacity: u64) -> Self {
        self.local_cache = Some(capacity);
        self
    }

    /// How many decoded copies of hot entries each thread keeps in front of the in-memory
    /// backend or the near-cache (default 4,096; `0` turns them off).
    ///
    /// A hit on such a copy costs no hashing of the key and touches nothing another thread
    /// writes: from 64 tasks on 2 cores, about 3 times the hits of the store behind it. A copy
    /// is served only while its entry is unchanged and unexpired: every write, clear and
    /// invalidation of the store makes the copies of what it changed miss. Each thread that
    /// makes cached calls allocates 512 slots of 96 bytes on its first copy (arguments whose
    /// JSON is over 22 bytes add a copy of it), and doubles them when a set is full, up to
    /// this many (384 KB at the default); the slots keep alive the values they hold, which the
    /// store holds too until it evicts them. Only values of types that can be cloned are
    /// copied, and only for functions without `refresh` or `stale_if_error` (those ask the
    /// store for the time left).
    ///
    /// ```
    /// let config = cache_runtime::CacheConfig::memory().hot_set(512);
    /// # let _ = config;
    /// ```
    pub fn hot_set(mut self, copies_per_thread: usize) -> Self {
        self.hot_set = copies_per_thread;
        self
    }

    /// How often the cache publishes its counters and latencies through the `metrics` facade
    /// (default 1 s; `Duration::ZERO`: only when
    /// [`Cache::publish_metrics`](crate::Cache::publish_metrics) is called). Publishing reads
    /// the counters; nothing is emitted on the call path.
    pub fn metrics_interval(mut self, interval: Duration) -> Self {
        self.metrics_interval = interval;
        self
    }

    /// The most the clocks of the processes sharing a Redis may differ (default 10 s).
    ///
    /// Each namespace keeps an index of its entries under `{prefix}:{namespace}`, so that
    /// clearing it costs time in proportion to its entries, not to the database. Members are
    /// scored by their expiry on the writer's clock and trimmed once expired for this long.
    pub fn clock_skew(mut self, tolerance: Duration) -> Self {
        self.clock_skew = tolerance;
        self
    }

    /// Checks everything that can be checked without connecting.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let check = |ok: bool, setting: &'static str, reason: &'static str| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::new(setting, reason))
            }
        };
        check(!self.prefix.is_empty(), "prefix", "may not be empty")?;
        check(self.pool_size > 0, "pool_size", "must be at least 1")?;
        for (setting, value) in [
            ("connect_timeout", self.connect_timeout),
            ("command_timeout", self.command_timeout),
            ("pool_wait_timeout", self.pool_wait_timeout),
            ("lock_timeout", self.lock_timeout),
            ("breaker_cooldown", self.breaker_cooldown),
        ] {
            check(!value.is_zero(), setting, "must be greater than zero")?;
        }
        check(self.max_capacity > 0, "max_capacity", "must be at least 1")?;
        check(
            self.breaker_threshold > 0,
            "breaker_threshold",
            "must be at least 1",
        )?;
        check(
            self.local_cache != Some(0),
            "local_cache",
            "capacity must be at least 1",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let c = CacheConfig::memory();
        assert_eq!(c.prefix, "cache");
        assert!(c.validate().is_ok());
        assert!(CacheConfig::memory().prefix("").validate().is_err());
        assert!(CacheConfig::memory().pool_size(0).validate().is_err());
        let err = CacheConfig::memory()
            .command_timeout(Duration::ZERO)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("command_timeout"), "{err}");
    }
}
