//! The Redis backend: deadpool-redis creates, checks and replaces connections; the hot path
//! shares one multiplexed connection, so a hit costs one `GET` round trip and concurrent
//! callers pipeline over the same socket instead of checking out (and PINGing) per call.
//! Lookups that start together go out together as one `MGET` (see [`batch`](super::batch)).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use deadpool_redis::{Manager, Pool, Runtime};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError};

use super::batch::{Batcher, Failure};
use super::memory::Slot;
use super::near::{self, Near};
use super::{scope_prefix, Fetch, Held, Store};
use crate::breaker::{Breaker, Circuit};
use crate::clear::ScopeKind;
use crate::config::CacheConfig;
use crate::spares::{self, Spares};
use crate::stats::{bump, Count};
use crate::throttle::{now_ms, Throttle};
use crate::{key, CacheError};

/// How often a caller waiting for another process's computation looks for its value.
const LOCK_POLL: Duration = Duration::from_millis(20);

/// How many members of a namespace index one `ZRANGE` reads (and one `UNLINK` removes).
const INDEX_BATCH: usize = 4096;

/// One write in this many to a namespace trims its index of expired members.
const TRIM_EVERY: u64 = 8;

/// Writes to namespaces so far, to pick the ones that trim.
static WRITES: AtomicU64 = AtomicU64::new(0);

/// How many keys one `SCAN` step asks for.
const SCAN_BATCH: usize = 1000;

static CONNECT_FAILED: Throttle = Throttle::new();
static COMMAND_FAILED: Throttle = Throttle::new();

pub(crate) struct RedisStore {
    pool: Pool,
    prefix: Box<str>,
    /// The connection cached calls share; `None` until (re)connected.
    shared: ArcSwapOption<Shared>,
    /// The id of `shared` (0: none), so that a call finds its thread's spare clone with one
    /// atomic load instead of loading `shared`.
    shared_id: AtomicU64,
    /// Set when another backend replaced this one: it then connects no more.
    retired: AtomicBool,
    /// Only one caller at a time asks the pool for a new shared connection.
    reconnecting: tokio::sync::Mutex<()>,
    /// When (in `now_ms`) the last attempt to connect failed.
    last_failed_ms: AtomicU64,
    /// While `now_ms()` is below this, Redis is known to be down and calls skip it.
    /// Stops calls to Redis after a run of failures.
    pub(crate) breaker: Breaker,
    /// How long a namespace index keeps a member past its expiry: slack for clocks that
    /// differ between the processes writing it.
    grace_secs: u64,
    /// How long a cross-process lock is held at most, and waited for.
    lock_timeout: Duration,
    /// Lookups that start together go out together, as one `MGET`.
    batcher: Batcher,
    near: Option<Arc<Near>>,
    /// Where invalidations are published: `{prefix}:invalidate`.
    channel: String,
    /// Keeps the near-cache subscribed; aborted with the store.
    listener: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        if let Some(listener) = &self.listener {
            listener.abort();
        }
    }
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
        let near = config
            .local_cache
            .map(|capacity| Arc::new(Near::new(&config.prefix, capacity)));
        let listener = match &near {
            Some(near) => {
                let client = redis::Client::open(url).map_err(|e| {
                    CacheError::InvalidConfig(format!("invalid Redis URL {}: {e}", redact(url)))
                })?;
                Some(tokio::spawn(near::listen(
                    Arc::clone(near),
                    client,
                    config.connect_timeout,
                    config.breaker_cooldown,
                )))
            }
            None => None,
        };
        let store = Self {
            pool,
            prefix: config.prefix.as_str().into(),
            shared: ArcSwapOption::const_empty(),
            shared_id: AtomicU64::new(0),
            retired: AtomicBool::new(false),
            reconnecting: tokio::sync::Mutex::new(()),
            last_failed_ms: AtomicU64::new(0),
            breaker: Breaker::new(config.breaker_threshold, config.breaker_cooldown),
            grace_secs: config.clock_skew.as_secs_f64().ceil() as u64,
            lock_timeout: config.lock_timeout,
            batcher: Batcher::default(),
            near,
            channel: near::channel(&config.prefix),
            listener,
        };
        if store.connection().await.is_none() {
            tracing::warn!(
                "redis is unreachable at start-up; cached functions run uncached until it answers"
            );
        }
        Ok(store)
    }

    /// The shared connection, reconnecting through the pool if there is none; `None` when
    /// Redis cannot be reached.
    async fn connection(&self) -> Option<Lease<'_>> {
        match self.lease() {
            Some(lease) => Some(lease),
            // Boxed: connecting is a large future (deadpool, the TCP and TLS handshakes), and
            // every call that awaits `connection` would otherwise carry its size (~7 KB),
            // hits included, which then move it around and spread over more cache lines.
            None => Box::pin(self.reconnect()).await,
        }
    }

    /// The slow path of [`connection`](Self::connection).
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
                    conn: (*pooled).clone(),
                    id: NEXT_SHARED_ID.fetch_add(1, Ordering::Relaxed),
                };
                let lease = Lease {
                    store: self,
                    id: shared.id,
                    conn: shared.conn.clone(),
                };
                self.replace_shared(Some(shared));
                tracing::debug!("connected to redis");
                Some(lease)
            }
            Err(e) => {
                self.last_failed_ms.store(now_ms(), Ordering::Release);
                bump(Count::Errors);
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
    /// next call gets a checked one from the pool. A timeout does not: the connection is fine
    /// and late replies are matched to their requests, while replacing it would make the next
    /// caller wait for a new connection to a server that is slow to answer anyway.
    fn failed(&self, op: &str, e: &RedisError) {
        bump(Count::Errors);
        if !e.is_timeout()
            && (e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_unrecoverable_error())
        {
            self.replace_shared(None);
        }
        if let Some(suppressed) = COMMAND_FAILED.allow() {
            tracing::warn!(suppressed, "redis {op} failed, running uncached: {e}");
        }
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
                    store: self,
                    id,
                    conn,
                });
            }
        }
        let shared = self.shared.load();
        let shared = shared.as_deref()?;
        Some(Lease {
            store: self,
            id: shared.id,
            conn: shared.conn.clone(),
        })
    }

    /// The epochs of the near-cache's entries, when there is a near-cache.
    pub(crate) fn near_epochs(&self) -> Option<&super::hot::Epochs> {
        self.near.as_deref().map(Near::entries_epochs)
    }

    /// Lets go of the connections when another backend replaced this one; calls still
    /// running finish, uncached if they need Redis again.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        self.replace_shared(None);
        self.pool.close();
        if let Some(listener) = &self.listener {
            listener.abort();
        }
        if let Some(near) = &self.near {
            near.retire();
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

/// The connection cached calls share, and a number that changes whenever it is replaced.
pub(crate) struct Shared {
    conn: MultiplexedConnection,
    id: u64,
}

static NEXT_SHARED_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Clones of the shared connection this thread's calls gave back (see [`Spares`]): a
    /// `MultiplexedConnection` clone costs several shared reference counts.
    static SPARES: Spares<MultiplexedConnection> = const { Spares::new(32) };
}

