//! The crate's one error type.

/// Everything that can go wrong in an operation the caller asked for explicitly:
/// [`init`](crate::init) and [`clear_cache`](crate::clear_cache).
///
/// A cached function never returns this: there every cache failure is a miss (fail-open).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The configuration given to [`init`](crate::init) is not usable.
    #[error("invalid cache configuration: {0}")]
    InvalidConfig(String),
    /// A namespace given to [`clear_cache`](crate::clear_cache) is empty or contains `:`.
    #[error("invalid namespace {0:?}: a namespace is non-empty and may not contain `:`")]
    InvalidNamespace(String),
    /// [`clear_cache`](crate::clear_cache) was called before [`init`](crate::init).
    #[error("the cache is not initialised: call `cache_runtime::init` first")]
    NotInitialized,
    /// Redis answered with an error or the connection failed.
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// No connection could be taken from the pool in time.
    #[error("redis connection pool: {0}")]
    Pool(String),
}
