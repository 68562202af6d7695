//! The counters and latency histograms reach a `metrics` recorder, labelled by cache and
//! namespace, with the counts of the calls made; the response cache layer's, by namespace,
//! route (its `MatchedPath`, never the raw path) and `X-Cache`. One test: the recorder is
//! process-wide.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use cache_runtime::web::ResponseCacheLayer;
use cache_runtime::{cache, Cache, CacheConfig};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::ServiceExt;

#[cache(namespace = "orders", cache = cache, skip = [cache])]
async fn order(cache: &Cache, id: u64) -> u64 {
    tokio::time::sleep(Duration::from_micros(100)).await;
    id * 2
}

#[tokio::test]
async fn counts_and_latencies_reach_the_recorder() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).unwrap();
    let cache = Cache::new(CacheConfig::memory().prefix("shop").hot_set(0))
        .await
        .unwrap();
    for round in 0..640u64 {
        order(&cache, round % 10).await;
    }
    cache.publish_metrics();
    let app = Router::new()
        .route("/items/{id}", get(|| async { "an item" }))
        .layer(ResponseCacheLayer::new("pages").cache(cache.clone()));
    for uri in ["/items/1", "/items/1", "/items/1", "/items/2"] {
        let request = Request::get(uri).body(Body::empty()).unwrap();
        app.clone().oneshot(request).await.unwrap();
    }
    let mut counters = std::collections::HashMap::new();
    let mut histograms = std::collections::HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        match value {
            DebugValue::Counter(n) => {
                counters.insert(name, n);
            }
            DebugValue::Histogram(samples) => {
                histograms.insert(name, samples.len());
            }
            DebugValue::Gauge(_) => {}
        }
    }
    assert_eq!(
        counters.get("cache_hits_total{cache=shop,namespace=orders}"),
        Some(&630)
    );
    assert_eq!(
        counters.get("cache_misses_total{cache=shop,namespace=orders}"),
        Some(&10)
    );
    assert_eq!(counters.get("cache_coalesced_total{cache=shop}"), Some(&0));
    let sampled = histograms
        .get("cache_hit_seconds{cache=shop,namespace=orders}")
        .copied()
        .unwrap_or(0);
    // One call in 64 is sampled: about 10 of 630 hits.
    assert!(
        (1..=40).contains(&sampled),
        "{sampled} hit samples: {histograms:?}"
    );
    let http = |x_cache| format!("namespace=pages,route=/items/{{id}},x_cache={x_cache}");
    assert_eq!(
        counters.get(&format!("cache_http_responses_total{{{}}}", http("HIT"))),
        Some(&2),
        "{counters:?}"
    );
    assert_eq!(
        counters.get(&format!("cache_http_responses_total{{{}}}", http("MISS"))),
        Some(&2)
    );
    assert_eq!(
        histograms.get(&format!("cache_http_seconds{{{}}}", http("HIT"))),
        Some(&2)
    );
    assert!(
        !counters.keys().any(|name| name.contains("/items/1")),
        "raw paths are never labels"
    );
}
