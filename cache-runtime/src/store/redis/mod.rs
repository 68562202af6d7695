//! The Redis store: a hit costs one `GET` round trip on a connection that concurrent callers
//! share; lookups that start together go out together as one `MGET`; a near-cache keeps hot
//! entries in process, kept honest by an invalidation channel.
//!
//! - [`connection`]: the pool and the shared connection; [`breaker`]: the circuit breaker;
//! - [`commands`]: what a cached call sends (the lookup and the write);
//! - [`batch`]: lookups batched into `MGET`s;
//! - [`index`]: the namespace indexes that make a namespace clear O(namespace);
//! - [`lock`]: the cross-process lock of `lock = true`;
//! - [`clear`]: removal by key, namespace and prefix;
//! - [`pages`]: the admin API's listing, pattern clears and `PING`, through the indexes;
//! - [`near`]: the near-cache and its invalidation channel;
//! - [`sentinel`]: the primary of a Sentinel-managed set, and following its failovers;
//! - [`errors`]: what a client error means, as a [`CacheError`].

mod batch;
mod breaker;
mod clear;
mod cluster;
mod commands;
mod connection;
mod errors;
mod index;
mod link;
mod lock;
mod near;
mod pages;
mod sentinel;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use batch::Batcher;
use connection::{Connections, Dialer};
use index::Index;
use near::{Near, Subscriber};
use sentinel::Resolver;

use super::{Fetch, Locked, Page, Store};
use crate::circuit::Circuit;
use crate::config::CacheConfig;
use crate::counters::Counters;
use crate::error::CacheError;
use crate::error::ConfigError;
use crate::fence::Fence;
use crate::hot::Epochs;
use crate::keys::{self, ScopeKind};

pub(crate) struct RedisStore {
    conns: Arc<Connections>,
    prefix: Box<str>,
    counters: Arc<Counters>,
    index: Index,
    /// How long a cross-process lock is held at most, and waited for.
    lock_timeout: Duration,
    /// How long a command may take: the bound of a lookup's retry on a fresh connection.
    command_timeout: Duration,
    /// Lookups that start together go out together, as one `MGET`.
    batcher: Batcher,
    near: Option<Arc<Near>>,
    /// Where invalidations are published: `{prefix}:invalidate`.
    channel: String,
    /// Tells this store's own invalidations apart from other stores' (in this process or
    /// another), which its near-cache must obey.
    instance: u64,
    /// Keeps the near-cache subscribed; aborted with the store.
    listener: Option<tokio::task::JoinHandle<()>>,
    /// Follows the sentinels' failovers (behind Sentinel); aborted with the store.
    follower: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        for task in [&self.listener, &self.follower].into_iter().flatten() {
            task.abort();
        }
    }
}

impl RedisStore {
    /// Builds the pool; fails only on a malformed URL or configuration, never because Redis
    /// is unreachable (it is then retried as calls come in).
    pub(crate) async fn connect(
        url: &str,
        config: &CacheConfig,
        counters: Arc<Counters>,
    ) -> Result<Self, CacheError> {
        let invalid = |e| {
            ConfigError::new("url", format!("invalid Redis URL {}", errors::redact(url)))
                .caused_by(e)
        };
        let manager = deadpool_redis::Manager::new_with_config(url, connection_config(config))
            .map_err(invalid)?;
        let client = redis::Client::open(url).map_err(invalid)?;
        let conns = Connections::new(
            Dialer::Direct(Box::new(manager)),
            config,
            Arc::clone(&counters),
        )?;
        Self::start(
            conns,
            Subscriber::Direct(Box::new(client)),
            None,
            config,
            counters,
        )
        .await
    }

    /// [`connect`](Self::connect) to the Redis Cluster the nodes at `urls` belong to.
    pub(crate) async fn connect_cluster(
        urls: &[String],
        config: &CacheConfig,
        counters: Arc<Counters>,
    ) -> Result<Self, CacheError> {
        let invalid = |e| {
            let shown: Vec<String> = urls.iter().map(|u| errors::redact(u)).collect();
            ConfigError::new("cluster", format!("invalid cluster URLs {shown:?}")).caused_by(e)
        };
        if urls.is_empty() {
            return Err(ConfigError::new("cluster", "no cluster URL given").into());
        }
        let client = redis::cluster::ClusterClientBuilder::new(urls.to_vec())
            .connection_timeout(config.connect_timeout)
            .response_timeout(config.command_timeout)
            .build()
            .map_err(invalid)?;
        let nodes = urls
            .iter()
            .map(|url| redis::Client::open(url.as_str()).map_err(invalid))
            .collect::<Result<Vec<_>, _>>()?;
        let dialer = Dialer::Cluster(Box::new(client));
        let conns = Connections::new(dialer, config, Arc::clone(&counters))?;
        Self::start(conns, Subscriber::Nodes(nodes), None, config, counters).await
    }

