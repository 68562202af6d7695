//! The process-wide switch that turns caching off and on at run time.

use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(true);

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
    ENABLED.store(enabled, Ordering::Relaxed);
    tracing::info!(
        enabled,
        "caching switched {}",
        if enabled { "on" } else { "off" }
    );
}

/// Whether caching is on; see [`set_enabled`].
#[inline]
pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}
