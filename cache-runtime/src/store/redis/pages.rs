//! What the admin API asks of Redis: pages of a namespace's entries, the removal of those that
//! match a pattern, and a timed `PING`. Entries are found through the namespace's index
//! (`ZSCAN .. MATCH`), never by a scan of the keyspace, and a pattern is escaped so that it
//! only ever matches keys under `{prefix}:{namespace}:`.

use std::time::{Duration, Instant};

use redis::RedisError;

use super::{cluster, errors, near, RedisStore};
use crate::error::CacheError;
use crate::keys::{self, ScopeKind};
use crate::store::Page;

/// How many index members one `ZSCAN` step of a pattern clear asks for.
const SCAN_STEP: usize = 1000;

impl RedisStore {
    pub(super) async fn list_index(
        &self,
        namespace: &str,
        pattern: &str,
        cursor: u64,
        count: usize,
    ) -> Result<Page, CacheError> {
        let mut conn = self.conns.checked_out().await?;
        let index = keys::index(&self.prefix, namespace);
        let (next, members): (u64, Vec<String>) = redis::cmd("ZSCAN")
            .arg(&index)
            .arg(cursor)
            .arg("MATCH")
            .arg(keys::members_pattern(&self.prefix, namespace, pattern))
            .arg("COUNT")
            .arg(count.max(1))
            .query_async(&mut *conn)
            .await
            .map_err(errors::command)?;
        // ZSCAN answers members and scores in turn.
        let members: Vec<String> = members.into_iter().step_by(2).collect();
        let asks = members.iter().map(|member| {
            let mut pttl = redis::cmd("PTTL");
            pttl.arg(member);
            pttl
        });
        let ttls: Vec<i64> = match members.is_empty() {
            true => Vec::new(),
            false => cluster::each(&mut conn, asks.collect())
                .await
                .map_err(errors::command)?,
        };
        let entries = members
            .into_iter()
            .zip(ttls)
            // -2: in the index, but gone (expired, or removed by a full clear).
            .filter(|(_, ttl)| *ttl != -2)
            .map(|(key, ttl)| (key, u64::try_from(ttl).ok().map(Duration::from_millis)))
            .collect();
        Ok(Page { entries, next })
    }

    pub(super) async fn remove_matching(
        &self,
        namespace: &str,
        patterns: &[&str],
    ) -> Result<u64, CacheError> {
        let mut conn = self.conns.checked_out().await?;
        self.move_fence(&mut conn, &ScopeKind::Namespace(namespace.to_owned()))
            .await?;
        let index = keys::index(&self.prefix, namespace);
        let mut doomed: Vec<String> = Vec::new();
        for pattern in patterns {
            let matching = keys::members_pattern(&self.prefix, namespace, pattern);
            let mut cursor: u64 = 0;
            // ZSCAN visits every member present for the whole scan; it ends when the cursor is 0.
            loop {
                let (next, found): (u64, Vec<String>) = redis::cmd("ZSCAN")
                    .arg(&index)
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&matching)
                    .arg("COUNT")
                    .arg(SCAN_STEP)
                    .query_async(&mut *conn)
                    .await
                    .map_err(errors::command)?;
                doomed.extend(found.into_iter().step_by(2));
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        doomed.sort();
        doomed.dedup();
        let mut removed = 0;
        for batch in doomed.chunks(SCAN_STEP) {
            let mut cmds = vec![redis::cmd("UNLINK"), redis::cmd("ZREM")];
            cmds[0].arg(batch);
            cmds[1].arg(&index).arg(batch);
            for key in batch {
                let mut publish = redis::cmd("PUBLISH");
                publish
                    .arg(&self.channel)
                    .arg(near::message(self.instance, key, true));
                cmds.push(publish);
            }
            let replies: Vec<redis::Value> = cluster::each(&mut conn, cmds)
                .await
                .map_err(errors::command)?;
            let unlinked: u64 = match replies.first() {
                Some(redis::Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
                _ => 0,
            };
            removed += unlinked;
            if let Some(near) = &self.near {
                for key in batch {
                    near.forget(key, true);
                }
            }
        }
        Ok(removed)
    }

    pub(super) async fn ping_once(&self) -> Result<Duration, CacheError> {
        let mut conn = self.conns.checked_out().await?;
        let started = Instant::now();
        let _: String = redis::cmd("PING")
            .query_async(&mut *conn)
            .await
            .map_err(|e: RedisError| errors::command(e))?;
        Ok(started.elapsed())
    }
}
