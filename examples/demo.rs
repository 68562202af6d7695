//! A slow function, cached: a miss, then hits, then a clear and a miss again.
//!
//! `cargo run --example demo` uses the embedded in-memory backend; with `REDIS_URL` set
//! (e.g. `REDIS_URL=redis://127.0.0.1:6379/`) it uses Redis.

use std::time::{Duration, Instant};

use cache_runtime::{cache, clear_cache, CacheConfig, Scope};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Product {
    id: u64,
    name: String,
    price_cents: u64,
}

/// Stands in for a slow database query.
#[cache(expire = 300, namespace = "catalog")]
async fn get_product(product_id: u64) -> Product {
    tokio::time::sleep(Duration::from_millis(300)).await;
    Product {
        id: product_id,
        name: format!("Product #{product_id}"),
        price_cents: 1999,
    }
}

async fn timed(label: &str, id: u64) {
    let started = Instant::now();
    let product = get_product(id).await;
    println!(
        "{label:<22} {:>9.3} ms  {product:?}",
        started.elapsed().as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() -> Result<(), cache_runtime::CacheError> {
    let backend = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => format!("redis at {url}"),
        _ => "the in-memory backend (set REDIS_URL to use Redis)".to_string(),
    };
    println!("using {backend}");
    cache_runtime::init(CacheConfig::from_env()).await?;

    timed("miss (body runs)", 42).await;
    for i in 1..=3 {
        timed(&format!("hit {i}"), 42).await;
    }
    let removed = clear_cache(Scope::namespace("catalog")).await?;
    println!(
        "cleared namespace `catalog`: {removed} entr{}",
        if removed == 1 { "y" } else { "ies" }
    );
    timed("miss after the clear", 42).await;
    timed("hit", 42).await;

    let s = cache_runtime::stats();
    println!("stats: {} hits, {} misses", s.hits, s.misses);
    Ok(())
}
