//! What a cached call sends: the lookup (a near-cache copy, a `GET` or a share of an `MGET`,
//! or `GET` + `PTTL` when the time left is wanted), the fence read of a miss (one `MGET`),
//! and the write (a script: the fence checked, then `SET` with the namespace index and the
//! near-cache invalidation, in one round trip).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::{RedisError, Script};

use super::batch::Failure;
use super::link::Link;
use super::{errors, near, RedisStore};
use crate::counters::Count;
use crate::fence::Fence;
use crate::keys;
use crate::store::memory;
use crate::store::{Fetch, Held};
use crate::throttle::throttled;

impl RedisStore {
    pub(super) async fn lookup(&self, key: &str, want_ttl: bool) -> Fetch {
        if let Some(slot) = self.near.as_ref().and_then(|near| near.get(key)) {
            self.counters.bump(Count::LocalHits);
            tokio::task::coop::consume_budget().await;
            let left = memory::left(slot.expires_at(), want_ttl);
            return Fetch::Hit(Held::Copy(slot), left);
        }
        let Some(permit) = self.conns.breaker.permit() else {
            // Open circuit: no I/O happens, so spend budget to keep busy loops from starving.
            self.counters.bump(Count::SkippedOpen);
            tokio::task::coop::consume_budget().await;
            return Fetch::Unavailable;
        };
        let Some(mut conn) = self.conns.shared().await else {
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
                    let bytes = bytes.filter(|bytes| !is_pending(bytes));
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
            // A write under way on a cluster (see `write_across`): not an entry yet.
            Ok((Some(bytes), _)) if self.conns.is_cluster() && is_pending(&bytes) => {
                permit.success();
                Fetch::Miss
            }
            Ok((Some(bytes), left)) => {
                permit.success();
                Fetch::Hit(Held::Reply(bytes), left)
            }
            Ok((None, _)) => {
                permit.success();
                Fetch::Miss
            }
            // A key of another type is garbage like an undecodable value: a miss, overwritten.
            Err(e) if e.code() == Some("WRONGTYPE") => {
                permit.success();
                self.counters.bump(Count::DecodeFailures);
                throttled!(
                    warn,
                    key,
                    "cache entry holds another redis type; overwriting it"
                );
                Fetch::Miss
            }
            // Not an outage yet: the caller asks once more, on a fresh connection (the
            // failure came at once: a timeout does not break a connection).
            Err(e) if errors::breaks_connection(&e) => {
                drop(permit);
                self.conns.dropped(&e);
                Fetch::Dropped
            }
            Err(e) => {
                permit.failure();
                self.conns.failed("GET", &e);
                // A dead connection fails without waiting; that must not starve others either.
                tokio::task::coop::consume_budget().await;
                Fetch::Unavailable
            }
        }
    }

    /// The fence of `key`: the fence of everything and of its namespace, in one `MGET`.
    pub(super) async fn read_fence(&self, key: &str) -> Option<Fence> {
        let permit = self.conns.breaker.permit()?;
        let Some(mut conn) = self.conns.shared().await else {
            permit.failure();
            return None;
        };
        let reply = self.fences(&mut conn.conn, key).await;
        conn.release();
        match reply {
            Ok((all, ns)) => {
                permit.success();
                // A fence this crate did not write is not one to store under.
                Some(Fence([fence_value(all)?, fence_value(ns)?]))
            }
            Err(e) => {
                permit.failure();
                self.conns.failed("MGET fence", &e);
                None
            }
        }
    }

    /// Stores `value` unless a clear moved `fence`: in one script on one Redis, in steps on a
    /// cluster ([`write_across`](Self::write_across)).
    pub(super) async fn write(&self, key: &str, value: Arc<[u8]>, ttl_secs: u64, fence: Fence) {
        let Some(permit) = self.conns.breaker.permit() else {
            return;
        };
        let Some(mut conn) = self.conns.shared().await else {
            permit.failure();
            return;
        };
        // Read before the write: an invalidation that arrives meanwhile keeps the copy out.
        let epoch = self.near.as_ref().map(|near| near.epoch());
        let stored = match self.conns.is_cluster() {
            true => {
                self.write_across(&mut conn.conn, key, &value, ttl_secs, fence)
                    .await
            }
            false => {
                self.write_one(&mut conn.conn, key, &value, ttl_secs, fence)
                    .await
            }
        };
        conn.release();
        match stored {
            Ok(stored) => {
                permit.success();
                if let (true, Some(near), Some(epoch)) = (stored, &self.near, epoch) {
                    near.insert(key, value, Duration::from_secs(ttl_secs), epoch);
                }
            }
            Err(e) => {
                permit.failure();
                self.conns.failed("SET", &e);
            }
        }
    }