/// A clone of the shared connection for one call.
pub(crate) struct Lease<'a> {
    store: &'a RedisStore,
    id: u64,
    conn: MultiplexedConnection,
}

impl Lease<'_> {
    /// Keeps the clone for this thread's next call, unless the connection was replaced
    /// meanwhile. (A lease dropped instead, by a cancelled call, just drops its clone.)
    fn release(self) {
        let current = self.store.shared_id.load(Ordering::Acquire);
        spares::give(&SPARES, self.id, current, self.conn);
    }
}

/// What a Redis lookup hands out: bytes straight from the reply, or a near-cache copy.
pub(crate) enum RedisBytes {
    Owned(Vec<u8>),
    Shared(Arc<Slot>),
}

impl Held for RedisBytes {
    fn bytes(&self) -> &[u8] {
        match self {
            RedisBytes::Owned(bytes) => bytes,
            RedisBytes::Shared(slot) => slot.as_bytes(),
        }
    }

    fn slot(&self) -> Option<&Slot> {
        match self {
            RedisBytes::Owned(_) => None,
            RedisBytes::Shared(slot) => Some(slot),
        }
    }
}

/// The namespace index of an entry: `{prefix}:{namespace}` (one segment shorter than any
/// entry, so it can never be mistaken for one), or `None` for a namespace-less entry.
fn index_of<'k>(prefix: &str, key: &'k str) -> Option<&'k str> {
    let rest = key.strip_prefix(prefix)?.strip_prefix(':')?;
    let namespace_len = rest.find(':')?;
    (namespace_len > 0).then(|| &key[..prefix.len() + 1 + namespace_len])
}

