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

use std::sync::{Mutex, Weak};
use std::time::Duration;

use crate::backend::Backend;
use crate::circuit::Circuit;
use crate::counters::{self, ns_slot, Count, NsCount, NAMESPACES};
use crate::sync::lock;

/// Latency buckets: bucket `i` holds samples of `[2^i, 2^(i+1))` microseconds (the first,
/// under 2 µs; the last, 2^31 µs and more).
const BUCKETS: usize = 32;

/// Latency samples of one cache's sampled calls not published yet, by namespace slot and
/// hit or miss.
pub(crate) struct Latencies {
    pending: Mutex<Vec<[u32; BUCKETS]>>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self {
            pending: Mutex::new(vec![[0; BUCKETS]; NAMESPACES * 2]),
        }
    }
}

impl Latencies {
    /// One sampled call of the namespace in `slot` that took `took`.
    pub(crate) fn record(&self, slot: usize, hit: bool, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let bucket = (63 - micros.leading_zeros() as usize).min(BUCKETS - 1);
        let row = slot.min(NAMESPACES - 1) * 2 + usize::from(!hit);
        if let Some(row) = lock(&self.pending).get_mut(row) {
            row[bucket] = row[bucket].saturating_add(1);
        }
    }

    /// The samples since the last take: (slot, hit, bucket, count).
    fn take(&self) -> Vec<(usize, bool, usize, u32)> {
        let mut pending = lock(&self.pending);
        let mut taken = Vec::new();
        for (row, buckets) in pending.iter_mut().enumerate() {
            for (bucket, count) in buckets.iter_mut().enumerate() {
                if *count > 0 {
                    taken.push((row / 2, row % 2 == 0, bucket, std::mem::take(count)));
                }
            }
        }
        taken
    }
}

/// The middle of latency bucket `bucket`, in seconds.
fn bucket_seconds(bucket: usize) -> f64 {
    (1u64 << bucket) as f64 * 1.5 / 1e6
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fall_in_log_buckets() {
        let latencies = Latencies::default();
        latencies.record(0, true, Duration::from_micros(1));
        latencies.record(0, true, Duration::from_micros(3));
        latencies.record(2, false, Duration::from_millis(2));
        latencies.record(2, false, Duration::from_secs(100_000));
        let taken = latencies.take();
        assert_eq!(
            taken,
            [
                (0, true, 0, 1),
                (0, true, 1, 1),
                (2, false, 10, 1),
                (2, false, 31, 1)
            ]
        );
        assert!(latencies.take().is_empty(), "taken once");
        assert!((bucket_seconds(10) - 0.001536).abs() < 1e-9);
    }
}
