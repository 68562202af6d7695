//! Connections to one Redis: deadpool-redis creates, checks and replaces them; cached calls
//! share one multiplexed connection taken from the pool, so that a hit costs one round trip
//! and concurrent callers pipeline over one socket instead of checking out (and `PING`ing)
//! per call. The circuit breaker that stops calls after a run of failures lives here too.
//! The pool dials one URL, or the primary the sentinels name ([`Dialer`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use deadpool::managed::{self, Metrics, Object, RecycleError, RecycleResult};
use deadpool_redis::Runtime;
use redis::RedisError;

use super::breaker::Breaker;
use super::errors;
use super::link::Link;
use super::sentinel::Resolver;
use crate::circuit::Circuit;
use crate::config::CacheConfig;
use crate::counters::{Count, Counters};
use crate::error::CacheError;
use crate::error::ConfigError;
use crate::spares::{self, Spares};
use crate::throttle::{now_ms, throttled};

/// How the pool makes its connections: to one URL, to the primary the sentinels name, or
/// to a cluster (one connection then multiplexes over every node).
pub(super) enum Dialer {
    Direct(Box<deadpool_redis::Manager>),
    Sentinel(Arc<Resolver>),
    Cluster(Box<redis::cluster::ClusterClient>),
}

impl managed::Manager for Dialer {
    type Type = Link;
    type Error = RedisError;

    async fn create(&self) -> Result<Link, RedisError> {
        match self {
            Dialer::Direct(manager) => manager.create().await.map(Link::Single),
            Dialer::Sentinel(resolver) => resolver.connect().await.map(Link::Single),
            Dialer::Cluster(client) => client.get_async_connection().await.map(Link::Cluster),
        }
    }

    async fn recycle(&self, link: &mut Link, metrics: &Metrics) -> RecycleResult<RedisError> {
        let conn = match (self, link) {
            (Dialer::Direct(manager), Link::Single(conn)) => {
                return manager.recycle(conn, metrics).await
            }
            (Dialer::Cluster(_), link @ Link::Cluster(_)) => {
                let _: String = redis::cmd("PING").query_async(link).await?;
                return Ok(());
            }
            (Dialer::Sentinel(_), Link::Single(conn)) => conn,
            _ => return Err(RecycleError::message("a connection of another kind")),
        };
        // A connection kept from before a failover may lead to a replica now.
        let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(conn).await?;
        match role.first() {
            Some(redis::Value::BulkString(role)) if role == b"master" => Ok(()),
            _ => Err(RecycleError::message("no longer the primary")),
        }
    }
}

/// A connection of the pool.
pub(super) type Pooled = Object<Dialer>;

/// The pool, the shared connection and the breaker of one Redis.
pub(super) struct Connections {
    pool: managed::Pool<Dialer>,
    /// Whether the pool dials a Redis Cluster: then commands of several keys keep to one
    /// slot.
    cluster: bool,
    /// The connection cached calls share; `None` until (re)connected.
    shared: ArcSwapOption<Shared>,
    /// The id of `shared` (0: none), so that a call finds its thread's spare clone with one
    /// atomic load instead of loading `shared`.
    shared_id: AtomicU64,
    /// Set when the store was retired: it then connects no more.
    retired: AtomicBool,
    /// Only one caller at a time asks the pool for a new shared connection.
    reconnecting: tokio::sync::Mutex<()>,
    /// When (in `now_ms`) the last attempt to connect failed.
    last_failed_ms: AtomicU64,
    /// Stops calls to Redis after a run of failures.
    pub(super) breaker: Breaker,
    counters: Arc<Counters>,
}

/// The connection cached calls share, and a number that changes whenever it is replaced.
struct Shared {
    conn: Link,
    id: u64,
}

static NEXT_SHARED_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Clones of the shared connection this thread's calls gave back (see [`Spares`]): a
    /// `MultiplexedConnection` clone costs several shared reference counts.
    static SPARES: Spares<Link> = const { Spares::new(32) };
}

/// A clone of the shared connection for one call.
pub(super) struct Lease<'a> {
    owner: &'a Connections,
    id: u64,
    pub(super) conn: Link,
}

impl Lease<'_> {
    /// Keeps the clone for this thread's next call, unless the connection was replaced
    /// meanwhile. (A lease dropped instead, by a cancelled call, just drops its clone.)
    pub(super) fn release(self) {
        let current = self.owner.shared_id.load(Ordering::Acquire);
        spares::give(&SPARES, self.id, current, self.conn);
    }
}

