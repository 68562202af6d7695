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
//! [`init`] installs the process default cache; a [`Cache`] value can also be held by the
//! application and named with `#[cache(cache = EXPR)]`. Keys are
//! `{prefix}:{namespace}:{key}`; see the README for the layout and failure rules.
//!
//! Cargo features: `redis` (on by default) for the Redis store; `tls` for `rediss://` URLs.
//! With `default-features = false` only the in-memory store is built.
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]

mod backend;
mod cache;
mod call;
mod circuit;
mod codec;
mod config;
mod counters;
mod default;
mod enabled;
mod error;
mod fence;
mod flight;
mod hot;
mod invalidate;
mod keys;
mod latency;
mod metrics;
mod probe;
mod random;
mod scope;
mod spares;
mod stats;
mod storable;
mod store;
mod sync;
mod throttle;
mod top;
#[cfg(feature = "axum")]
pub mod web;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use cache::{Cache, KeysPage};
pub use cache_macros::{cache, invalidate};
pub use circuit::Circuit;
pub use config::CacheConfig;
pub use default::{clear_cache, default_cache, init, set_default, stats};
pub use enabled::{is_enabled, set_enabled};
pub use error::{CacheError, ConfigError, Source};
pub use probe::evict;
pub use scope::Scope;
pub use stats::{NamespaceStats, Stats};
pub use storable::Storable;

// The checks of a value type that cannot be stored, also named here so that the compiler's
// note on the bound that failed does not send a reader to `__private`.
#[doc(hidden)]
pub use call::{PickParts, PickWhole};