/// Whether a key under the prefix is an entry: not a namespace index (`{prefix}:{ns}`), nor
/// a lock (`{prefix}:{ns}::lock:{key}`: a key segment starting with `:` is the crate's own).
fn is_entry(prefix: &[u8], key: &[u8]) -> bool {
    let Some(rest) = key.get(prefix.len() + 1..) else {
        return false;
    };
    match rest.iter().position(|&b| b == b':') {
        Some(colon) => rest.get(colon + 1) != Some(&b':'),
        None => false,
    }
}

/// The lock that guards the computation of `key` across processes.
fn lock_of(prefix: &str, key: &str) -> String {
    let head = key
        .get(prefix.len() + 1..)
        .and_then(|rest| rest.find(':'))
        .map_or(key.len(), |colon| prefix.len() + 1 + colon + 1);
    format!("{}:lock:{}", &key[..head], &key[head..])
}

/// The outcome of trying the cross-process lock of a key.
pub(crate) enum Locked {
    /// This caller computes the value; release with the token.
    Acquired(String),
    /// Another process computes it.
    Held,
    /// Redis could not be asked: compute without the lock.
    Unavailable,
}

/// Deletes the lock only if it still holds this caller's token.
const UNLOCK: &str = r#"if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end"#;

/// Milliseconds since the Unix epoch, the score of an index member (its expiry).
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl RedisStore {
    /// Tries to take the lock of `key` (`SET NX PX`, with a random token) for the lock timeout.
    pub(crate) async fn lock(&self, key: &str) -> Locked {
        let Some(permit) = self.breaker.permit() else {
            return Locked::Unavailable;
        };
        let Some(mut conn) = self.connection().await else {
            permit.failure();
            return Locked::Unavailable;
        };
        let token = format!("{:016x}", crate::random_u64());
        let reply: Result<Option<String>, RedisError> = redis::cmd("SET")
            .arg(lock_of(&self.prefix, key))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(self.lock_timeout.as_millis() as u64)
            .query_async(&mut conn.conn)
            .await;
        match reply {
            Ok(Some(_)) => {
                permit.success();
                Locked::Acquired(token)
            }
            Ok(None) => {
                permit.success();
                Locked::Held
            }
            Err(e) => {
                permit.failure();
                self.failed("SET NX", &e);
                Locked::Unavailable
            }
        }
    }

    /// Releases a lock taken by [`lock`](Self::lock), if it is still ours.
    pub(crate) async fn unlock(&self, key: &str, token: &str) {
        let Some(mut conn) = self.connection().await else {
            return;
        };
        let reply: Result<u64, RedisError> = redis::Script::new(UNLOCK)
            .key(lock_of(&self.prefix, key))
            .arg(token)
            .invoke_async(&mut conn.conn)
            .await;
        if let Err(e) = reply {
            self.failed("unlock", &e);
        }
    }

    /// Polls for the value another process is computing under the lock of `key`, for at most
    /// the lock timeout; `None` when it did not come (then the caller computes it).
    pub(crate) async fn wait_for(&self, key: &str) -> Option<Vec<u8>> {
        let lock = lock_of(&self.prefix, key);
        let deadline = tokio::time::Instant::now() + self.lock_timeout;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(LOCK_POLL).await;
            let mut conn = self.connection().await?;
            let reply: Result<(Option<Vec<u8>>, bool), RedisError> = redis::pipe()
                .cmd("GET")
                .arg(key)
                .cmd("EXISTS")
                .arg(&lock)
                .query_async(&mut conn.conn)
                .await;
            match reply {
                Ok((Some(bytes), _)) => return Some(bytes),
                // The owner gave up without a value (an error, a panic): compute it here.
                Ok((None, false)) => return None,
                Ok((None, true)) => {}
                Err(e) => {
                    self.failed("GET", &e);
                    return None;
                }
            }
        }
        None
    }

    async fn clear_namespace(
        &self,
        conn: &mut deadpool_redis::Connection,
        namespace: &str,
    ) -> Result<u64, CacheError> {
        let index = format!("{}:{namespace}", self.prefix);
        // The index is renamed away first (it keeps its TTL): entries written from now on go
        // to a new index and survive, as writes after the clear should; the old one is read
        // in ranges and dropped whole, cheaper than removing its members one by one.
        let clearing = format!(
            "{}:{namespace}::clearing:{:016x}",
            self.prefix,
            crate::random_u64()
        );
        let renamed: Result<(), RedisError> = redis::cmd("RENAME")
            .arg(&index)
            .arg(&clearing)
            .query_async(&mut **conn)
            .await;
        match renamed {
            Ok(()) => {}
            // No index: no entries.
            Err(e)
                if e.kind() == ErrorKind::Server(redis::ServerErrorKind::ResponseError)
                    && e.to_string().contains("no such key") =>
            {
                return Ok(0)
            }
            Err(e) => return Err(e.into()),
        }
        let mut removed = 0;
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut start = 0;
        // Each round trip unlinks the batch read by the one before and reads the next.
        loop {
            let mut pipe = redis::pipe();
            if !batch.is_empty() {
                pipe.cmd("UNLINK").arg(&batch);
            }
            pipe.cmd("ZRANGE")
                .arg(&clearing)
                .arg(start)
                .arg(start + INDEX_BATCH - 1);
            let next: Vec<Vec<u8>> = if batch.is_empty() {
                let (next,): (Vec<Vec<u8>>,) = pipe.query_async(&mut **conn).await?;
                next
            } else {
                let (unlinked, next): (u64, Vec<Vec<u8>>) = pipe.query_async(&mut **conn).await?;
                removed += unlinked;
                next
            };
            start += next.len();
            batch = next;
            if batch.is_empty() {
                break;
            }
        }
        let _: u64 = redis::cmd("UNLINK")
            .arg(&clearing)
            .query_async(&mut **conn)
            .await?;
        Ok(removed)
    }

    async fn clear_all(&self, conn: &mut deadpool_redis::Connection) -> Result<u64, CacheError> {
        let pattern = format!("{}:*", key::escape_glob(&self.prefix));
        let prefix = self.prefix.as_bytes();
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH)
                .query_async(&mut **conn)
                .await?;
            let (entries, indexes): (Vec<_>, Vec<_>) =
                keys.into_iter().partition(|k| is_entry(prefix, k));
            if !entries.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&entries)
                    .query_async(&mut **conn)
                    .await?;
                removed += n;
            }
            if !indexes.is_empty() {
                let _: u64 = redis::cmd("UNLINK")
                    .arg(&indexes)
                    .query_async(&mut **conn)
                    .await?;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}

