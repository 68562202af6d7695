//! Clearing on Redis: first the fence of the scope moves (a miss that read the old one stores
//! nothing from then on); then a key is one `UNLINK`; a namespace's entries are read from its
//! index, moved to the namespace's clearing set, and unlinked in batches; everything is a
//! `SCAN MATCH` of the prefix. Every clear is then published on the invalidation channel.

use std::collections::HashSet;
use std::sync::LazyLock;

use redis::{RedisError, Script};

use super::{cluster, commands, errors, near, RedisStore};
use crate::error::CacheError;
use crate::keys::{self, ScopeKind};
use crate::throttle::throttled;

/// How many members of a namespace index one `ZRANGE` reads (and one `UNLINK` removes).
const INDEX_BATCH: usize = 4096;

/// How many keys one `SCAN` step asks for.
const SCAN_BATCH: usize = 1000;

pub(super) type Conn = super::connection::Pooled;

/// Moves the members of the index `KEYS[1]` into the clearing set `KEYS[2]` and drops the
/// index; the set keeps the index's expiry (or a later one). Returns the set's size.
static MERGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 1 then
  local ttl = redis.call('PTTL', KEYS[1])
  redis.call('ZUNIONSTORE', KEYS[2], 2, KEYS[2], KEYS[1])
  redis.call('DEL', KEYS[1])
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[2], ttl, 'NX')
    redis.call('PEXPIRE', KEYS[2], ttl, 'GT')
  end
end
return redis.call('ZCARD', KEYS[2])
"#,
    )
});

impl RedisStore {
    /// Moves the fence of `scope`: a miss that read the old one stores nothing from now on.
    pub(super) async fn move_fence(
        &self,
        conn: &mut Conn,
        scope: &ScopeKind,
    ) -> Result<(), CacheError> {
        let fenced = match scope {
            ScopeKind::All => "",
            ScopeKind::Namespace(ns) | ScopeKind::Key { namespace: ns, .. } => ns,
        };
        redis::cmd("SET")
            .arg(keys::fence(&self.prefix, fenced))
            .arg(commands::new_fence())
            .query_async(&mut **conn)
            .await
            .map_err(errors::command)
    }

    pub(super) async fn raise_fence(&self, scope: &ScopeKind) -> Result<(), CacheError> {
        let mut conn = self.conns.checked_out().await?;
        self.move_fence(&mut conn, scope).await
    }

    pub(super) async fn remove(&self, scope: &ScopeKind) -> Result<u64, CacheError> {
        let mut conn = self.conns.checked_out().await?;
        // The fence first: an entry a miss stored under the old one is removed below.
        self.move_fence(&mut conn, scope).await?;
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
        let clearing = match self.conns.is_cluster() {
            true => keys::clearing_in_cluster(&self.prefix, namespace),
            false => keys::clearing(&self.prefix, namespace),
        };
        // The index's members move to the namespace's clearing set, in one step: entries
        // written from now on go to a new index and survive, as writes after the clear
        // should. Clears of one namespace share the set, and each returns only once it is
        // empty, so none returns while another still has entries of it to remove.
        let _: u64 = MERGE
            .key(&index)
            .key(&clearing)
            .invoke_async(&mut **conn)
            .await
            .map_err(errors::command)?;
        let mut removed = 0;
        let mut batch: Vec<Vec<u8>> = Vec::new();
        // Each round trip removes the batch read by the one before and reads the next; the
        // set shrinks by each batch, so the loop ends.
        loop {
            let mut pipe = redis::pipe();
            // On a cluster the entries are in other slots than the set: their `UNLINK` goes
            // on its own (redis-rs splits it by slot); on one Redis, in the same round trip.
            let unlink_apart = !batch.is_empty() && self.conns.is_cluster();
            if unlink_apart {
                let unlinked: u64 = redis::cmd("UNLINK")
                    .arg(&batch)
                    .query_async(&mut **conn)
                    .await
                    .map_err(errors::command)?;
                removed += unlinked;
            } else if !batch.is_empty() {
                pipe.cmd("UNLINK").arg(&batch);
            }
            if !batch.is_empty() {
                pipe.cmd("ZREM").arg(&clearing).arg(&batch).ignore();
            }
            pipe.cmd("ZRANGE")
                .arg(&clearing)
                .arg(0)
                .arg(INDEX_BATCH - 1);
            let next: Vec<Vec<u8>> = if batch.is_empty() || unlink_apart {
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
            batch = next;
            if batch.is_empty() {
                return Ok(removed);
            }
        }
    }

    async fn clear_all(&self, conn: &mut Conn) -> Result<u64, CacheError> {
        let mut removed = 0;
        let mut namespaces: HashSet<String> = HashSet::new();
        // `SCAN` is per node: on a cluster, every primary is scanned.
        let nodes = match self.conns.is_cluster() {
            true => cluster::primaries(conn)
                .await
                .map_err(errors::command)?
                .into_iter()
                .map(Some)
                .collect(),
            false => vec![None],
        };
        for node in &nodes {
            removed += self
                .clear_node(conn, node.as_ref(), &mut namespaces)
                .await?;
        }
        for ns in &namespaces {
            removed += self.clear_namespace(conn, ns).await?;
        }
        Ok(removed)
    }

    /// The entries of one node (`None`: the only one) removed, the namespaces whose indexes it
    /// holds added to `namespaces`.
    async fn clear_node(
        &self,
        conn: &mut Conn,
        node: Option<&cluster::Node>,
        namespaces: &mut HashSet<String>,
    ) -> Result<u64, CacheError> {
        let pattern = keys::all_pattern(&self.prefix);
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH);
            let (next, found): (u64, Vec<String>) = cluster::on(conn, node, &scan)
                .await
                .map_err(errors::command)?;
            let mut entries = Vec::new();
            let mut own = Vec::new();
            for key in &found {
                match keys::kind(&self.prefix, key) {
                    keys::Kind::Entry => entries.push(key),
                    // Cleared as a namespace clear does, so that a namespace clear running
                    // meanwhile (which shares the clearing set) still finds its entries.
                    keys::Kind::Members(ns) => {
                        namespaces.insert(ns.to_owned());
                    }
                    // Kept: removing the fence this clear just moved would let a miss that
                    // read it absent store again.
                    keys::Kind::FenceOfAll => {}
                    // A namespace's fence goes too: a miss read it together with the fence
                    // of everything, which this clear moved.
                    keys::Kind::Own => own.push(key),
                }
            }
            removed += unlink(conn, &entries).await?;
            unlink(conn, &own).await?;
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}

/// `UNLINK` of `keys` (none: no command); how many there were.
async fn unlink(conn: &mut Conn, keys: &[&String]) -> Result<u64, CacheError> {
    if keys.is_empty() {
        return Ok(0);
    }
    redis::cmd("UNLINK")
        .arg(keys)
        .query_async(&mut **conn)
        .await
        .map_err(errors::command)
}
