//! One of several processes for the cross-process lock test (`tests/lock.rs`).
//!
//! Usage: `lock_peer REDIS_URL GO_AT_UNIX_MS locked|unlocked`. Waits until the given instant,
//! calls the cached function once, prints `body` if its body ran here and `result {value}`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_runtime::{cache, CacheConfig};

#[cache(expire = 60, namespace = "locked", key = "report", lock = true)]
async fn locked_report() -> String {
    println!("body");
    tokio::time::sleep(Duration::from_millis(300)).await;
    "report".to_string()
}

#[cache(expire = 60, namespace = "unlocked", key = "report")]
async fn unlocked_report() -> String {
    println!("body");
    tokio::time::sleep(Duration::from_millis(300)).await;
    "report".to_string()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(go_at), Some(which)) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: lock_peer REDIS_URL GO_AT_UNIX_MS locked|unlocked");
        std::process::exit(2);
    };
    let go_at: u64 = go_at.parse().expect("GO_AT_UNIX_MS is a number");
    cache_runtime::init(CacheConfig::redis(url))
        .await
        .expect("init");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    tokio::time::sleep(Duration::from_millis(go_at.saturating_sub(now).min(10_000))).await;
    let value = if which == "locked" {
        locked_report().await
    } else {
        unlocked_report().await
    };
    println!("result {value}");
}
