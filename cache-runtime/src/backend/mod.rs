//! Where entries live: one [`Store`] trait, a Redis and a memory implementation, and the
//! process-wide current backend set by [`init`](crate::init).

pub(crate) mod memory;
mod near;
pub(crate) mod redis;

use std::future::Future;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::clear::ScopeKind;
use crate::CacheError;

/// The result of a lookup on the hot path. Errors are already logged and counted by the
/// store, because the caller's only choice is to run the body.
pub(crate) enum Fetch<B> {
    /// The bytes, and the time the entry has left when the caller asked for it.
    Hit(B, Option<Duration>),
    Miss,
    /// The store could not be asked (unreachable, timed out, answered an error).
    Unavailable,
}

/// What a lookup hands out: the stored bytes, and where the store keeps a decoded copy, if
/// it keeps one (the memory store and the near-cache do; Redis replies are fresh bytes).
pub(crate) trait Held: Send {
    fn bytes(&self) -> &[u8];

    fn slot(&self) -> Option<&memory::Slot> {
        None
    }
}

impl Held for Arc<memory::Slot> {
    fn bytes(&self) -> &[u8] {
        self.as_bytes()
    }

    fn slot(&self) -> Option<&memory::Slot> {
        Some(self)
    }
}

/// One place to keep entries. Keys arrive complete (`{prefix}:{namespace}:{key}`).
pub(crate) trait Store: Send + Sync {
    /// The stored bytes, borrowed or owned, whichever the store hands out cheaply.
    type Bytes: Held;

    /// The entry under `key`; with `want_ttl`, also the time it has left.
    fn get(&self, key: &str, want_ttl: bool) -> impl Future<Output = Fetch<Self::Bytes>> + Send;

    /// Stores `value` for `ttl_secs`; failures are logged and swallowed (fail-open).
    fn set(&self, key: &str, value: Arc<[u8]>, ttl_secs: u64) -> impl Future<Output = ()> + Send;

    /// Removes entries; an explicit action, so errors are returned.
    fn clear(&self, scope: &ScopeKind) -> impl Future<Output = Result<u64, CacheError>> + Send;
}

/// The configured backend with the key prefix every entry lives under.
pub(crate) struct Backend {
    pub(crate) prefix: Box<str>,
    pub(crate) store: AnyStore,
    /// Larger encoded values are not stored.
    pub(crate) max_value_size: usize,
    pub(crate) flights: crate::flight::Flights,
}

pub(crate) enum AnyStore {
    Redis(redis::RedisStore),
    Memory(memory::MemoryStore),
}

impl Backend {
    pub(crate) fn circuit(&self) -> crate::Circuit {
        match &self.store {
            AnyStore::Redis(s) => s.breaker.state(),
            AnyStore::Memory(_) => crate::Circuit::Closed,
        }
    }

    /// Called when `init` installs another backend: calls still running on this one finish
    /// (uncached, if they need Redis again), and what it holds is let go: the Redis pool and
    /// the shared connection are closed, the near-cache listener stops, entries are dropped.
    fn retire(&self) {
        match &self.store {
            AnyStore::Redis(s) => s.retire(),
            AnyStore::Memory(s) => s.retire(),
        }
    }

    pub(crate) async fn clear(&self, scope: &ScopeKind) -> Result<u64, CacheError> {
        match &self.store {
            AnyStore::Redis(s) => s.clear(scope).await,
            AnyStore::Memory(s) => s.clear(scope).await,
        }
    }
}

/// Read on every cached call; written only by `init`. A backend, once installed, is never
/// freed: every call borrows it for `'static`, so the hot path touches no reference count
/// (two atomic writes per call to a cache line every core shares, as an `Arc` would cost).
/// Replacing it retires the old one instead, which releases its connections and entries.
static CURRENT: AtomicPtr<Backend> = AtomicPtr::new(std::ptr::null_mut());

pub(crate) fn current() -> Option<&'static Backend> {
    let backend = CURRENT.load(Ordering::Acquire);
    // SAFETY: non-null pointers in CURRENT come from `Box::leak` in `install` and are never
    // freed, so they stay valid for the rest of the process.
    unsafe { backend.as_ref() }
}

pub(crate) fn install(backend: Backend) {
    let new: &'static mut Backend = Box::leak(Box::new(backend));
    let old = CURRENT.swap(new, Ordering::AcqRel);
    // SAFETY: as in `current`: the old pointer came from `Box::leak` and is still valid.
    if let Some(old) = unsafe { old.as_ref() } {
        old.retire();
    }
}

/// The part of a key every entry of `scope` starts with, and whether it is the whole key.
pub(crate) fn scope_prefix(prefix: &str, scope: &ScopeKind) -> (String, bool) {
    match scope {
        ScopeKind::Key { namespace, key } => (format!("{prefix}:{namespace}:{key}"), true),
        ScopeKind::Namespace(ns) => (format!("{prefix}:{ns}:"), false),
        ScopeKind::All => (format!("{prefix}:"), false),
    }
}
