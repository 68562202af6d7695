//! [`Spec`]: what a `#[cache]` attribute said, fixed at compile time.

use crate::counters::NamespaceSlot;

/// What the attribute said, fixed at compile time.
#[derive(Debug)]
pub struct Spec {
    /// `module_path!()::fn_name`, the start of the automatic key.
    pub function: &'static str,
    /// The namespace, or `""`.
    pub namespace: &'static str,
    /// TTL in seconds.
    pub expire: u64,
    /// A cross-process lock in Redis around a miss.
    pub lock: bool,
    /// The TTL is shortened by a random fraction of up to this (0: never).
    pub jitter: f64,
    /// A hit with at most this many seconds left is recomputed by one caller (0: never).
    pub refresh: u64,
    /// A copy outlives the TTL by this many seconds and is served when the body fails.
    pub stale_if_error: u64,
    /// Where the namespace is counted (found on the first call).
    pub slot: NamespaceSlot,
}

impl Spec {
    /// What the attribute does not set.
    // Each `static` built from it gets a slot of its own, which is the point.
    #[allow(clippy::declare_interior_mutable_const)]
    pub const DEFAULT: Spec = Spec {
        function: "",
        namespace: "",
        expire: 60,
        lock: false,
        jitter: 0.0,
        refresh: 0,
        stale_if_error: 0,
        slot: NamespaceSlot::NEW,
    };

    /// Whether a hit needs the time its entry has left.
    pub(crate) fn wants_ttl(&self) -> bool {
        self.refresh > 0 || self.stale_if_error > 0
    }

    /// The TTL of a new entry in the store: `expire`, less its jitter, plus the stale window.
    pub(crate) fn store_ttl(&self) -> u64 {
        let cut = if self.jitter > 0.0 {
            (self.expire as f64 * self.jitter * crate::random::fraction()) as u64
        } else {
            0
        };
        (self.expire - cut.min(self.expire - 1)) + self.stale_if_error
    }

    /// The counters' slot of the namespace.
    #[inline]
    pub(crate) fn namespace_slot(&self) -> usize {
        self.slot.of(self.namespace)
    }

    /// What tells functions apart in a hot set: the address of their `Spec`.
    pub(crate) fn id(&'static self) -> usize {
        std::ptr::from_ref(self) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_shortens_the_ttl_by_at_most_its_fraction_and_never_to_zero() {
        static JITTERY: Spec = Spec {
            expire: 100,
            jitter: 0.5,
            stale_if_error: 7,
            ..Spec::DEFAULT
        };
        for _ in 0..1_000 {
            let ttl = JITTERY.store_ttl();
            assert!((57..=107).contains(&ttl), "{ttl}");
        }
        static SHORT: Spec = Spec {
            expire: 1,
            jitter: 0.99,
            ..Spec::DEFAULT
        };
        assert_eq!(SHORT.store_ttl(), 1);
    }
}
