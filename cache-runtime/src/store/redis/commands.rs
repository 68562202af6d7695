//! What a cached call sends: the lookup (a near-cache copy, a `GET` or a share of an `MGET`,
//! or `GET` + `PTTL` when the time left is wanted) and the write (`SET` with the namespace
//! index and the near-cache invalidation, in one round trip).

use std::sync::Arc;
use std::time::Duration;

use redis::RedisError;

use super::batch::Failure;
use super::{near, RedisStore};
use crate::counters::Count;
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
            Err(e) => {
                permit.failure();
                self.conns.failed("GET", &e);
                // A dead connection fails without waiting; that must not starve others either.
                tokio::task::coop::consume_budget().await;
                Fetch::Unavailable
            }
        }
    }

    pub(super) async fn write(&self, key: &str, value: Arc<[u8]>, ttl_secs: u64) {
        let Some(permit) = self.conns.breaker.permit() else {
            return;
        };
        let Some(mut conn) = self.conns.shared().await else {
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
        self.index.on_write(&mut pipe, &self.prefix, key, ttl_secs);
        if self.near.is_some() {
            pipe.cmd("PUBLISH")
                .arg(&self.channel)
                .arg(near::message(self.instance, key, true))
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
                self.conns.failed("SET", &e);
            }
        }
    }
}
