//! [`evict`](crate::evict): the entry one call of a `#[cache]` function stores, found by
//! starting the call without running its body. A cached function makes its key before
//! anything else; on a probing thread it records the entry instead of looking it up, and its
//! future stays pending, so the body never runs; the probe then drops the future.

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};

use crate::enabled::Probing;
use crate::error::CacheError;
use crate::invalidate::Entry;

thread_local! {
    /// Set while this thread probes a call: `Some(None)` until the call recorded its entry.
    static PROBE: RefCell<Option<Option<Entry>>> = const { RefCell::new(None) };
}

/// Whether this thread is probing a call.
pub(crate) fn active() -> bool {
    PROBE
        .try_with(|probe| probe.borrow().is_some())
        .unwrap_or(false)
}

/// Records the entry of the call being probed (`None`: its arguments do not serialize).
pub(crate) fn record(entry: Option<Entry>) {
    let _ = PROBE.try_with(|probe| {
        if let Some(slot) = probe.borrow_mut().as_mut() {
            *slot = entry;
        }
    });
}

/// The entry `call` (a call of a `#[cache]` function, not awaited) would store; `None` if it
/// is not one, or its arguments do not serialize. The body does not run.
pub fn entry_of<F: Future>(call: F) -> Option<Entry> {
    let _probing = Probing::start();
    let previous = PROBE.with(|probe| probe.borrow_mut().replace(None));
    let mut call = pin!(call);
    // Polled once: a cached function makes its key first, then stays pending.
    let _ = call.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    PROBE
        .with(|probe| std::mem::replace(&mut *probe.borrow_mut(), previous))
        .flatten()
}

/// Removes the entry that `call` — a call of a `#[cache]` function, written as for a read
/// and not awaited — stores, and returns how many entries there were (0 or 1). Its body does
/// not run. The key is made as the call would make it: from the same arguments, in the same
/// cache (the default, or the one `cache = ...` names).
///
/// Pass only calls of `#[cache]` functions: any other future is polled once, so its code up
/// to its first `.await` runs, and the result is [`CacheError::NotCached`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_runtime::CacheError> {
/// use cache_runtime::{cache, evict, CacheConfig};
///
/// #[cache(namespace = "catalog")]
/// async fn product(id: u64) -> String {
///     format!("product {id}")
/// }
///
/// cache_runtime::init(CacheConfig::memory()).await?;
/// product(42).await;
/// assert_eq!(evict(product(42)).await?, 1); // exactly that entry
/// assert_eq!(evict(product(42)).await?, 0);
/// # Ok(())
/// # }
/// ```
pub async fn evict<F: Future>(call: F) -> Result<u64, CacheError> {
    entry_of(call).ok_or(CacheError::NotCached)?.evict().await
}
