//! The Redis backend: deadpool-redis creates, checks and replaces connections; the hot path
//! shares one multiplexed connection, so a hit costs one `GET` round trip and concurrent
//! callers pipeline over the same socket instead of checking out (and PINGing) per call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use deadpool_redis::{Manager, Pool, Runtime};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError};

use super::{scope_prefix, Fetch, Store};
use crate::clear::ScopeKind;
use crate::config::CacheConfig;
use crate::stats::{bump, COUNTERS};
use crate::throttle::{now_ms, Throttle};
use crate::{key, CacheError};

/// How many keys one `SCAN` step asks for and one `UNLINK` removes.
const SCAN_BATCH: usize = 1000;

static CONNECT_FAILED: Throttle = Throttle::new();
static COMMAND_FAILED: Throttle = Throttle::new();

pub(crate) struct RedisStore {
    pool: Pool,
    prefix: Box<str>,
    /// The connection cached calls share; `None` until (re)connected.
    shared: ArcSwapOption<MultiplexedConnection>,
    /// Only one caller at a time asks the pool for a new shared connection.
    reconnecting: tokio::sync::Mutex<()>,
    /// While `now_ms()` is below this, Redis is known to be down and calls skip it.
    down_until_ms: AtomicU64,
    retry_ms: u64,
}

impl RedisStore {
    /// Builds the pool; fails only on a malformed URL or configuration, never because Redis
    /// is unreachable (it is then retried as calls come in).
    pub(crate) async fn connect(url: &str, config: &CacheConfig) -> Result<Self, CacheError> {
        let connection = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout));
        let manager = Manager::new_with_config(url, connection).map_err(|e| {
            CacheError::InvalidConfig(format!("invalid Redis URL {}: {e}", redact(url)))
        })?;
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .wait_timeout(Some(config.pool_wait_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.command_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| CacheError::InvalidConfig(format!("redis pool: {e}")))?;
        let store = Self {
            pool,
            prefix: config.prefix.as_str().into(),
            shared: ArcSwapOption::const_empty(),
            reconnecting: tokio::sync::Mutex::new(()),
            down_until_ms: AtomicU64::new(0),
            retry_ms: config.retry_interval.as_millis() as u64,
        };
        if store.reconnect().await.is_none() {
            tracing::warn!(
                "redis is unreachable at start-up; cached functions run uncached until it answers"
            );
        }
        Ok(store)
    }

    fn is_down(&self) -> bool {
        now_ms() < self.down_until_ms.load(Ordering::Relaxed)
    }

    /// The shared connection, reconnecting through the pool if there is none.
    async fn connection(&self) -> Option<MultiplexedConnection> {
        if let Some(conn) = self.shared.load().as_deref() {
            return Some(conn.clone());
        }
        self.reconnect().await
    }

    async fn reconnect(&self) -> Option<MultiplexedConnection> {
        if self.is_down() {
            return None;
        }
        let _turn = self.reconnecting.lock().await;
        // Whoever held the lock before us may have reconnected, or found Redis down.
        if let Some(conn) = self.shared.load().as_deref() {
            return Some(conn.clone());
        }
        if self.is_down() {
            return None;
        }
        match self.pool.get().await {
            Ok(pooled) => {
                let conn: MultiplexedConnection = (*pooled).clone();
                self.shared.store(Some(Arc::new(conn.clone())));
                self.down_until_ms.store(0, Ordering::Relaxed);
                tracing::debug!("connected to redis");
                Some(conn)
            }
            Err(e) => {
                self.down_until_ms
                    .store(now_ms() + self.retry_ms, Ordering::Relaxed);
                if let Some(suppressed) = CONNECT_FAILED.allow() {
                    if is_auth_error(&e) {
                        tracing::error!(suppressed, "redis refused the credentials: {e}; check the user and password in the Redis URL; caching is off until it succeeds");
                    } else {
                        tracing::warn!(
                            suppressed,
                            "cannot connect to redis: {e}; cached functions run uncached, retrying"
                        );
                    }
                }
                None
            }
        }
    }

    /// Records a failed command; connection-level failures drop the shared connection so the
    /// next call gets a checked one from the pool.
    fn failed(&self, op: &str, e: &RedisError) {
        bump(&COUNTERS.errors);
        if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
        {
            self.shared.store(None);
        }
        if let Some(suppressed) = COMMAND_FAILED.allow() {
            tracing::warn!(suppressed, "redis {op} failed, running uncached: {e}");
        }
    }

    async fn admin_connection(&self) -> Result<deadpool_redis::Connection, CacheError> {
        self.pool
            .get()
            .await
            .map_err(|e| CacheError::Pool(e.to_string()))
    }
}

fn is_auth_error(e: &deadpool_redis::PoolError) -> bool {
    match e {
        deadpool_redis::PoolError::Backend(e) => {
            e.kind() == ErrorKind::AuthenticationFailed
                || e.to_string().contains("WRONGPASS")
                || e.to_string().contains("NOAUTH")
        }
        _ => false,
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

impl Store for RedisStore {
    type Bytes = Vec<u8>;

    async fn get(&self, key: &str) -> Fetch<Vec<u8>> {
        let Some(mut conn) = self.connection().await else {
            // Known down: no I/O happens, so spend budget to keep busy loops from starving.
            tokio::task::coop::consume_budget().await;
            return Fetch::Unavailable;
        };
        let reply: Result<Option<Vec<u8>>, RedisError> =
            redis::cmd("GET").arg(key).query_async(&mut conn).await;
        match reply {
            Ok(Some(bytes)) => Fetch::Hit(bytes),
            Ok(None) => Fetch::Miss,
            // A key of another type is garbage like an undecodable value: a miss, overwritten.
            Err(e) if e.code() == Some("WRONGTYPE") => {
                bump(&COUNTERS.decode_failures);
                if let Some(suppressed) = COMMAND_FAILED.allow() {
                    tracing::warn!(
                        suppressed,
                        key,
                        "cache entry holds another redis type; overwriting it"
                    );
                }
                Fetch::Miss
            }
            Err(e) => {
                self.failed("GET", &e);
                // A dead connection fails without waiting; that must not starve others either.
                tokio::task::coop::consume_budget().await;
                Fetch::Unavailable
            }
        }
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl_secs: u64) {
        let Some(mut conn) = self.connection().await else {
            return;
        };
        let reply: Result<(), RedisError> = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("EX")
            .arg(ttl_secs)
            .query_async(&mut conn)
            .await;
        if let Err(e) = reply {
            self.failed("SET", &e);
        }
    }

    async fn clear(&self, scope: &ScopeKind) -> Result<u64, CacheError> {
        let (start, exact) = scope_prefix(&self.prefix, scope);
        let mut conn = self.admin_connection().await?;
        if exact {
            let n: u64 = redis::cmd("UNLINK")
                .arg(&start)
                .query_async(&mut *conn)
                .await?;
            return Ok(n);
        }
        let pattern = format!("{}*", key::escape_glob(&start));
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH)
                .query_async(&mut *conn)
                .await?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut *conn)
                    .await?;
                removed += n;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(redact("redis://u:secret@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
    }
}
