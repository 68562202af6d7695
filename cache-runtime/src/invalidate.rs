//! Invalidation on writes: what `#[invalidate(...)]` and [`evict!`](crate::evict) run.
//!
//! An invalidation moves the fences of its targets before the write's body runs (misses under
//! way, which may read the data before the write, store nothing, and the body's own re-reads
//! lead flights of their own), and clears the targets after the body succeeded. A body that
//! fails, panics or is cancelled clears nothing. A clear that fails (Redis down) is logged and
//! counted and never turns the write's success into an error: the entries then live until
//! their TTL.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use crate::backend::Backend;
use crate::cache::CacheRef;
use crate::call::spec::Spec;
use crate::counters::{bump_uncached, Count};
use crate::default;
use crate::enabled::Probing;
use crate::error::CacheError;
use crate::keys::{self, ScopeKind};
use crate::throttle::throttled;

/// The targets of an invalidation, in the cache it clears.
pub struct Invalidation {
    backend: Option<Arc<Backend>>,
    /// Each target with its cache (an entry's is the cache of its function).
    targets: Vec<(Arc<Backend>, ScopeKind)>,
    /// The function it belongs to, for the log.
    function: &'static str,
}

impl Invalidation {
    /// An invalidation of the process default cache by `function`.
    pub fn of_default(function: &'static str) -> Self {
        Self {
            backend: default::current_arc(),
            targets: Vec::new(),
            function,
        }
    }

    /// An invalidation of the cache `cache` names.
    pub fn of<'c>(cache: impl CacheRef<'c>, function: &'static str) -> Self {
        Self {
            backend: cache.cache().map(|cache| Arc::clone(cache.backend())),
            targets: Vec::new(),
            function,
        }
    }

    /// Every entry of `namespace`.
    pub fn namespace(self, namespace: &str) -> Self {
        self.target(ScopeKind::Namespace(namespace.to_owned()))
    }

    fn target(mut self, scope: ScopeKind) -> Self {
        if let Some(backend) = &self.backend {
            self.targets.push((Arc::clone(backend), scope));
        }
        self
    }

    /// The entry `key` of `namespace`.
    pub fn key(self, namespace: &str, key: impl Display) -> Self {
        self.target(ScopeKind::Key {
            namespace: namespace.to_owned(),
            key: key.to_string(),
        })
    }

    /// The entry a `#[cache]` function stores for given arguments (see
    /// [`evict!`](crate::evict)); `None` (arguments that do not serialize): nothing.
    pub fn entry(mut self, entry: Option<Entry>) -> Self {
        if let Some(Entry {
            backend: Some(backend),
            scope,
        }) = entry
        {
            self.targets.push((backend, scope));
        }
        self
    }

    /// Moves the fences of the targets; then run the write, then [`Begun::finish`].
    pub async fn begin(self) -> Begun {
        for (backend, target) in &self.targets {
            if let Err(e) = backend.raise(target).await {
                failed(backend, self.function, &e);
            }
        }
        Begun(self)
    }
}

tokio::task_local! {
    /// The namespaces the write running in this task invalidates.
    static WRITING: Arc<[String]>;
}

/// Whether a cached call of `namespace` runs inside a write that invalidates it: it then
/// reads fresh data (the body runs, nothing is stored), since the write's clear comes after.
pub(crate) fn inside_write_of(namespace: &str) -> bool {
    WRITING
        .try_with(|namespaces| namespaces.iter().any(|ns| ns == namespace))
        .unwrap_or(false)
}

/// An invalidation whose write is running.
pub struct Begun(Invalidation);

impl Begun {
    /// Runs the write's body. Cached calls it makes (in this task) of the namespaces it
    /// invalidates read fresh data and store nothing: a write that re-reads what it wrote, to
    /// answer, gets what it wrote, not the entry it is about to clear.
    pub async fn during<F: Future>(&self, body: F) -> F::Output {
        let namespaces: Arc<[String]> = self
            .0
            .targets
            .iter()
            .filter_map(|(_, scope)| match scope {
                ScopeKind::Namespace(ns) | ScopeKind::Key { namespace: ns, .. } => Some(ns.clone()),
                ScopeKind::All => None,
            })
            .collect();
        let _writing = Probing::start();
        WRITING.scope(namespaces, body).await
    }

    /// Clears the targets if the write `succeeded`; failures are logged and counted.
    pub async fn finish(self, succeeded: bool) {
        if !succeeded {
            return;
        }
        for (backend, target) in &self.0.targets {
            if let Err(e) = backend.clear(target).await {
                failed(backend, self.0.function, &e);
            }
        }
    }
}