impl Store for RedisStore {
    type Bytes = RedisBytes;

    async fn get(&self, key: &str, want_ttl: bool) -> Fetch<RedisBytes> {
        if let Some(slot) = self.near.as_ref().and_then(|near| near.get(key)) {
            bump(Count::LocalHits);
            tokio::task::coop::consume_budget().await;
            let left = super::memory::left(slot.expires_at(), want_ttl);
            return Fetch::Hit(RedisBytes::Shared(slot), left);
        }
        let Some(permit) = self.breaker.permit() else {
            // Open circuit: no I/O happens, so spend budget to keep busy loops from starving.
            bump(Count::SkippedOpen);
            tokio::task::coop::consume_budget().await;
            return Fetch::Unavailable;
        };
        let Some(mut conn) = self.connection().await else {
            permit.failure();
            tokio::task::coop::consume_budget().await;
            return Fetch::Unavailable;
        };
        let reply: Result<(Option<Vec<u8>>, Option<Duration>), Failure> =
            if self.near.is_none() && !want_ttl {
                self.batcher
                    .get(&mut conn.conn, key)
                    .await
                    .map(|bytes| (bytes, None))
            } else {
                // The remaining TTL comes in the same round trip, so a near-cache copy never
                // outlives the entry.
                let epoch = self.near.as_ref().map(|near| near.epoch());
                let reply: Result<(Option<Vec<u8>>, i64), RedisError> = redis::pipe()
                    .cmd("GET")
                    .arg(key)
                    .cmd("PTTL")
                    .arg(key)
                    .query_async(&mut conn.conn)
                    .await;
                reply.map_err(Arc::new).map(|(bytes, pttl)| {
                    let left = u64::try_from(pttl).ok().map(Duration::from_millis);
                    if let (Some(near), Some(epoch), Some(bytes), Some(left)) =
                        (&self.near, epoch, &bytes, left)
                    {
                        near.insert(key, bytes.as_slice().into(), left, epoch);
                    }
                    (bytes, left)
                })
            };
        conn.release();
        match reply {
            Ok((Some(bytes), left)) => {
                permit.success();
                Fetch::Hit(RedisBytes::Owned(bytes), left)
            }
            Ok((None, _)) => {
                permit.success();
                Fetch::Miss
            }
            // A key of another type is garbage like an undecodable value: a miss, overwritten.
            Err(e) if e.code() == Some("WRONGTYPE") => {
                permit.success();
                bump(Count::DecodeFailures);
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
                permit.failure();
                self.failed("GET", &e);
                // A dead connection fails without waiting; that must not starve others either.
                tokio::task::coop::consume_budget().await;
                Fetch::Unavailable
            }
        }
    }

