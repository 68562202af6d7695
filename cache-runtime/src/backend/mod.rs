//! Where entries live: one [`Store`] trait, a Redis and a memory implementation, and the
//! process-wide current backend set by [`init`](crate::init).

mod batch;
mod coarse;
pub(crate) mod hot;
pub(crate) mod memory;
mod near;
pub(crate) mod redis;

use std::future::Future;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use std::time::Duration;

use crate::clear::ScopeKind;
use crate::spares::{self, Spares};
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
    /// Set by [`install`]; tells a thread's kept references of a replaced backend apart.
    pub(crate) id: u64,
    pub(crate) prefix: Box<str>,
    pub(crate) store: AnyStore,
    /// Larger encoded values are not stored.
    pub(crate) max_value_size: usize,
    /// Sets of each thread's hot set (0: none).
    pub(crate) hot_sets: usize,
    pub(crate) flights: crate::flight::Flights,
}

pub(crate) enum AnyStore {
    Redis(redis::RedisStore),
    Memory(memory::MemoryStore),
}

impl Backend {
    /// The threads' hot sets in front of the in-process store (the memory store, or the
    /// near-cache): how large, and the store's epochs. `None` when every hit needs Redis, or
    /// hot sets are off.
    pub(crate) fn hot(&self) -> Option<hot::HotSet<'_>> {
        if self.hot_sets == 0 {
            return None;
        }
        let epochs = match &self.store {
            AnyStore::Redis(s) => s.near_epochs()?,
            AnyStore::Memory(s) => s.epochs(),
        };
        Some(hot::HotSet {
            epochs,
            sets: self.hot_sets,
        })
    }

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

/// Written only by `init`; read by every call through [`current`].
static CURRENT: ArcSwapOption<Backend> = ArcSwapOption::const_empty();
/// The id of the backend in `CURRENT` (0: none): one atomic load tells a call whether the
/// references its thread keeps are still current.
static CURRENT_ID: AtomicU64 = AtomicU64::new(0);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Whether the backend in `CURRENT` has hot sets: a call to a backend without them goes
/// straight to making its key, without looking at the backend first.
static CURRENT_HOT: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// References to the backend this thread's calls gave back (see [`Spares`]).
    static SPARES: Spares<Arc<Backend>> = const { Spares::new(64) };
}

/// The backend, lent to one call; given back to the thread it ends on.
pub(crate) struct Lent(ManuallyDrop<Arc<Backend>>);

impl Lent {
    /// A reference of its own, for work that outlives the call (a spawned unlock).
    pub(crate) fn to_arc(&self) -> Arc<Backend> {
        Arc::clone(&self.0)
    }
}

impl Deref for Lent {
    type Target = Backend;

    fn deref(&self) -> &Backend {
        &self.0
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        // SAFETY: `self.0` is not used again: this is the end of `self`.
        let backend = unsafe { ManuallyDrop::take(&mut self.0) };
        // A replaced backend's reference goes, and with the last one the backend.
        spares::give(
            &SPARES,
            backend.id,
            CURRENT_ID.load(Ordering::Acquire),
            backend,
        );
    }
}

/// The current backend, or `None` before `init`.
pub(crate) fn current() -> Option<Lent> {
    let id = CURRENT_ID.load(Ordering::Acquire);
    if id == 0 {
        return None;
    }
    let backend = match spares::take(&SPARES, id) {
        Some(backend) => backend,
        None => CURRENT.load_full()?,
    };
    Some(Lent(ManuallyDrop::new(backend)))
}

/// Runs `f` on the current backend (`None` before `init`), borrowing the reference this
/// thread keeps instead of taking it: all a hot-set hit needs, at the cost of a borrow.
#[inline(always)]
pub(crate) fn with_current<R>(f: impl FnOnce(&Backend) -> R) -> Option<R> {
    let id = CURRENT_ID.load(Ordering::Acquire);
    if id == 0 {
        return None;
    }
    let mut f = Some(move |backend: &Arc<Backend>| f(backend));
    if let Ok(Some(done)) = SPARES.try_with(|spares| spares.peek(id, &mut f)) {
        return Some(done);
    }
    // No reference kept yet (the thread's first call), or the list is busy: take one, which
    // also leaves one for the next call.
    let f = f?;
    let lent = current()?;
    Some(f(&lent.0))
}

/// Whether the current backend has hot sets. A hint: while `init` replaces the backend it may
/// describe the other one, which only sends a call the slower way.
#[inline]
pub(crate) fn current_has_hot_sets() -> bool {
    CURRENT_HOT.load(Ordering::Relaxed)
}

/// The current backend for work off the hot path (clearing, stats).
pub(crate) fn current_arc() -> Option<Arc<Backend>> {
    CURRENT.load_full()
}

pub(crate) fn install(mut backend: Backend) {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    backend.id = id;
    CURRENT_HOT.store(backend.hot().is_some(), Ordering::Relaxed);
    let old = CURRENT.swap(Some(Arc::new(backend)));
    CURRENT_ID.store(id, Ordering::Release);
    if let Some(old) = old {
        // Calls under way keep it alive until they end; its connections and entries go now.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn memory_backend() -> Backend {
        Backend {
            id: 0,
            prefix: "p".into(),
            store: AnyStore::Memory(memory::MemoryStore::new("p", 100)),
            max_value_size: 1024,
            hot_sets: 0,
            flights: crate::flight::Flights::default(),
        }
    }

    /// A replaced backend lives until the calls that hold it end and every thread lets go of
    /// the references it kept: it is freed, not leaked.
    #[test]
    fn a_replaced_backend_is_freed_once_its_calls_end() {
        install(memory_backend());
        let first = current().expect("installed");
        let kept = current().expect("installed");
        drop(kept); // back to this thread's spares
        let weak = Arc::downgrade(&first.to_arc());
        install(memory_backend());
        assert!(weak.upgrade().is_some(), "a call still holds it");
        drop(first);
        let second = current().expect("installed");
        assert_ne!(second.id, weak.upgrade().map_or(0, |b| b.id));
        drop(second);
        assert!(weak.upgrade().is_none(), "the replaced backend was freed");
    }
}
