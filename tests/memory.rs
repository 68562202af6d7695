//! The behavioural suite on the in-memory backend.

mod suite;
mod support;

use cache_runtime::CacheConfig;

/// Holds this test's turn at the process-wide cache.
async fn memory() -> tokio::sync::MutexGuard<'static, ()> {
    memory_with(CacheConfig::memory()).await
}

/// [`memory`] with a configuration of the test's own.
async fn memory_with(config: CacheConfig) -> tokio::sync::MutexGuard<'static, ()> {
    let turn = support::exclusive().await;
    cache_runtime::init(config).await.unwrap();
    turn
}

suite_cases!(memory);

#[tokio::test]
async fn capacity_bounds_the_number_of_entries() {
    let _turn = memory_with(CacheConfig::memory().max_capacity(10)).await;
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

/// An entry the store evicted for room may still be copied in a thread's hot set; when
/// another thread stores the key again, that copy goes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_stored_again_after_eviction_replaces_other_threads_copies() {
    let _turn = memory_with(CacheConfig::memory().max_capacity(10)).await;
    let other = suite::OtherThread::start();
    let copied = suite::warm_on(&other, || suite::versioned_by(1)).await;
    let mut here = copied;
    // Bounded: 20 rounds of 500 other keys; moka evicts key 1 within the first few.
    for round in 0..20u64 {
        for i in 0..500 {
            suite::versioned_by(1_000 + round * 500 + i).await;
        }
        here = suite::versioned_by(1).await;
        if here != copied {
            break;
        }
    }
    assert_ne!(here, copied, "key 1 was evicted and computed again");
    assert_eq!(other.run(suite::versioned_by(1)).await, here);
}

/// With hot sets off, every hit is the store's, and the behaviour is the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_sets_can_be_turned_off() {
    let _turn = memory_with(CacheConfig::memory().hot_set(0)).await;
    suite::miss_then_hit().await;
    suite::a_copy_on_another_thread_never_outlives_a_change().await;
    // Three functions of a type that can be cloned still keep one decoded copy each in the
    // store: 3 decodings for a miss and three hits of each.
    assert_eq!(suite::decodes_of_a_miss_and_three_hits(1).await, (3, 3));
}

#[cache_runtime::cache(expire = 60, namespace = "size")]
async fn trivial(id: u64) -> u64 {
    id
}

/// What only a miss or a reconnect needs is boxed, so a cached call's future stays small: a
/// hit neither moves nor spreads kilobytes of state (before, this future was over 7 KB, most
/// of it the pool's connect path). Whatever the backend, the size is fixed at compile time.
#[test]
fn a_cached_call_is_a_small_future() {
    let size = std::mem::size_of_val(&trivial(1));
    assert!(size <= 1024, "the future of a cached call is {size} bytes");
}

/// The memory store keeps the decoded value of a type that can be cloned: of a miss and three
/// hits, only the first hit decodes JSON. A type that cannot be cloned is decoded every hit.
/// A clear drops the decoded copy with the entry.
#[tokio::test]
async fn hits_clone_a_decoded_copy_instead_of_parsing_again() {
    let _turn = memory().await;
    assert_eq!(suite::decodes_of_a_miss_and_three_hits(1).await, (3, 3));
    cache_runtime::clear_cache(cache_runtime::Scope::namespace("reuse"))
        .await
        .unwrap();
    assert_eq!(suite::decodes_of_a_miss_and_three_hits(1).await, (3, 3));
}
