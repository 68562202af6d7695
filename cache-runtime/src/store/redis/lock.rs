//! The cross-process lock of `lock = true`: `SET NX PX` of the entry's lock with a random
//! token, released by a script only while it still holds that token, and waited for by
//! polling the entry.

use std::time::Duration;

use redis::RedisError;

use super::RedisStore;
use crate::keys;
use crate::store::Locked;

/// How often a caller waiting for another process's computation looks for its value.
const POLL: Duration = Duration::from_millis(20);

/// Deletes the lock only if it still holds this caller's token.
const UNLOCK: &str = r#"if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end"#;

impl RedisStore {
    /// Tries to take the lock of `key` for the lock timeout.
    pub(super) async fn take_lock(&self, key: &str) -> Locked {
        let Some(permit) = self.conns.breaker.permit() else {
            return Locked::Skipped;
        };
        let Some(mut conn) = self.conns.shared().await else {
            permit.failure();
            return Locked::Skipped;
        };
        let token = format!("{:016x}", crate::random::u64());
        let reply: Result<Option<String>, RedisError> = redis::cmd("SET")
            .arg(keys::lock_of(&self.prefix, key))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(self.lock_timeout.as_millis() as u64)
            .query_async(&mut conn.conn)
            .await;
        conn.release();
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
                self.conns.failed("SET NX", &e);
                Locked::Skipped
            }
        }
    }

    /// Releases a lock taken by [`take_lock`](Self::take_lock), if it is still ours.
    pub(super) async fn release_lock(&self, key: &str, token: &str) {
        let Some(mut conn) = self.conns.shared().await else {
            return;
        };
        let reply: Result<u64, RedisError> = redis::Script::new(UNLOCK)
            .key(keys::lock_of(&self.prefix, key))
            .arg(token)
            .invoke_async(&mut conn.conn)
            .await;
        conn.release();
        if let Err(e) = reply {
            self.conns.failed("unlock", &e);
        }
    }

    /// Polls for the value another process is computing under the lock of `key`, for at most
    /// the lock timeout; `None` when it did not come (then the caller computes it).
    pub(super) async fn wait_for_value(&self, key: &str) -> Option<Vec<u8>> {
        let lock = keys::lock_of(&self.prefix, key);
        let deadline = tokio::time::Instant::now() + self.lock_timeout;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
            let mut conn = self.conns.shared().await?;
            let reply: Result<(Option<Vec<u8>>, bool), RedisError> = redis::pipe()
                .cmd("GET")
                .arg(key)
                .cmd("EXISTS")
                .arg(&lock)
                .query_async(&mut conn.conn)
                .await;
            conn.release();
            match reply {
                Ok((Some(bytes), _)) => return Some(bytes),
                // The owner gave up without a value (an error, a panic): compute it here.
                Ok((None, false)) => return None,
                Ok((None, true)) => {}
                Err(e) => {
                    self.conns.failed("GET", &e);
                    return None;
                }
            }
        }
        None
    }
}
