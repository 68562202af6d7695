//! [`Latencies`]: the latency samples of a cache's sampled calls, in power-of-two buckets,
//! kept until the metrics publisher takes them.

use std::sync::Mutex;
use std::time::Duration;

use crate::counters::NAMESPACES;
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
    pub(crate) fn take(&self) -> Vec<(usize, bool, usize, u32)> {
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
pub(crate) fn bucket_seconds(bucket: usize) -> f64 {
    (1u64 << bucket) as f64 * 1.5 / 1e6
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