impl Connections {
    /// Builds the pool; fails only on a malformed URL or configuration.
    pub(super) fn new(
        dialer: Dialer,
        config: &CacheConfig,
        counters: Arc<Counters>,
    ) -> Result<Self, CacheError> {
        let cluster = matches!(dialer, Dialer::Cluster(_));
        let pool = managed::Pool::builder(dialer)
            .max_size(config.pool_size)
            .wait_timeout(Some(config.pool_wait_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.command_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| ConfigError::new("pool_size", "cannot build the pool").caused_by(e))?;
        Ok(Self {
            pool,
            cluster,
            shared: ArcSwapOption::const_empty(),
            shared_id: AtomicU64::new(0),
            retired: AtomicBool::new(false),
            reconnecting: tokio::sync::Mutex::new(()),
            last_failed_ms: AtomicU64::new(0),
            breaker: Breaker::new(
                config.breaker_threshold,
                config.breaker_cooldown,
                Arc::clone(&counters),
            ),
            counters,
        })
    }

    /// The shared connection, reconnecting through the pool if there is none; `None` when
    /// Redis cannot be reached.
    pub(super) async fn shared(&self) -> Option<Lease<'_>> {
        match self.lease() {
            Some(lease) => Some(lease),
            // Boxed: connecting is a large future (deadpool, the TCP and TLS handshakes), and
            // every call that awaits `shared` would otherwise carry its size (~7 KB), hits
            // included, which then move it around and spread over more cache lines.
            None => Box::pin(self.reconnect()).await,
        }
    }

    /// The slow path of [`shared`](Self::shared).
    async fn reconnect(&self) -> Option<Lease<'_>> {
        if self.retired.load(Ordering::Acquire) {
            return None;
        }
        let queued_at = now_ms();
        let _turn = self.reconnecting.lock().await;
        // Whoever held the lock before us may have reconnected, or opened the circuit.
        if let Some(lease) = self.lease() {
            return Some(lease);
        }
        // An attempt failed while we waited: do not queue one more wait behind it. Each caller
        // waits for at most the attempt under way when it arrived.
        if self.last_failed_ms.load(Ordering::Acquire) >= queued_at {
            return None;
        }
        // Callers queued here before the circuit opened need not try again; the probe does.
        if self.breaker.state() == Circuit::Open {
            return None;
        }
        match self.pool.get().await {
            Ok(pooled) => {
                let shared = Shared {
                    conn: Link::clone(&pooled),
                    id: NEXT_SHARED_ID.fetch_add(1, Ordering::Relaxed),
                };
                let lease = Lease {
                    owner: self,
                    id: shared.id,
                    conn: shared.conn.clone(),
                };
                self.replace_shared(Some(shared));
                tracing::debug!("connected to redis");
                Some(lease)
            }
            Err(e) => {
                self.last_failed_ms.store(now_ms(), Ordering::Release);
                self.counters.bump(Count::Errors);
                if errors::is_auth_error(&e) {
                    throttled!(error, "redis refused the credentials: {e}; check the user and password in the Redis URL; caching is off until it succeeds");
                } else {
                    throttled!(
                        warn,
                        "cannot connect to redis: {e}; cached functions run uncached, retrying"
                    );
                }
                None
            }
        }
    }

    /// Records a failed command of a cached call; a broken connection is dropped, so that
    /// the next call gets a checked one from the pool.
    pub(super) fn failed(&self, op: &str, e: &RedisError) {
        self.counters.bump(Count::Errors);
        if errors::breaks_connection(e) {
            self.replace_shared(None);
        }
        throttled!(warn, "redis {op} failed, running uncached: {e}");
    }

    /// Drops the shared connection after a command found it closed (a server restart, an
    /// idle timeout, `CLIENT KILL`, a failover), before the command is retried on a fresh one.
    pub(super) fn dropped(&self, e: &RedisError) {
        tracing::debug!("redis connection closed ({e}); retrying on a fresh one");
        self.replace_shared(None);
    }

    fn replace_shared(&self, shared: Option<Shared>) {
        // The id first: a call that sees the new id but still the old connection only misses
        // its spare and clones the old one, which then fails or works like any late call.
        self.shared_id
            .store(shared.as_ref().map_or(0, |s| s.id), Ordering::Release);
        self.shared.store(shared.map(Arc::new));
    }

    /// A clone of the shared connection: one this thread kept from an earlier call if there
    /// is one, so that the hot path clones (and drops) none.
    fn lease(&self) -> Option<Lease<'_>> {
        let id = self.shared_id.load(Ordering::Acquire);
        if id != 0 {
            if let Some(conn) = spares::take(&SPARES, id) {
                return Some(Lease {
                    owner: self,
                    id,
                    conn,
                });
            }
        }
        let shared = self.shared.load();
        let shared = shared.as_deref()?;
        Some(Lease {
            owner: self,
            id: shared.id,
            conn: shared.conn.clone(),
        })
    }

    /// Whether these are connections to a Redis Cluster.
    pub(super) fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// A connection of its own, checked out of the pool, for an explicit action (a clear).
    pub(super) async fn checked_out(&self) -> Result<Pooled, CacheError> {
        self.pool.get().await.map_err(errors::pool)
    }

    /// After the sentinels switched the primary: every connection to the old one is dropped
    /// and the circuit its death opened is closed, so that the next call connects to the new
    /// one at once.
    pub(super) fn switched(&self) {
        self.replace_shared(None);
        self.pool.retain(|_, _| false);
        self.last_failed_ms.store(0, Ordering::Release);
        self.breaker.reset();
    }

    /// Closes the pool and drops the shared connection for good.
    pub(super) fn close(&self) {
        self.retired.store(true, Ordering::Release);
        self.replace_shared(None);
        self.pool.close();
    }
}
