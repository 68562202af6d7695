//! A second process for the near-cache tests (`tests/near_cache.rs`): it caches one value
//! with a near-cache and reports when its copy changes.
//!
//! Usage: `near_cache_peer REDIS_URL`. Prints `ready` once the value is served from its
//! near-cache twice (the second time from its thread's hot set), then polls every millisecond and prints `changed {unix ms} {value}` when the
//! value differs, and exits. Gives up after 10 s.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cache_runtime::{cache, CacheConfig};

#[cache(expire = 300, namespace = "peer", key = "v")]
async fn peer_value() -> String {
    "computed".to_string()
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

#[tokio::main]
async fn main() {
    let url = std::env::args()
        .nth(1)
        .expect("usage: near_cache_peer REDIS_URL");
    cache_runtime::init(CacheConfig::redis(url).local_cache(100))
        .await
        .expect("init");
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = peer_value().await;
    while cache_runtime::stats().local_hits < 2 {
        assert!(
            Instant::now() < deadline,
            "never served from the near-cache"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(peer_value().await, first);
    }
    println!("ready");
    while Instant::now() < deadline {
        let now = peer_value().await;
        if now != first {
            println!("changed {} {now}", unix_ms());
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!("unchanged");
}