    async fn set(&self, key: &str, value: Arc<[u8]>, ttl_secs: u64) {
        let Some(permit) = self.breaker.permit() else {
            return;
        };
        let Some(mut conn) = self.connection().await else {
            permit.failure();
            return;
        };
        // One round trip: the value, its namespace index, and the near-cache invalidation.
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(key)
            .arg(&*value)
            .arg("EX")
            .arg(ttl_secs)
            .ignore();
        if let Some(index) = index_of(&self.prefix, key) {
            let now = wall_ms();
            let keep = ttl_secs + self.grace_secs;
            pipe.cmd("ZADD")
                .arg(index)
                .arg(now + ttl_secs * 1000)
                .arg(key)
                .ignore();
            // Members expired for a while are trimmed, so the index cannot grow without bound
            // when entries expire instead of being cleared. One write in TRIM_EVERY does it:
            // the index then holds at most about that many more dead members per namespace.
            if WRITES
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
        if self.near.is_some() {
            pipe.cmd("PUBLISH")
                .arg(&self.channel)
                .arg(near::message(key, true))
                .ignore();
        }
        let reply = pipe.query_async::<()>(&mut conn.conn).await;
        conn.release();
        match reply {
            Ok(()) => {
                permit.success();
                if let Some(near) = &self.near {
                    let epoch = near.epoch();
                    near.insert(key, value, Duration::from_secs(ttl_secs), epoch);
                }
            }
            Err(e) => {
                permit.failure();
                self.failed("SET", &e);
            }
        }
    }

    async fn clear(&self, scope: &ScopeKind) -> Result<u64, CacheError> {
        let mut conn = self.admin_connection().await?;
        let (start, exact) = scope_prefix(&self.prefix, scope);
        let removed = match scope {
            ScopeKind::Key { .. } => {
                redis::cmd("UNLINK")
                    .arg(&start)
                    .query_async(&mut *conn)
                    .await?
            }
            ScopeKind::Namespace(ns) => self.clear_namespace(&mut conn, ns).await?,
            ScopeKind::All => self.clear_all(&mut conn).await?,
        };
        if let Some(near) = &self.near {
            near.forget(&start, exact);
        }
        // Published whether or not this process has a near-cache: others may.
        let published: Result<u64, RedisError> = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(near::message(&start, exact))
            .query_async(&mut *conn)
            .await;
        match published {
            Ok(_) => Ok(removed),
            // Without a near-cache here, a user may lack channel permissions (`&{prefix}:*`)
            // because no process uses one; the removal itself happened.
            Err(e) if self.near.is_none() => {
                if let Some(suppressed) = COMMAND_FAILED.allow() {
                    tracing::warn!(suppressed, channel = %self.channel, "cannot publish the near-cache invalidation: {e}");
                }
                Ok(removed)
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_indexes_are_one_segment_shorter_than_entries() {
        assert_eq!(index_of("cache", "cache:users:f:abc"), Some("cache:users"));
        assert_eq!(index_of("cache", "cache:users:k"), Some("cache:users"));
        assert_eq!(
            index_of("cache", "cache::f:abc"),
            None,
            "no namespace, no index"
        );
        assert_eq!(index_of("a:b", "a:b:ns:k"), Some("a:b:ns"));
        assert!(is_entry(b"cache", b"cache:users:k"));
        assert!(is_entry(b"cache", b"cache::k"));
        assert!(!is_entry(b"cache", b"cache:users"));
        assert_eq!(
            lock_of("cache", "cache:users:f:abc"),
            "cache:users::lock:f:abc"
        );
        assert_eq!(lock_of("cache", "cache::m::f:abc"), "cache:::lock:m::f:abc");
        assert!(!is_entry(b"cache", b"cache:users::lock:f:abc"));
        assert!(!is_entry(b"cache", b"cache:::lock:m::f:abc"));
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(redact("redis://u:secret@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
    }
}
