//! Redis caching for async functions.
//!
//! Put `#[cache]` on an `async fn`; its non-skipped arguments are hashed into a key, a hit
//! returns the stored value and a miss runs the body and stores its result with a TTL.
//! The cache is an optimisation and never a source of errors: if Redis is down, slow or holds
//! garbage, the function simply runs.
//!
//! ```
//! use cache_runtime::{cache, clear_cache, CacheConfig, Scope};
//!
//! #[cache(expire = 300, namespace = "catalog")]
//! async fn get_product(product_id: u64) -> String {
//!     format!("product {product_id}") // a slow query in real life
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cache_runtime::CacheError> {
//! // REDIS_URL set: Redis; unset: the in-memory backend.
//! cache_runtime::init(CacheConfig::from_env()).await?;
//! assert_eq!(get_product(42).await, "product 42"); // miss: the body runs
//! assert_eq!(get_product(42).await, "product 42"); // hit
//! clear_cache(Scope::namespace("catalog")).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Keys are `{prefix}:{namespace}:{key}`; see the README for the layout and failure rules.

mod backend;
mod breaker;
mod clear;
mod codec;
mod config;
mod error;
mod flight;
mod key;
mod spares;
mod stats;
mod throttle;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use breaker::Circuit;
pub use cache_macros::cache;
pub use clear::{clear_cache, Scope};
pub use config::CacheConfig;
pub use error::CacheError;
pub use stats::{stats, Stats};

use std::sync::atomic::{AtomicBool, Ordering};

use backend::{AnyStore, Backend};
use config::Target;

/// Sets up the process-wide cache; cached functions called before this just run.
///
/// Calling it again replaces the backend. Calls already under way finish on the old one (a
/// miss among them is not stored); the old one's connections are closed, its near-cache stops
/// listening and its entries are dropped at once, and the rest of it when the last of those
/// calls ends.
/// Errors come only from the configuration (a malformed URL, a zero timeout): a Redis that is
/// unreachable now is retried later, and the functions run uncached meanwhile.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use cache_runtime::{init, CacheConfig};
/// init(CacheConfig::memory().max_capacity(1_000)).await.unwrap();
/// let err = init(CacheConfig::redis("not a url")).await.unwrap_err();
/// assert!(err.to_string().contains("invalid Redis URL"));
/// # }
/// ```
pub async fn init(config: CacheConfig) -> Result<(), CacheError> {
    config.validate()?;
    let store = match &config.target {
        Target::Redis(url) => {
            AnyStore::Redis(backend::redis::RedisStore::connect(url, &config).await?)
        }
        Target::Memory => AnyStore::Memory(backend::memory::MemoryStore::new(
            &config.prefix,
            config.max_capacity,
        )),
    };
    backend::install(Backend {
        id: 0,
        prefix: config.prefix.as_str().into(),
        store,
        max_value_size: config.max_value_size,
        hot_sets: backend::hot::sets_for(config.hot_set),
        flights: flight::Flights::default(),
    });
    Ok(())
}

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Switches caching off (`false`) or back on (`true`) at run time, without a restart: for
/// incident response. While off, cached functions just run their body; nothing is read or
/// written. Entries stored before stay where they are (clear them with
/// [`clear_cache`] if they are the problem).
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

/// A random number (lock tokens, jitter, instance ids): a per-thread xorshift generator seeded
/// from the standard library's randomly keyed hasher, as none of these needs cryptographic
/// quality.
pub(crate) fn random_u64() -> u64 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    fn seed() -> u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish() | 1
    }
    thread_local! {
        static STATE: Cell<u64> = Cell::new(seed());
    }
    STATE
        .try_with(|state| {
            let mut x = state.get();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            state.set(x);
            x
        })
        .unwrap_or_else(|_| seed())
}

/// Whether caching is on; see [`set_enabled`].
#[inline]
pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}