    /// The write on one Redis, in one round trip: a script checks the fences, then writes
    /// the value, its namespace index and the near-cache invalidation. Returns whether it
    /// stored.
    async fn write_one(
        &self,
        conn: &mut Link,
        key: &str,
        value: &[u8],
        ttl_secs: u64,
        fence: Fence,
    ) -> Result<bool, RedisError> {
        let namespace = keys::namespace_of(&self.prefix, key);
        let mut call = STORE.key(key);
        call.key(keys::fence(&self.prefix, ""))
            .key(keys::fence(&self.prefix, namespace))
            .arg(fence_arg(fence.0[0]))
            .arg(fence_arg(fence.0[1]))
            .arg(value)
            .arg(ttl_secs);
        match &self.near {
            Some(_) => call
                .arg(&self.channel)
                .arg(near::message(self.instance, key, true)),
            None => call.arg("").arg(""),
        };
        if let Some(upkeep) = self.index.on_write(&self.prefix, key, ttl_secs) {
            call.key(upkeep.index)
                .arg(upkeep.score)
                .arg(
                    upkeep
                        .trim_below
                        .map_or_else(String::new, |below| below.to_string()),
                )
                .arg(upkeep.keep_secs);
        }
        let stored: u8 = call.invoke_async(conn).await?;
        Ok(stored == 1)
    }
}

impl RedisStore {
    /// The fences of everything and of `key`'s namespace, as stored (`None`: absent).
    async fn fences(
        &self,
        conn: &mut Link,
        key: &str,
    ) -> Result<(Option<String>, Option<String>), RedisError> {
        let namespace = keys::namespace_of(&self.prefix, key);
        redis::cmd("MGET")
            .arg(keys::fence(&self.prefix, ""))
            .arg(keys::fence(&self.prefix, namespace))
            .query_async(conn)
            .await
    }

    /// Whether the fences of `key` are still those `fence` holds.
    async fn fence_holds(
        &self,
        conn: &mut Link,
        key: &str,
        fence: Fence,
    ) -> Result<bool, RedisError> {
        let (all, ns) = self.fences(conn, key).await?;
        Ok(fence_value(all) == Some(fence.0[0]) && fence_value(ns) == Some(fence.0[1]))
    }

