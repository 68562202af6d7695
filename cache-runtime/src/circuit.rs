//! [`Circuit`]: the state of a store's circuit breaker, as reported in [`Stats`](crate::Stats).

/// What the circuit breaker of a cache's store is doing; see [`Stats::circuit`](crate::Stats::circuit).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_runtime::CacheError> {
/// use cache_runtime::{Cache, CacheConfig, Circuit};
/// let cache = Cache::new(CacheConfig::memory()).await?;
/// assert_eq!(cache.stats().circuit, Circuit::Closed); // an in-process store never opens it
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Circuit {
    /// Calls go to the backend.
    #[default]
    Closed,
    /// The backend failed repeatedly; calls skip it until the cool-down ends.
    Open,
    /// The cool-down ended and one probe call is finding out whether the backend is back.
    HalfOpen,
}
