//! The behavioural suite on the in-memory backend.

mod suite;
mod support;

use cache_runtime::CacheConfig;

/// Holds this test's turn at the process-wide cache.
async fn memory() -> tokio::sync::MutexGuard<'static, ()> {
    let turn = support::exclusive().await;
    cache_runtime::init(CacheConfig::memory()).await.unwrap();
    turn
}

suite_cases!(memory);

#[tokio::test]
async fn capacity_bounds_the_number_of_entries() {
    let _turn = support::exclusive().await;
    cache_runtime::init(CacheConfig::memory().max_capacity(10))
        .await
        .unwrap();
    for i in 0..200 {
        suite::slow_square(i).await;
    }
    // moka evicts asynchronously; what is left is bounded by the capacity.
    let removed = cache_runtime::clear_cache(cache_runtime::Scope::all())
        .await
        .unwrap();
    assert!(
        removed <= 10,
        "{removed} entries kept with a capacity of 10"
    );
}
