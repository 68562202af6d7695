//! Before `init`, cached functions just run and admin actions say why they cannot.

use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{cache, clear_cache, CacheError, Scope};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(namespace = "early")]
async fn early(n: u32) -> u32 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    n + 1
}

#[tokio::test]
async fn before_init_functions_run_and_clears_report_it() {
    for _ in 0..3 {
        assert_eq!(early(1).await, 2);
    }
    assert_eq!(RUNS.load(Ordering::SeqCst), 3);
    let err = clear_cache(Scope::all()).await.unwrap_err();
    assert!(matches!(err, CacheError::NotInitialized), "{err}");
}
