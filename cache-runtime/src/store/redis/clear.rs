//! Clearing on Redis: a key is one `UNLINK`; a namespace is read from its index, which is
//! renamed away first, and its entries unlinked in batches; everything is a `SCAN MATCH` of
//! the prefix. Every clear is then published on the invalidation channel.

use redis::RedisError;

use super::{errors, near, RedisStore};
use crate::error::CacheError;
use crate::keys::{self, ScopeKind};
use crate::throttle::throttled;

/// How many members of a namespace index one `ZRANGE` reads (and one `UNLINK` removes).
const INDEX_BATCH: usize = 4096;

/// How many keys one `SCAN` step asks for.
const SCAN_BATCH: usize = 1000;

type Conn = deadpool_redis::Connection;

impl RedisStore {
    pub(super) async fn remove(&self, scope: &ScopeKind) -> Result<u64, CacheError> {
        let mut conn = self.conns.checked_out().await?;
        let (start, exact) = keys::scope_start(&self.prefix, scope);
        let removed = match scope {
            ScopeKind::Key { .. } => redis::cmd("UNLINK")
                .arg(&start)
                .query_async(&mut *conn)
                .await
                .map_err(errors::command)?,
            ScopeKind::Namespace(ns) => self.clear_namespace(&mut conn, ns).await?,
            ScopeKind::All => self.clear_all(&mut conn).await?,
        };
        if let Some(near) = &self.near {
            near.forget(&start, exact);
        }
        // Published whether or not this process has a near-cache: others may.
        let published: Result<u64, RedisError> = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(near::message(self.instance, &start, exact))
            .query_async(&mut *conn)
            .await;
        match published {
            Ok(_) => Ok(removed),
            // Without a near-cache here, a user may lack channel permissions (`&{prefix}:*`)
            // because no process uses one; the removal itself happened.
            Err(e) if self.near.is_none() => {
                throttled!(warn, channel = %self.channel, "cannot publish the near-cache invalidation: {e}");
                Ok(removed)
            }
            Err(e) => Err(errors::command(e)),
        }
    }

    async fn clear_namespace(&self, conn: &mut Conn, namespace: &str) -> Result<u64, CacheError> {
        let index = keys::index(&self.prefix, namespace);
        // The index is renamed away first (it keeps its TTL): entries written from now on go
        // to a new index and survive, as writes after the clear should; the old one is read
        // in ranges and dropped whole, cheaper than removing its members one by one.
        let clearing = keys::clearing(&self.prefix, namespace, crate::random::u64());
        let renamed: Result<(), RedisError> = redis::cmd("RENAME")
            .arg(&index)
            .arg(&clearing)
            .query_async(&mut **conn)
            .await;
        match renamed {
            Ok(()) => {}
            // No index: no entries.
            Err(e) if errors::is_no_such_key(&e) => return Ok(0),
            Err(e) => return Err(errors::command(e)),
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
                let (next,): (Vec<Vec<u8>>,) = pipe
                    .query_async(&mut **conn)
                    .await
                    .map_err(errors::command)?;
                next
            } else {
                let (unlinked, next): (u64, Vec<Vec<u8>>) = pipe
                    .query_async(&mut **conn)
                    .await
                    .map_err(errors::command)?;
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
            .await
            .map_err(errors::command)?;
        Ok(removed)
    }

    async fn clear_all(&self, conn: &mut Conn) -> Result<u64, CacheError> {
        let pattern = keys::all_pattern(&self.prefix);
        let prefix = self.prefix.as_bytes();
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let (next, found): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH)
                .query_async(&mut **conn)
                .await
                .map_err(errors::command)?;
            let (entries, others): (Vec<_>, Vec<_>) =
                found.into_iter().partition(|k| keys::is_entry(prefix, k));
            if !entries.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&entries)
                    .query_async(&mut **conn)
                    .await
                    .map_err(errors::command)?;
                removed += n;
            }
            if !others.is_empty() {
                let _: u64 = redis::cmd("UNLINK")
                    .arg(&others)
                    .query_async(&mut **conn)
                    .await
                    .map_err(errors::command)?;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}
