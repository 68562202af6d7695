//! Fences: what makes a clear final. A miss reads the [`Fence`] of its key before its body
//! runs, and its result is stored only while that fence still stands; a clear moves the fence
//! of its scope before it removes anything. So a miss that began before a clear never stores
//! its (possibly stale) result after it, and a call that begins after a clear never joins a
//! flight that began before it (flights are told apart by their fence).
//!
//! [`Fences`] are the in-process kind (the memory store); the Redis store keeps its fences in
//! Redis, so that a clear in one process fences misses in every other.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

/// What a miss saw of the clears that can reach its key: a version of everything (a full
/// clear) and one of the key's namespace (a namespace clear, or a key clear in it). Equal
/// fences mean no clear of the key's scopes happened in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fence(pub(crate) [u64; 2]);

/// What tells a miss's flight apart: the fence it read (`None`: the store could not tell),
/// and how many clears of its cache this process had started when it read it, which tells
/// a local clear apart even when the store cannot be asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Era {
    pub(crate) fence: Option<Fence>,
    pub(crate) clears: u64,
}

/// What a clear moves.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Raise<'a> {
    /// A full clear: every key's fence.
    All,
    /// A namespace clear, or a key clear in that namespace.
    Namespace(&'a str),
}

/// Namespaces share this many stripes of versions: a clear of one fences the misses of
/// about 1/64 of the others too, which only costs those a store.
const STRIPES: usize = 64;

/// In-process fences. A store under a fence and the move of that fence exclude each other
/// (`gate`), so a store either lands before the clear moved the fence, and the clear then
/// removes it, or sees the fence moved and does not land: a reader never sees a stale
/// value between the two.
pub(crate) struct Fences {
    gate: RwLock<()>,
    all: AtomicU64,
    namespaces: [AtomicU64; STRIPES],
}

impl Fences {
    pub(crate) fn new() -> Self {
        Self {
            gate: RwLock::new(()),
            all: AtomicU64::new(0),
            namespaces: [const { AtomicU64::new(0) }; STRIPES],
        }
    }

    fn stripe(namespace: &str) -> usize {
        // FNV-1a: stable, and enough to spread a few namespace names.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in namespace.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        (h % STRIPES as u64) as usize
    }

    /// The fence of keys in `namespace` now.
    pub(crate) fn now(&self, namespace: &str) -> Fence {
        Fence([
            self.all.load(Ordering::SeqCst),
            self.namespaces[Self::stripe(namespace)].load(Ordering::SeqCst),
        ])
    }

    /// Moves the fences `raise` names; called by a clear before it removes anything.
    pub(crate) fn raise(&self, raise: Raise<'_>) {
        let _moving = self.gate.write().unwrap_or_else(|p| p.into_inner());
        match raise {
            Raise::All => self.all.fetch_add(1, Ordering::SeqCst),
            Raise::Namespace(ns) => {
                self.namespaces[Self::stripe(ns)].fetch_add(1, Ordering::SeqCst)
            }
        };
    }

    /// Runs `store` if the fence of `namespace` is still `fence`, with no clear moving it
    /// meanwhile; `None` (and nothing run) if a clear moved it.
    pub(crate) fn admit<R>(
        &self,
        fence: Fence,
        namespace: &str,
        store: impl FnOnce() -> R,
    ) -> Option<R> {
        // A panic while the gate was held leaves the versions as they were: nothing to repair.
        let _storing = self.gate.read().unwrap_or_else(|p| p.into_inner());
        (self.now(namespace) == fence).then(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_lands_only_under_the_fence_it_saw() {
        let fences = Fences::new();
        let seen = fences.now("users");
        assert_eq!(fences.admit(seen, "users", || 1), Some(1));
        fences.raise(Raise::Namespace("users"));
        assert_eq!(fences.admit(seen, "users", || 2), None, "a namespace clear");
        let seen = fences.now("users");
        let other = fences.now("posts");
        fences.raise(Raise::All);
        assert_eq!(fences.admit(seen, "users", || 3), None, "a full clear");
        assert_eq!(fences.admit(other, "posts", || 3), None);
        let seen = fences.now("users");
        // Another namespace (almost always another stripe) leaves this one's fence.
        let elsewhere = (0..100)
            .map(|i| format!("ns{i}"))
            .find(|ns| Fences::stripe(ns) != Fences::stripe("users"))
            .unwrap();
        fences.raise(Raise::Namespace(&elsewhere));
        assert_eq!(fences.admit(seen, "users", || 4), Some(4));
    }
}
