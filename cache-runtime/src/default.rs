//! The process default cache: what [`init`] installs and every function without
//! `#[cache(cache = ...)]` uses, as `tracing` has a default subscriber.
//!
//! A call of the default reads one atomic to learn which cache is current and borrows (or
//! takes) a reference to it that its thread keeps, instead of cloning a shared `Arc`: every
//! core writing one reference count was a measurable share of a hit.

use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use crate::backend::Backend;
use crate::cache::Cache;
use crate::circuit::Circuit;
use crate::config::CacheConfig;
use crate::counters;
use crate::error::CacheError;
use crate::scope::Scope;
use crate::spares::{self, Spares};
use crate::stats::{self, Stats};
use crate::sync::lock;

/// Written only by [`set_default`]; read by every call through [`current`].
static CURRENT: ArcSwapOption<Backend> = ArcSwapOption::const_empty();
/// The id of the backend in `CURRENT` (0: none): one atomic load tells a call whether the
/// references its thread keeps are still current.
static CURRENT_ID: AtomicU64 = AtomicU64::new(0);
/// Whether the backend in `CURRENT` has hot sets: a call to a backend without them goes
/// straight to making its key, without looking at the backend first.
static CURRENT_HOT: AtomicBool = AtomicBool::new(false);
/// The handle the default is held by: replaced, it is dropped, and with the last handle the
/// cache shuts down.
static DEFAULT: Mutex<Option<Cache>> = Mutex::new(None);

thread_local! {
    /// References to the default backend this thread's calls gave back (see [`Spares`]).
    static SPARES: Spares<Arc<Backend>> = const { Spares::new(64) };
}

/// Sets up the process default cache from `config`; cached functions called before this just
/// run. The same as `set_default(Cache::new(config).await?)`.
///
/// Calling it again replaces the default. Calls already under way finish on the old one (a
/// miss among them is not stored); unless a [`Cache`] handle to it is kept elsewhere, the old
/// one's connections are closed, its near-cache stops listening and its entries are dropped
/// at once, and the rest of it goes when the last of those calls ends.
/// Errors come only from the configuration (a malformed URL, a zero timeout): a Redis that is
/// unreachable now is retried later, and the functions run uncached meanwhile.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use cache_runtime::{init, CacheConfig};
/// init(CacheConfig::memory().max_capacity(1_000)).await.unwrap();
/// let err = init(CacheConfig::memory().max_capacity(0)).await.unwrap_err();
/// assert!(err.to_string().contains("max_capacity"));
/// # }
/// ```
pub async fn init(config: CacheConfig) -> Result<(), CacheError> {
    set_default(Cache::new(config).await?);
    Ok(())
}

/// Makes `cache` the process default: what [`clear_cache`], [`stats`](crate::stats) and every
/// `#[cache]` function without `cache = ...` use. The previous default is let go as
/// [`init`] describes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_runtime::CacheError> {
/// use cache_runtime::{Cache, CacheConfig};
/// let cache = Cache::new(CacheConfig::memory()).await?;
/// cache_runtime::set_default(cache.clone());
/// assert_eq!(cache_runtime::default_cache().map(|c| c.prefix().to_owned()), Some("cache".into()));
/// # Ok(())
/// # }
/// ```
pub fn set_default(cache: Cache) {
    let backend = Arc::clone(cache.backend());
    let replaced = {
        let mut slot = lock(&DEFAULT);
        let id = backend.id;
        CURRENT_HOT.store(backend.hot().is_some(), Ordering::Relaxed);
        CURRENT.store(Some(backend));
        CURRENT_ID.store(id, Ordering::Release);
        slot.replace(cache)
    };
    // Outside the lock: the last handle shuts its cache down.
    drop(replaced);
}

/// The process default cache, if [`init`] or [`set_default`] installed one.
pub fn default_cache() -> Option<Cache> {
    lock(&DEFAULT).clone()
}

/// Removes the entries of `scope` from the process default cache and returns how many there
/// were; see [`Cache::clear`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_runtime::CacheError> {
/// use cache_runtime::{clear_cache, CacheConfig, Scope};
/// cache_runtime::init(CacheConfig::memory()).await?;
/// let removed = clear_cache(Scope::namespace("catalog")).await?;
/// assert_eq!(removed, 0);
/// assert!(clear_cache(Scope::namespace("a:b")).await.is_err());
/// # Ok(())
/// # }
/// ```
pub async fn clear_cache(scope: Scope) -> Result<u64, CacheError> {
    scope.validate()?;
    let backend = current_arc().ok_or(CacheError::NotInitialized)?;
    backend.clear(scope.kind()).await
}

/// The counters of every cache this process has had, summed, and the circuit of the
/// process default cache. See [`Cache::stats`](crate::Cache::stats) for one cache's.
///
/// ```
/// let s = cache_runtime::stats();
/// assert!(s.hits <= s.hits + s.misses);
/// ```
pub fn stats() -> Stats {
    let circuit = current_arc().map_or(Circuit::Closed, |b| b.circuit());
    stats::snapshot(counters::process_totals(), circuit, Vec::new())
}

/// A reference to a backend, lent to one call; a reference to the default is given back to
/// the thread it ends on.
pub(crate) struct Lent(ManuallyDrop<Arc<Backend>>);

impl Lent {
    /// A reference of its own to `backend` (a cache named by `cache = ...`).
    pub(crate) fn of(backend: &Arc<Backend>) -> Self {
        Lent(ManuallyDrop::new(Arc::clone(backend)))
    }

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
        // Kept for the thread's next call if it is the current default; otherwise this
        // reference goes, and with the last one the backend.
        spares::give(
            &SPARES,
            backend.id,
            CURRENT_ID.load(Ordering::Acquire),
            backend,
        );
    }
}

/// The current default backend, or `None` before `init`.
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

/// Runs `f` on the current default backend (`None` before `init`), borrowing the reference
/// this thread keeps instead of taking it: all a hot-set hit needs, at the cost of a borrow.
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

/// Whether the current default has hot sets. A hint: while it is being replaced it may
/// describe the other one, which only sends a call the slower way.
#[inline]
pub(crate) fn current_has_hot_sets() -> bool {
    CURRENT_HOT.load(Ordering::Relaxed)
}

/// The current default backend for work off the hot path (clearing, stats).
pub(crate) fn current_arc() -> Option<Arc<Backend>> {
    CURRENT.load_full()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn memory() -> Cache {
        Cache::new(CacheConfig::memory().max_capacity(100).hot_set(0))
            .await
            .unwrap()
    }

    /// A replaced default lives until the calls that hold it end and every thread lets go of
    /// the references it kept: it is freed, not leaked.
    #[tokio::test]
    async fn a_replaced_default_is_freed_once_its_calls_end() {
        set_default(memory().await);
        let first = current().expect("installed");
        let kept = current().expect("installed");
        drop(kept); // back to this thread's spares
        let weak = Arc::downgrade(&first.to_arc());
        set_default(memory().await);
        assert!(weak.upgrade().is_some(), "a call still holds it");
        drop(first);
        let second = current().expect("installed");
        assert_ne!(second.id, weak.upgrade().map_or(0, |b| b.id));
        drop(second);
        assert!(weak.upgrade().is_none(), "the replaced backend was freed");
    }
}
