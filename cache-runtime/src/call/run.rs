//! Cache-aside for one call whose key is made: look up, decode, and on a miss run the body
//! once per key in this process (single-flight), store and share its result.

use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;

use super::lock::LockGuard;
use super::outcome::Outcome;
use super::reuse::Reuse;
use super::spec::Spec;
use crate::counters::Count;
use crate::default::Lent;
use crate::fence::Fence;
use crate::flight::{self, Join, Lead};
use crate::hot::{self, Probe, Seen};
use crate::store::memory::Slot;
use crate::store::{Fetch, Locked, Store};
use crate::sync::lock;
use crate::throttle::throttled;
use crate::top::{self, sampled};

/// How many times a caller waits for other callers' runs of its key before it runs the body
/// itself (each wait ends when that run lands, fails or is cancelled).
const MAX_FOLLOWS: usize = 3;

/// What a lookup found.
enum Lookup<T> {
    /// The value and, when asked for, the time the entry has left.
    Hit(T, Option<Duration>),
    /// Absent: the result is to be stored.
    Miss,
    /// The store could not be asked: the result is not stored either.
    Unavailable,
    /// The store's connection was found closed: ask once more before anything else.
    Dropped,
}

/// What a hit gets, by the time its entry has left.
enum Verdict {
    /// The value.
    Serve,
    /// Past its TTL, kept for `stale_if_error`: recomputed, the copy served if that fails.
    Stale,
    /// Near its end (`refresh`): one caller recomputes it.
    Refresh,
}

/// What identifies a call in a hot set, once its key is made.
pub(super) enum Ident {
    /// Its value is not copied into a hot set.
    None,
    /// The key itself (a static key, a key builder's result, a method's or generic's key).
    Key,
    /// The arguments' JSON.
    Args(Box<[u8]>),
}

/// A call that was not served from its thread's hot set, with its key made.
pub(crate) struct Keyed {
    backend: Lent,
    key: String,
    spec: &'static Spec,
    ident: Ident,
    /// When the call started (its key made), for the one call in so many that is timed
    /// (only those read the clock).
    started: Option<Instant>,
}

impl Keyed {
    pub(super) fn new(backend: Lent, key: String, spec: &'static Spec, ident: Ident) -> Self {
        Self {
            backend,
            key,
            spec,
            ident,
            started: top::timed().then(Instant::now),
        }
    }

