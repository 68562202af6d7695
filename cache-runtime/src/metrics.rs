//! The cache's counters and latencies, published through the `metrics` facade, so that an
//! exporter the application installs (`metrics-exporter-prometheus`, say) serves them.
//!
//! Nothing of `#[cache]` calls is emitted on the call path (the response cache layer's
//! `cache_http_*` are, see `web::ResponseCacheLayer`): a task per cache publishes the
//! counters (absolute values) and the latency samples gathered since the last publish, every
//! `CacheConfig::metrics_interval` (1 s), and
//! [`Cache::publish_metrics`](crate::Cache::publish_metrics) does it at once. Without a recorder the facade drops everything. Labels are bounded: the
//! cache's prefix (`cache`) and the namespace (`namespace`, at most 64 values).
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `cache_hits_total`, `cache_misses_total`, `cache_errors_total` | counter | cache, namespace |
//! | `cache_hit_seconds`, `cache_miss_seconds` | histogram (sampled calls) | cache, namespace |
//! | `cache_local_hits_total`, `cache_bypassed_total`, `cache_backend_errors_total`, `cache_decode_failures_total`, `cache_coalesced_total`, `cache_stale_served_total`, `cache_refreshes_total`, `cache_circuit_trips_total`, `cache_invalidation_failures_total` | counter | cache |
//! | `cache_circuit_open` | gauge (1 open, 0.5 half-open, 0 closed) | cache |

use std::sync::Weak;
use std::time::Duration;

use crate::backend::Backend;
use crate::circuit::Circuit;
use crate::counters::{self, ns_slot, Count, NsCount};
use crate::latency::bucket_seconds;

/// The label of the namespace in `slot`.
fn namespace_label(names: &[Option<&'static str>], slot: usize) -> &'static str {
    match names.get(slot) {
        Some(Some(name)) => name,
        _ => "(other)",
    }
}

/// Publishes `backend`'s counters and pending latency samples.
pub(crate) fn publish(backend: &Backend) {
    let totals = backend.counters.totals();
    let cache = backend.prefix.to_string();
    let names = counters::namespace_names();
    for (slot, _) in names.iter().enumerate() {
        let namespace = namespace_label(&names, slot);
        for (name, count) in [
            ("cache_hits_total", NsCount::Hits),
            ("cache_misses_total", NsCount::Misses),
            ("cache_errors_total", NsCount::Errors),
        ] {
            let value = totals[ns_slot(slot, count)];
            if value > 0 {
                metrics::counter!(name, "cache" => cache.clone(), "namespace" => namespace)
                    .absolute(value);
            }
        }
    }
    for (name, count) in [
        ("cache_local_hits_total", Count::LocalHits),
        ("cache_bypassed_total", Count::Bypassed),
        ("cache_backend_errors_total", Count::Errors),
        ("cache_decode_failures_total", Count::DecodeFailures),
        ("cache_coalesced_total", Count::Coalesced),
        ("cache_stale_served_total", Count::StaleServed),
        ("cache_refreshes_total", Count::Refreshes),
        ("cache_circuit_trips_total", Count::CircuitTrips),
        (
            "cache_invalidation_failures_total",
            Count::InvalidationFailures,
        ),
    ] {
        metrics::counter!(name, "cache" => cache.clone()).absolute(totals[count as usize]);
    }
    let open = match backend.circuit() {
        Circuit::Closed => 0.0,
        Circuit::HalfOpen => 0.5,
        Circuit::Open => 1.0,
    };
    metrics::gauge!("cache_circuit_open", "cache" => cache.clone()).set(open);
    for (slot, hit, bucket, count) in backend.latencies.take() {
        let namespace = namespace_label(&names, slot);
        let name = if hit {
            "cache_hit_seconds"
        } else {
            "cache_miss_seconds"
        };
        metrics::histogram!(name, "cache" => cache.clone(), "namespace" => namespace)
            .record_many(bucket_seconds(bucket), count as usize);
    }
}

/// Publishes the metrics of the cache behind `backend` every `interval`, until it is shut
/// down.
pub(crate) async fn publish_every(backend: Weak<Backend>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(backend) = backend.upgrade() else {
            return;
        };
        if backend.is_closed() {
            return;
        }
        publish(&backend);
    }
}
