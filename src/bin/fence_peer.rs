//! A second process for `tests/consistency.rs`: a slow miss that another process's clear
//! must fence.
//!
//! Usage: `fence_peer REDIS_URL`. Reads the entry of `cache:fence:peer` twice. Each body
//! prints `started {n}` and, the first time, waits for a line on stdin before it returns
//! `v{n}`; after each read it prints `returned {value}`, and before the second read it waits
//! for a line. Gives up (exits) after 10 s without input.

use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_runtime::{cache, CacheConfig};

static RUNS: AtomicU64 = AtomicU64::new(0);

/// Waits for a line on stdin, for at most 10 s.
async fn go() {
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    });
    match tokio::time::timeout(Duration::from_secs(10), line).await {
        Ok(Ok(Ok(_))) => {}
        _ => std::process::exit(2),
    }
}

#[cache(expire = 300, namespace = "fence", key = "peer")]
async fn value() -> String {
    let n = RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    let value = format!("v{n}");
    println!("started {n}");
    if n == 1 {
        go().await;
    }
    value
}

#[tokio::main]
async fn main() {
    let url = std::env::args()
        .nth(1)
        .expect("usage: fence_peer REDIS_URL");
    cache_runtime::init(CacheConfig::redis(url))
        .await
        .expect("init");
    println!("returned {}", value().await);
    go().await;
    println!("returned {}", value().await);
}
