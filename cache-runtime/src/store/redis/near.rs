//! The near-cache (L1): a bounded in-process copy of hot Redis entries, kept honest by an
//! invalidation channel.
//!
//! Every overwrite and every clear is published on `{prefix}:invalidate`; each process drops
//! its copies of what another process changed. While the channel is down, messages may be lost,
//! so the near-cache is flushed and switched off until it is subscribed again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use crate::fence::{Fence, Fences, Raise};
use crate::hot::Epochs;
use crate::keys;
use crate::store::memory::{MemoryStore, Slot};
use crate::store::Store;
use crate::throttle::throttled;

pub(super) struct Near {
    entries: MemoryStore,
    /// False while the invalidation channel is not subscribed: nothing is served or stored.
    live: AtomicBool,
    /// Moved by every invalidation (one fence for all copies), so that a value read from
    /// Redis before an invalidation arrived is not kept after it.
    fences: Fences,
    channel: String,
    /// The instance of the store this belongs to: its own messages are ignored.
    instance: u64,
}

/// The message that tells every near-cache but the sender's (`instance`) to forget `start`
/// (the key itself, when `exact`): `{instance as 16 hex}|{k or p}|{start}`.
pub(super) fn message(instance: u64, start: &str, exact: bool) -> String {
    let kind = if exact { 'k' } else { 'p' };
    format!("{instance:016x}|{kind}|{start}")
}

impl Near {
    pub(super) fn new(prefix: &str, capacity: u64, instance: u64) -> Self {
        Self {
            entries: MemoryStore::new(prefix, capacity),
            live: AtomicBool::new(false),
            fences: Fences::new(),
            channel: keys::channel(prefix),
            instance,
        }
    }

    /// A copy of the entry under `key`.
    pub(super) fn get(&self, key: &str) -> Option<Arc<Slot>> {
        if self.live.load(Ordering::Acquire) {
            self.entries.lookup(key)
        } else {
            None
        }
    }

    /// The epochs of the entries the threads' hot sets copy.
    pub(super) fn epochs(&self) -> Option<&Epochs> {
        self.entries.epochs()
    }

    /// The fence a copy read from Redis from now on is stored under.
    pub(super) fn epoch(&self) -> Fence {
        self.fences.now("")
    }

    /// Stores a copy for at most `ttl`, unless an invalidation arrived since `epoch` was
    /// read (before the value was): the copy and the invalidation exclude each other, so no
    /// caller sees a copy an invalidation already dropped.
    pub(super) fn insert(&self, key: &str, bytes: Arc<[u8]>, ttl: Duration, epoch: Fence) {
        if ttl.is_zero() || !self.live.load(Ordering::Acquire) {
            return;
        }
        self.fences
            .admit(epoch, "", || self.entries.insert(key, bytes, ttl));
    }

    /// Drops this process's copies under `start` (the key itself, when `exact`).
    pub(super) fn forget(&self, start: &str, exact: bool) {
        self.fences.raise(Raise::All);
        self.entries.remove(start, exact);
    }

