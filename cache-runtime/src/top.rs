//! The most requested keys of a cache, in bounded memory: one call in [`SAMPLE`] (per thread)
//! is recorded in a Space-Saving summary of [`CAPACITY`] keys (Metwally et al., 2005). A key
//! requested more often than 1/`CAPACITY` of the sampled calls is surely in it; counts are
//! estimates (at most over by the smallest count kept), scaled back by the sample rate.

use std::sync::Mutex;

use crate::sync::lock;

/// One call in this many is recorded.
pub(crate) const SAMPLE: u64 = 64;

/// Whether this call on this thread is timed for the latency histograms: one in [`SAMPLE`],
/// decided before the call so that only those read the clock.
#[inline]
pub(crate) fn timed() -> bool {
    thread_local! {
        static COUNTDOWN: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    COUNTDOWN
        .try_with(|countdown| match countdown.get() {
            0 => {
                countdown.set(SAMPLE as u32 - 1);
                true
            }
            n => {
                countdown.set(n - 1);
                false
            }
        })
        .unwrap_or(false)
}

/// Whether the call counted `tick`-th on its thread is sampled: one in [`SAMPLE`], at
/// pseudo-random ticks (a stride would alias with callers that alternate keys).
#[inline]
pub(crate) fn sampled(tick: u64) -> bool {
    let mut h = tick.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 29;
    h.is_multiple_of(SAMPLE)
}
/// How many keys the summary keeps.
const CAPACITY: usize = 64;

/// A Space-Saving summary of sampled keys.
#[derive(Default)]
pub(crate) struct TopKeys {
    /// Each key's hash (compared first), the key, and its count.
    kept: Mutex<Vec<(u64, Box<str>, u64)>>,
}

impl TopKeys {
    /// Records one sampled request of `key` (made only when a call is sampled).
    pub(crate) fn record(&self, key: impl FnOnce() -> String) {
        // A sample taken while another thread records is dropped: samples are estimates
        // anyway, and a call never waits for the summary.
        let Ok(mut kept) = self.kept.try_lock() else {
            return;
        };
        let key = key();
        let hash = fnv(&key);
        if let Some(entry) = kept.iter_mut().find(|(h, k, _)| *h == hash && **k == *key) {
            entry.2 += 1;
            return;
        }
        if kept.len() < CAPACITY {
            kept.push((hash, key.into(), 1));
            return;
        }
        // The least counted key gives up its place, and the newcomer inherits its count.
        if let Some(least) = kept.iter_mut().min_by_key(|(_, _, count)| *count) {
            *least = (hash, key.into(), least.2 + 1);
        }
    }

    /// The `n` most requested keys, most first, with their estimated number of requests.
    pub(crate) fn top(&self, n: usize) -> Vec<(String, u64)> {
        let mut kept: Vec<(String, u64)> = lock(&self.kept)
            .iter()
            .map(|(_, key, count)| (key.to_string(), count * SAMPLE))
            .collect();
        kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        kept.truncate(n);
        kept
    }
}

/// FNV-1a: cheap, and enough to tell a few dozen keys apart before comparing them.
fn fnv(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequent_keys_are_kept_in_bounded_memory() {
        let top = TopKeys::default();
        for i in 0..10_000u64 {
            // "hot" in every other sample; 5,000 others once each.
            let key = if i % 2 == 0 {
                "hot".to_owned()
            } else {
                format!("cold{i}")
            };
            top.record(|| key);
        }
        assert!(lock(&top.kept).len() <= CAPACITY);
        let best = top.top(3);
        assert_eq!(best[0].0, "hot");
        assert!(best[0].1 >= 5_000 * SAMPLE, "{best:?}");
    }
}
