//! Random numbers for lock tokens, jitter and instance ids: a per-thread xorshift generator
//! seeded from the standard library's randomly keyed hasher, as none of these needs
//! cryptographic quality.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};

fn seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() | 1
}

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

/// A random number.
pub(crate) fn u64() -> u64 {
    STATE
        .try_with(|state| {
            let mut x = state.get();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            state.set(x);
            x
        })
        .unwrap_or_else(|_| seed())
}

/// A uniform fraction in [0, 1): jitter needs spread, not cryptographic quality.
pub(crate) fn fraction() -> f64 {
    (u64() >> 11) as f64 / (1u64 << 53) as f64
}