    fn receive(&self, payload: &str) {
        let mut parts = payload.splitn(3, '|');
        let (Some(instance), Some(kind), Some(start)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        if u64::from_str_radix(instance, 16).ok() == Some(self.instance) {
            return;
        }
        match kind {
            "k" => self.forget(start, true),
            "p" => self.forget(start, false),
            _ => {}
        }
    }

    /// Stops serving for good: the store this belongs to was replaced.
    pub(super) fn retire(&self) {
        self.go_dark();
        self.entries.retire();
    }

    fn go_dark(&self) {
        self.live.store(false, Ordering::Release);
        self.fences.raise(Raise::All);
        self.entries.flush();
    }

    fn go_live(&self) {
        // Whatever was published while we were not listening is lost: start empty.
        self.entries.flush();
        self.fences.raise(Raise::All);
        self.live.store(true, Ordering::Release);
    }
}

/// Where the invalidation channel is subscribed to: one Redis, or the primary the sentinels
/// name at the time (a replica would do as well, but the primary is the one sure to be up).
pub(super) enum Subscriber {
    Direct(Box<redis::Client>),
    Sentinel(Arc<super::sentinel::Resolver>),
    /// The nodes of a cluster, the first that answers: a `PUBLISH` on any node of a cluster
    /// reaches the subscribers of every node.
    Nodes(Vec<redis::Client>),
}

impl Subscriber {
    async fn pubsub(&self) -> redis::RedisResult<redis::aio::PubSub> {
        match self {
            Subscriber::Direct(client) => client.get_async_pubsub().await,
            Subscriber::Sentinel(resolver) => resolver.primary().await?.get_async_pubsub().await,
            Subscriber::Nodes(nodes) => {
                let mut failed = None;
                for node in nodes {
                    match node.get_async_pubsub().await {
                        Ok(pubsub) => return Ok(pubsub),
                        Err(e) => failed = Some(e),
                    }
                }
                Err(failed.unwrap_or_else(|| {
                    redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "no node"))
                }))
            }
        }
    }
}

/// Keeps the near-cache subscribed for as long as it exists; runs as a background task that
/// the Redis store aborts when it is dropped.
pub(super) async fn listen(
    near: Arc<Near>,
    subscriber: Subscriber,
    connect_timeout: Duration,
    retry: Duration,
) {
    loop {
        let subscribed = async {
            let mut pubsub = subscriber.pubsub().await?;
            pubsub.subscribe(&near.channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(connect_timeout, subscribed).await {
            Ok(Ok(pubsub)) => {
                near.go_live();
                tracing::debug!(channel = %near.channel, "near-cache invalidation channel subscribed");
                let mut messages = pubsub.into_on_message();
                while let Some(msg) = messages.next().await {
                    match msg.get_payload::<String>() {
                        Ok(payload) => near.receive(&payload),
                        // A message we cannot read may have been an invalidation.
                        Err(_) => near.forget("", false),
                    }
                }
                near.go_dark();
                throttled!(warn, "near-cache invalidation channel dropped; near-cache flushed and off until it is back");
            }
            Ok(Err(e)) => {
                throttled!(
                    warn,
                    "cannot subscribe to the near-cache invalidation channel, near-cache off: {e}"
                );
            }
            Err(_) => {}
        }
        tokio::time::sleep(retry).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_messages_are_ignored_and_others_evict() {
        let near = Near::new("p", 100, 7);
        near.go_live();
        let e = near.epoch();
        near.insert("p:ns:a", Arc::from(&b"1"[..]), Duration::from_secs(9), e);
        near.insert("p:ns:b", Arc::from(&b"2"[..]), Duration::from_secs(9), e);
        near.receive(&message(7, "p:ns:a", true));
        assert!(near.get("p:ns:a").is_some(), "own message");
        let other = 8;
        near.receive(&format!("{other:016x}|k|p:ns:a"));
        assert!(near.get("p:ns:a").is_none());
        assert!(near.get("p:ns:b").is_some());
        near.receive(&format!("{other:016x}|p|p:ns:"));
        assert!(near.get("p:ns:b").is_none());
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_kept() {
        let near = Near::new("p", 100, 7);
        near.go_live();
        let before = near.epoch();
        near.forget("p:x", true);
        near.insert(
            "p:x",
            Arc::from(&b"old"[..]),
            Duration::from_secs(9),
            before,
        );
        assert!(near.get("p:x").is_none());
    }

    #[test]
    fn nothing_is_served_while_dark() {
        let near = Near::new("p", 100, 7);
        near.go_live();
        near.insert(
            "p:x",
            Arc::from(&b"1"[..]),
            Duration::from_secs(9),
            near.epoch(),
        );
        near.go_dark();
        assert!(near.get("p:x").is_none());
        near.go_live();
        assert!(near.get("p:x").is_none(), "flushed");
    }
}