    /// [`connect`](Self::connect) to the primary the sentinels at `urls` name `master`.
    pub(crate) async fn connect_sentinel(
        urls: &[String],
        master: &str,
        config: &CacheConfig,
        counters: Arc<Counters>,
    ) -> Result<Self, CacheError> {
        let resolver = Arc::new(Resolver::new(
            urls,
            master,
            connection_config(config),
            config.connect_timeout,
        )?);
        let dialer = Dialer::Sentinel(Arc::clone(&resolver));
        let conns = Connections::new(dialer, config, Arc::clone(&counters))?;
        let subscriber = Subscriber::Sentinel(Arc::clone(&resolver));
        Self::start(conns, subscriber, Some(resolver), config, counters).await
    }

    async fn start(
        conns: Connections,
        subscriber: Subscriber,
        sentinels: Option<Arc<Resolver>>,
        config: &CacheConfig,
        counters: Arc<Counters>,
    ) -> Result<Self, CacheError> {
        let conns = Arc::new(conns);
        let instance = crate::random::u64();
        let near = config
            .local_cache
            .map(|capacity| Arc::new(Near::new(&config.prefix, capacity, instance)));
        let listener = near.as_ref().map(|near| {
            tokio::spawn(near::listen(
                Arc::clone(near),
                subscriber,
                config.connect_timeout,
                config.breaker_cooldown,
            ))
        });
        let follower = sentinels.map(|resolver| {
            let conns = Arc::clone(&conns);
            tokio::spawn(sentinel::follow(
                resolver,
                move || conns.switched(),
                config.breaker_cooldown,
            ))
        });
        let store = Self {
            conns,
            prefix: config.prefix.as_str().into(),
            counters,
            index: Index::new(config.clock_skew.as_secs_f64().ceil() as u64),
            lock_timeout: config.lock_timeout,
            command_timeout: config.command_timeout,
            batcher: Batcher::default(),
            near,
            channel: keys::channel(&config.prefix),
            instance,
            listener,
            follower,
        };
        if store.conns.shared().await.is_none() {
            tracing::warn!(
                "redis is unreachable at start-up; cached functions run uncached until it answers"
            );
        }
        Ok(store)
    }
}

/// What every connection to Redis is made with: the connect and command timeouts.
fn connection_config(config: &CacheConfig) -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.command_timeout))
}

impl Store for RedisStore {
    fn get(&self, key: &str, want_ttl: bool) -> impl Future<Output = Fetch> + Send {
        self.lookup(key, want_ttl)
    }

    async fn get_again(&self, key: &str, want_ttl: bool) -> Fetch {
        let again = tokio::time::timeout(self.command_timeout, self.lookup(key, want_ttl));
        match again.await {
            Ok(Fetch::Dropped) | Err(_) => Fetch::Unavailable,
            Ok(fetch) => fetch,
        }
    }

    async fn fence(&self, key: &str) -> Option<Fence> {
        self.read_fence(key).await
    }

    async fn set(&self, key: &str, value: Arc<[u8]>, ttl_secs: u64, fence: Fence) {
        self.write(key, value, ttl_secs, fence).await
    }

    async fn clear(&self, scope: &ScopeKind) -> Result<u64, CacheError> {
        self.remove(scope).await
    }

    async fn raise(&self, scope: &ScopeKind) -> Result<(), CacheError> {
        self.raise_fence(scope).await
    }

    async fn list(
        &self,
        namespace: &str,
        pattern: &str,
        cursor: u64,
        count: usize,
    ) -> Result<Page, CacheError> {
        self.list_index(namespace, pattern, cursor, count).await
    }

    async fn clear_matching(&self, namespace: &str, patterns: &[&str]) -> Result<u64, CacheError> {
        self.remove_matching(namespace, patterns).await
    }

    async fn ping(&self) -> Result<Duration, CacheError> {
        self.ping_once().await
    }

    async fn lock(&self, key: &str) -> Locked {
        self.take_lock(key).await
    }

    async fn unlock(&self, key: &str, token: &str) {
        self.release_lock(key, token).await
    }

    async fn wait_for(&self, key: &str) -> Option<Vec<u8>> {
        self.wait_for_value(key).await
    }

    fn circuit(&self) -> Circuit {
        self.conns.breaker.state()
    }

    /// The epochs of the near-cache's copies, when there is a near-cache.
    fn epochs(&self) -> Option<&Epochs> {
        self.near.as_deref().and_then(Near::epochs)
    }

    fn remote(&self) -> bool {
        true
    }

    fn retire(&self) {
        self.conns.close();
        for task in [&self.listener, &self.follower].into_iter().flatten() {
            task.abort();
        }
        if let Some(near) = &self.near {
            near.retire();
        }
    }
}