    /// The write of a miss on a cluster, where the entry, the fences and the index are in
    /// different slots (on different nodes), so that no one script holds them. The entry is
    /// written in two steps, and is only ever an entry once no clear can have missed it:
    ///
    /// 1. the fences are checked (a clear since the miss began: nothing is written);
    /// 2. the index gains the key;
    /// 3. the entry is set to a *pending* marker of this write, which every lookup reads as
    ///    a miss;
    /// 4. the fences are read again: moved, the marker is removed and nothing is stored;
    /// 5. a script on the entry's slot replaces the marker with the value, if the marker is
    ///    still there.
    ///
    /// A clear that moves its fence after step 4 reads the index after it, so it finds the
    /// key (step 2) and removes it: before step 5, which then finds no marker and stores
    /// nothing, or after, removing the value. Either way no read that starts after the
    /// clear returns sees the value. Returns whether it was stored.
    async fn write_across(
        &self,
        conn: &mut Link,
        key: &str,
        value: &[u8],
        ttl_secs: u64,
        fence: Fence,
    ) -> Result<bool, RedisError> {
        if !self.fence_holds(conn, key, fence).await? {
            return Ok(false);
        }
        if let Some(upkeep) = self.index.on_write(&self.prefix, key, ttl_secs) {
            // One key: one slot.
            let mut pipe = redis::pipe();
            pipe.cmd("ZADD")
                .arg(upkeep.index)
                .arg(upkeep.score)
                .arg(key)
                .ignore();
            if let Some(below) = upkeep.trim_below {
                pipe.cmd("ZREMRANGEBYSCORE")
                    .arg(upkeep.index)
                    .arg("-inf")
                    .arg(below)
                    .ignore();
            }
            pipe.cmd("EXPIRE")
                .arg(upkeep.index)
                .arg(upkeep.keep_secs)
                .arg("NX")
                .ignore();
            pipe.cmd("EXPIRE")
                .arg(upkeep.index)
                .arg(upkeep.keep_secs)
                .arg("GT")
                .ignore();
            pipe.query_async::<()>(conn).await?;
        }
        let marker = pending_marker();
        redis::cmd("SET")
            .arg(key)
            .arg(&marker)
            .arg("PX")
            .arg(PENDING_MS)
            .query_async::<()>(conn)
            .await?;
        if !self.fence_holds(conn, key, fence).await? {
            let _: u8 = DROP_PENDING
                .key(key)
                .arg(&marker)
                .invoke_async(conn)
                .await?;
            return Ok(false);
        }
        let stored: u8 = COMMIT
            .key(key)
            .arg(&marker)
            .arg(value)
            .arg(ttl_secs)
            .invoke_async(conn)
            .await?;
        if stored == 1 && self.near.is_some() {
            redis::cmd("PUBLISH")
                .arg(&self.channel)
                .arg(near::message(self.instance, key, true))
                .query_async::<()>(conn)
                .await?;
        }
        Ok(stored == 1)
    }
}

/// What a pending write on a cluster starts with (see `write_across`): no JSON text and no
/// record of the response cache layer starts so.
const PENDING: &[u8] = b"\0cache-runtime:pending:";

/// How long a pending marker lives if its writer never finishes.
const PENDING_MS: u64 = 10_000;

fn pending_marker() -> Vec<u8> {
    let mut marker = PENDING.to_vec();
    marker.extend_from_slice(format!("{:016x}", crate::random::u64()).as_bytes());
    marker
}

fn is_pending(bytes: &[u8]) -> bool {
    bytes.starts_with(PENDING)
}

/// `KEYS[1]` = entry; `ARGV` = this write's pending marker, value, TTL. Sets the value if the
/// marker is still there; 1 if it did.
static COMMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"#,
    )
});

/// `KEYS[1]` = entry; `ARGV[1]` = this write's pending marker, removed if still there.
static DROP_PENDING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"#,
    )
});

/// The write of a miss: `KEYS` = entry, fence of everything, fence of its namespace[, its
/// namespace index]; `ARGV` = the two fences the miss read (`""`: none), value, TTL, channel
/// and message (`""`: no near-cache)[, index score, trim bound (`""`: no trim), index TTL].
/// Returns 1 if it stored, 0 if a clear moved a fence.
static STORE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local function fence(k) return redis.call('GET', k) or '' end
if fence(KEYS[2]) ~= ARGV[1] or fence(KEYS[3]) ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
if KEYS[4] then
  redis.call('ZADD', KEYS[4], ARGV[7], KEYS[1])
  if ARGV[8] ~= '' then redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[8]) end
  redis.call('EXPIRE', KEYS[4], ARGV[9], 'NX')
  redis.call('EXPIRE', KEYS[4], ARGV[9], 'GT')
end
if ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[5], ARGV[6]) end
return 1
"#,
    )
});

/// A fence as this crate writes it: 16 hex digits of a non-zero number; absent is 0.
/// `None` for anything else.
fn fence_value(stored: Option<String>) -> Option<u64> {
    match stored {
        None => Some(0),
        Some(text) if text.len() == 16 => u64::from_str_radix(&text, 16).ok().filter(|&v| v != 0),
        Some(_) => None,
    }
}

/// How a fence is compared in the script: `""` for absent.
fn fence_arg(value: u64) -> String {
    if value == 0 {
        String::new()
    } else {
        format!("{value:016x}")
    }
}

/// A new fence value, for a clear to write.
pub(super) fn new_fence() -> String {
    fence_arg(crate::random::u64() | 1)
}