fn failed(backend: &Backend, function: &'static str, e: &CacheError) {
    backend.counters.bump(Count::InvalidationFailures);
    throttled!(
        warn,
        function,
        "invalidation failed; the write succeeded, and the entries it meant to clear live \
         until their TTL: {e}"
    );
}

/// The one entry a `#[cache]` function stores for given arguments, in its cache; what
/// [`evict!`](crate::evict) removes.
pub struct Entry {
    backend: Option<Arc<Backend>>,
    scope: ScopeKind,
}

impl Entry {
    /// The entry of `function` (its `Spec`'s key parts) in the cache `backend`.
    pub(crate) fn new(backend: Option<Arc<Backend>>, namespace: &str, key: String) -> Self {
        let prefix_len = backend.as_ref().map_or(0, |b| b.prefix.len() + 1);
        // `key` is the whole key; the scope names the part after `{prefix}:{namespace}:`.
        let key = key
            .get(prefix_len + namespace.len() + 1..)
            .unwrap_or_default()
            .to_owned();
        Self {
            backend,
            scope: ScopeKind::Key {
                namespace: namespace.to_owned(),
                key,
            },
        }
    }

    /// Removes the entry; `Ok(1)` if there was one.
    pub async fn evict(self) -> Result<u64, CacheError> {
        let backend = self.backend.ok_or(CacheError::NotInitialized)?;
        backend.clear(&self.scope).await
    }
}

/// The entry of a call of a `#[cache]` function keyed by its arguments' hash.
pub fn hashed_entry<'c>(
    cache: Option<impl CacheRef<'c>>,
    spec: &'static Spec,
    types: &[&'static str],
    args: &[keys::Arg<'_>],
) -> Option<Entry> {
    let backend = pick(cache);
    let prefix = backend.as_deref().map_or("", |b| &b.prefix);
    match keys::hashed(prefix, spec.namespace, spec.function, types, args) {
        Ok(key) => Some(Entry::new(backend, spec.namespace, key)),
        Err(_) => {
            bump_uncached(Count::Bypassed);
            None
        }
    }
}

/// The entry of a call of a `#[cache]` function with a static key or a key builder's result.
pub fn keyed_entry<'c>(
    cache: Option<impl CacheRef<'c>>,
    spec: &'static Spec,
    key: impl Display,
) -> Option<Entry> {
    let backend = pick(cache);
    let prefix = backend.as_deref().map_or("", |b| &b.prefix);
    let key = keys::explicit(prefix, spec.namespace, key);
    Some(Entry::new(backend, spec.namespace, key))
}

fn pick<'c>(cache: Option<impl CacheRef<'c>>) -> Option<Arc<Backend>> {
    match cache {
        Some(cache) => cache.cache().map(|cache| Arc::clone(cache.backend())),
        None => default::current_arc(),
    }
}

/// What `#[invalidate]` asks of a write's result: whether it succeeded. Picked by autoref
/// specialization (`(&&Check(&result)).succeeded()`): [`Succeeds`] for `Result` (`Ok`),
/// `Option` (`Some`) and, with the `axum` feature, statuses and responses (2xx);
/// [`SucceedsAlways`] for every other type.
pub struct Check<'a, T>(pub &'a T);

/// The choice for results that can fail.
pub trait Succeeds {
    /// Whether it is a success.
    fn succeeded(&self) -> bool;
}

impl<T, E> Succeeds for &Check<'_, Result<T, E>> {
    fn succeeded(&self) -> bool {
        self.0.is_ok()
    }
}

impl<T> Succeeds for &Check<'_, Option<T>> {
    fn succeeded(&self) -> bool {
        self.0.is_some()
    }
}

#[cfg(feature = "axum")]
impl Succeeds for &Check<'_, axum::http::StatusCode> {
    fn succeeded(&self) -> bool {
        self.0.is_success()
    }
}

#[cfg(feature = "axum")]
impl<T> Succeeds for &Check<'_, (axum::http::StatusCode, T)> {
    fn succeeded(&self) -> bool {
        self.0 .0.is_success()
    }
}

#[cfg(feature = "axum")]
impl Succeeds for &Check<'_, axum::response::Response> {
    fn succeeded(&self) -> bool {
        self.0.status().is_success()
    }
}

/// The choice for every other type: any return is a success.
pub trait SucceedsAlways {
    /// Always true.
    fn succeeded(&self) -> bool;
}

impl<T> SucceedsAlways for Check<'_, T> {
    fn succeeded(&self) -> bool {
        true
    }
}

/// How a key template shows a field read through an `Option` argument (`{auth.user_id}` of
/// `auth: Option<Auth>`): the field, or `-` for `None`.
pub struct OrNone<T>(pub Option<T>);

impl<T: Display> Display for OrNone<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => f.write_str("-"),
        }
    }
}