    /// Where this call is kept in a hot set, if its value is copied there.
    fn probe(&self) -> Option<Probe<'_>> {
        let ident = match &self.ident {
            Ident::None => return None,
            Ident::Key => self.key.as_bytes(),
            Ident::Args(args) => args,
        };
        Some(Probe::new(self.spec.id(), self.backend.id, ident))
    }

    #[inline]
    fn bump(&self, count: Count) {
        self.backend.counters.bump(count);
    }

    /// Counts a hit (a miss, with `hit` false) of this call's namespace, and records its key
    /// when the call is sampled.
    #[inline]
    fn count(&self, hit: bool) {
        let ns = self.spec.namespace_slot();
        let tick = match hit {
            true => self.backend.counters.hit(ns, false),
            false => self.backend.counters.miss(ns),
        };
        if sampled(tick) {
            self.backend.top.record(|| self.key.clone());
        }
        if let (true, Some(started)) = (hit, self.started) {
            self.backend.latencies.record(ns, true, started.elapsed());
        }
    }

    /// Records the latency of a timed miss, once its body ran.
    fn ended(&self) {
        if let Some(started) = self.started {
            let ns = self.spec.namespace_slot();
            self.backend.latencies.record(ns, false, started.elapsed());
        }
    }

    async fn lookup<O: Outcome>(
        &self,
        want_ttl: bool,
        reuse: Option<Reuse<O::Value>>,
    ) -> Lookup<O::Value> {
        let seen = self.seen();
        let fetch = self.backend.store.get(&self.key, want_ttl).await;
        self.looked::<O>(fetch, seen, reuse)
    }

    /// The hot set's epoch of this call's key, read before the store is, so that a change
    /// made meanwhile keeps the copy out of the hot set.
    #[inline]
    fn seen(&self) -> Option<Seen> {
        match self.ident {
            Ident::None => None,
            _ => self.backend.hot().map(|hot| hot.epochs.seen(&self.key)),
        }
    }

    /// [`lookup`](Self::lookup) once more, after the store found its connection closed.
    async fn lookup_again<O: Outcome>(
        &self,
        want_ttl: bool,
        reuse: Option<Reuse<O::Value>>,
    ) -> Lookup<O::Value> {
        let seen = self.seen();
        let fetch = self.backend.store.get_again(&self.key, want_ttl).await;
        self.looked::<O>(fetch, seen, reuse)
    }

    /// What a lookup's answer means for this call.
    #[inline]
    fn looked<O: Outcome>(
        &self,
        fetch: Fetch,
        seen: Option<Seen>,
        reuse: Option<Reuse<O::Value>>,
    ) -> Lookup<O::Value> {
        match fetch {
            Fetch::Hit(held, left) => {
                let slot = reuse.zip(held.slot());
                if let Some((reuse, slot)) = slot {
                    if let Some(value) = slot.decoded().and_then(reuse.fetch) {
                        self.count(true);
                        self.fill_hot(slot, reuse, seen);
                        return Lookup::Hit(value, left);
                    }
                }
                match O::decode(held.bytes()) {
                    Ok(value) => {
                        self.count(true);
                        if let Some((reuse, slot)) = slot {
                            slot.keep((reuse.keep)(&value));
                            self.fill_hot(slot, reuse, seen);
                        }
                        Lookup::Hit(value, left)
                    }
                    Err(e) => {
                        self.bump(Count::DecodeFailures);
                        self.count(false);
                        throttled!(warn, key = %self.key, "cached value does not decode, recomputing and overwriting it: {e}");
                        Lookup::Miss
                    }
                }
            }
            Fetch::Miss => {
                self.count(false);
                Lookup::Miss
            }
            Fetch::Dropped => Lookup::Dropped,
            Fetch::Unavailable => {
                self.backend
                    .counters
                    .unavailable(self.spec.namespace_slot());
                Lookup::Unavailable
            }
        }
    }

    /// Copies the decoded value of a store's entry into this thread's hot set, when it is of
    /// this call's type (two functions may share a key).
    fn fill_hot<T>(&self, slot: &Slot, reuse: Reuse<T>, seen: Option<Seen>) {
        let (Some(seen), Some(hot), Some(probe)) = (seen, self.backend.hot(), self.probe()) else {
            return;
        };
        if let Some(value) = slot.decoded_arc().filter(|value| (reuse.is)(&**value)) {
            hot::fill(&probe, hot, seen, slot.expires_at(), value);
        }
    }

    fn encoded(&self, encoded: Result<Vec<u8>, serde_json::Error>) -> Option<Arc<[u8]>> {
        match encoded {
            Ok(bytes) => Some(bytes.into()),
            Err(e) => {
                throttled!(warn, key = %self.key, "result cannot be serialized, not caching it: {e}");
                None
            }
        }
    }

    /// Stores `bytes` unless a clear moved `fence` since the miss read it.
    async fn store(&self, bytes: Arc<[u8]>, fence: Fence) {
        if bytes.len() > self.backend.max_value_size {
            oversized(&self.key, bytes.len(), self.backend.max_value_size);
            return;
        }
        self.backend
            .store
            .set(&self.key, bytes, self.spec.store_ttl(), fence)
            .await
    }

    /// Cache-aside with single-flight: a hit returns the stored value; on a miss one caller
    /// per key runs its body, stores the result and shares it with the callers that missed
    /// meanwhile.
    pub(super) async fn run<O: Outcome, B: FnOnce() -> F, F: Future<Output = O>>(
        self,
        reuse: Option<Reuse<O::Value>>,
        body: B,
    ) -> O {
        let want_ttl = self.spec.wants_ttl();
        // Everything but a plain hit is boxed, like everything only a miss needs: a hit then
        // moves and polls a small future.
        match self.lookup::<O>(want_ttl, reuse).await {
            Lookup::Hit(value, left) => match self.verdict(left) {
                Verdict::Serve => O::from_value(value),
                Verdict::Stale => Box::pin(self.miss(true, body, Some(value))).await,
                Verdict::Refresh => Box::pin(self.refresh(value, body)).await,
            },
            Lookup::Miss => Box::pin(self.miss(true, body, None)).await,
            Lookup::Unavailable => Box::pin(self.miss(false, body, None)).await,
            Lookup::Dropped => Box::pin(self.after_drop(reuse, body)).await,
        }
    }

    /// What a hit whose entry has `left` to live gets.
    #[inline]
    fn verdict(&self, left: Option<Duration>) -> Verdict {
        let spec = self.spec;
        // The store's TTL includes the stale window; what is left of the real TTL:
        let fresh = left.map(|left| left.saturating_sub(Duration::from_secs(spec.stale_if_error)));
        match fresh {
            Some(Duration::ZERO) if spec.stale_if_error > 0 => Verdict::Stale,
            Some(fresh) if spec.refresh > 0 && fresh <= Duration::from_secs(spec.refresh) => {
                Verdict::Refresh
            }
            _ => Verdict::Serve,
        }
    }

    /// [`run`](Self::run) after the store found its connection closed: one more lookup, on a
    /// fresh connection, so that a Redis that answers still serves this call's hit.
    async fn after_drop<O: Outcome, B: FnOnce() -> F, F: Future<Output = O>>(
        &self,
        reuse: Option<Reuse<O::Value>>,
        body: B,
    ) -> O {
        match self.lookup_again::<O>(self.spec.wants_ttl(), reuse).await {
            Lookup::Hit(value, left) => match self.verdict(left) {
                Verdict::Serve => O::from_value(value),
                Verdict::Stale => self.miss(true, body, Some(value)).await,
                Verdict::Refresh => self.refresh(value, body).await,
            },
            Lookup::Miss => self.miss(true, body, None).await,
            Lookup::Unavailable | Lookup::Dropped => self.miss(false, body, None).await,
        }
    }

    /// A miss (or an expired entry kept for `stale_if_error`): read the fence, then run the
    /// body once per key and fence in this process, or wait for the run under way. With
    /// `store` false (the store could not be asked), nothing is stored.
    async fn miss<O: Outcome, B: FnOnce() -> F, F: Future<Output = O>>(
        &self,
        store: bool,
        body: B,
        stale: Option<O::Value>,
    ) -> O {
        // Read before the body runs: a clear from now on keeps this result out of the store,
        // and makes the calls after it lead a flight of their own.
        let era = self.backend.era(&self.key, store).await;
        let mut lead = None;
        for _ in 0..MAX_FOLLOWS {
            match self.backend.flights.join(&self.key, era) {
                Join::Lead(l) => {
                    lead = Some(l);
                    break;
                }
                Join::Follow(rx) => {
                    if let Some(bytes) = flight::follow(rx).await {
                        if let Ok(value) = O::decode(&bytes) {
                            self.bump(Count::Coalesced);
                            return O::from_value(value);
                        }
                    }
                }
            }
        }
        let outcome = self.compute(lead, body, era.fence, stale).await;
        self.ended();
        outcome
    }

    /// A call that skips the lookup (a client's `Cache-Control: no-cache` at the response
    /// cache layer): runs the body now, on its own, and stores its result under the fence
    /// read before it ran.
    #[cfg(feature = "axum")]
    pub(super) async fn renew<O: Outcome, B: FnOnce() -> F, F: Future<Output = O>>(
        self,
        body: B,
    ) -> O {
        self.count(false);
        let era = self.backend.era(&self.key, true).await;
        let outcome = self.compute(None, body, era.fence, None).await;
        self.ended();
        outcome
    }

    /// A hit near expiry (`refresh`): one caller recomputes, the others keep the copy.
    async fn refresh<O: Outcome, B: FnOnce() -> F, F: Future<Output = O>>(
        &self,
        value: O::Value,
        body: B,
    ) -> O {
        let era = self.backend.era(&self.key, true).await;
        match self.backend.flights.join(&self.key, era) {
            Join::Lead(lead) => {
                self.bump(Count::Refreshes);
                self.compute(Some(lead), body, era.fence, Some(value)).await
            }
            Join::Follow(_) => O::from_value(value),
        }
    }

    /// Runs the body (under the cross-process lock, when asked for), stores its result under
    /// `fence` (none: not stored) and shares it; with a stale copy, a failing body (an `Err`,
    /// a panic) gets the copy instead.
    async fn compute<O: Outcome, B: FnOnce() -> F, F: Future<Output = O>>(
        &self,
        lead: Option<Lead<'_>>,
        body: B,
        fence: Option<Fence>,
        stale: Option<O::Value>,
    ) -> O {
        let mut lock = None;
        if fence.is_some() && self.spec.lock {
            match self.backend.store.lock(&self.key).await {
                Locked::Acquired(token) => {
                    lock = Some(LockGuard::new(
                        self.backend.to_arc(),
                        self.key.clone(),
                        token,
                    ))
                }
                Locked::Held => {
                    // Another process computes it: wait for its value, then fail open.
                    if let Some(bytes) = self.backend.store.wait_for(&self.key).await {
                        if let Ok(value) = O::decode(&bytes) {
                            self.bump(Count::Coalesced);
                            if let Some(lead) = lead {
                                lead.land(Some(bytes.into()));
                            }
                            return O::from_value(value);
                        }
                    }
                }
                Locked::Skipped => {}
            }
        }
        let mut outcome = match stale {
            None => body().await,
            Some(stale) => match AssertUnwindSafe(body()).catch_unwind().await {
                Ok(outcome) if !outcome.failed() => outcome,
                failed => {
                    self.bump(Count::StaleServed);
                    let why = if failed.is_err() {
                        "panicked"
                    } else {
                        "returned an error"
                    };
                    throttled!(warn, key = %self.key, "the body {why}; serving the stale copy");
                    if let Some(lock) = lock {
                        lock.release().await;
                    }
                    return O::from_value(stale);
                }
            },
        };
        let bytes = outcome.encoded().and_then(|encoded| self.encoded(encoded));
        match (fence, &bytes) {
            (Some(fence), Some(bytes)) => self.store(Arc::clone(bytes), fence).await,
            (None, _) => outcome.unstored(),
            (Some(_), None) => {}
        }
        if let Some(lock) = lock {
            lock.release().await;
        }
        if let Some(lead) = lead {
            lead.land(bytes);
        }
        outcome
    }
}

/// Logs a value too large to store, once per key (up to a bound of keys, then once in a
/// while).
fn oversized(key: &str, size: usize, max: usize) {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let logged_before = {
        let mut seen = lock(&SEEN);
        let seen = seen.get_or_insert_with(HashSet::new);
        (seen.len() < 4096).then(|| !seen.insert(key.to_owned()))
    };
    match logged_before {
        Some(true) => {}
        Some(false) => tracing::warn!(
            key,
            size,
            max,
            "value larger than max_value_size, not caching it"
        ),
        None => throttled!(
            warn,
            key,
            size,
            max,
            "value larger than max_value_size, not caching it"
        ),
    }
}
