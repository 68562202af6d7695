//! The process-wide switch that turns caching off and on at run time, and the count of
//! unusual calls under way (probes for an entry, [`evict`](crate::evict), and writes that
//! invalidate, `#[invalidate]`), in one atomic that a cached call reads once: only while one
//! of those runs does a call look further.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Bit 0: caching is on. Above it, twice the number of probes and invalidating writes under
/// way in the process.
static STATE: AtomicUsize = AtomicUsize::new(ON);
const ON: usize = 1;
const PROBE: usize = 2;

/// Switches caching off (`false`) or back on (`true`) at run time, without a restart: for
/// incident response. While off, cached functions of every cache just run their body;
/// nothing is read or written. Entries stored before stay where they are (clear them with
/// [`clear_cache`](crate::clear_cache) if they are the problem).
///
/// ```
/// cache_runtime::set_enabled(false);
/// assert!(!cache_runtime::is_enabled());
/// cache_runtime::set_enabled(true);
/// ```
pub fn set_enabled(enabled: bool) {
    if enabled {
        STATE.fetch_or(ON, Ordering::Relaxed);
    } else {
        STATE.fetch_and(!ON, Ordering::Relaxed);
    }
    tracing::info!(
        enabled,
        "caching switched {}",
        if enabled { "on" } else { "off" }
    );
}

/// Whether caching is on; see [`set_enabled`].
#[inline]
pub fn is_enabled() -> bool {
    STATE.load(Ordering::Relaxed) & ON == ON
}

/// Whether caching is on and no thread is probing: a call then goes the usual way without
/// looking further. One load, where the hot path used to read the switch alone.
#[inline]
pub(crate) fn usual() -> bool {
    STATE.load(Ordering::Relaxed) == ON
}

/// Counts a probe or an invalidating write under way while it lives.
pub(crate) struct Probing(());

impl Probing {
    pub(crate) fn start() -> Self {
        STATE.fetch_add(PROBE, Ordering::Relaxed);
        Probing(())
    }
}

impl Drop for Probing {
    fn drop(&mut self) {
        STATE.fetch_sub(PROBE, Ordering::Relaxed);
    }
}
