//! How a call starts: its arguments hashed or its key built, this thread's hot set asked,
//! and, unless that answered, a [`Ticket`] naming the entry to look up and the cache to ask.

use std::fmt::Display;
use std::sync::Arc;

use serde::Serialize;

use super::reuse::Reuse;
use super::run::{Ident, Keyed};
use super::spec::Spec;
use crate::backend::Backend;
use crate::cache::{Cache, CacheRef};
use crate::counters::{bump_uncached, Count};
use crate::default::{self, Lent};
use crate::enabled;
use crate::hot::{self, Probe};
use crate::invalidate::{hashed_entry, inside_write_of, keyed_entry};
use crate::keys::{self, Arg, Inline};
use crate::probe;
use crate::throttle::throttled;
use crate::top::sampled;

/// One call's key, or what it is made of.
pub struct Ticket {
    key: TicketKey,
    spec: &'static Spec,
}

enum TicketKey {
    /// The key, made with the prefix of the cache the call asks, which the call keeps.
    Made(String, Lent),
    /// The arguments' JSON of a hashed key whose hot set was asked already and did not have
    /// it. A hot-set hit needs neither the key nor a reference of its own to the cache, so
    /// the MD5 and the reference are left to the calls that miss. `None`: the process
    /// default, looked up when the key is made.
    Args(Inline, Option<Lent>),
}

/// How `#[cache]` starts a call: with the value, when this thread's hot set has it, or with
/// the ticket of the call to make (`None`: run uncached).
pub enum Start<T> {
    /// The hot set's copy.
    Hot(T),
    /// The call to make.
    Ticket(Option<Ticket>),
}

impl<T> From<Option<Ticket>> for Start<T> {
    fn from(ticket: Option<Ticket>) -> Self {
        Start::Ticket(ticket)
    }
}

/// What an argument that is hashed into a key must be. Exists for its error message, which
/// names the argument: `Name` is a type the macro names after it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be hashed into a cache key: it does not implement `serde::Serialize`",
    label = "this argument is part of the cache key",
    note = "hash it (derive `serde::Serialize` for `{Self}`), leave it out of the key (`skip = [{Name}]`), or build the key yourself (`key = \"...\"` or `key_builder = ...`)"
)]
pub trait KeyPart<Name>: Serialize {}

impl<T: Serialize + ?Sized, N> KeyPart<N> for T {}

/// [`KeyPart`] for `self`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be hashed into a cache key: it does not implement `serde::Serialize`",
    label = "`self` is part of the cache key",
    note = "hash it (derive `serde::Serialize` for `{Self}`), leave it out of the key (`skip = [self]`), or build the key yourself (`key = \"...\"` or `key_builder = ...`)"
)]
pub trait SelfKeyPart: Serialize {}

impl<T: Serialize + ?Sized> SelfKeyPart for T {}

/// One hashed argument; the macro spans each call at its argument, so a type that is not
/// `Serialize` is reported there, with the argument's name (`N`).
#[inline(always)]
pub fn arg<N, T: KeyPart<N>>(value: &T) -> Arg<'_> {
    Arg::new(value)
}

/// [`arg`] of an `Option`: the error, if any, names the type inside (whose `Serialize` is
/// missing) with the crate's hint, instead of serde's message about the wrapper.
#[inline(always)]
pub fn arg_option<N, T: KeyPart<N>>(value: &Option<T>) -> Arg<'_> {
    Arg::new(value)
}

/// [`arg_option`] for a `Vec`.
#[inline(always)]
pub fn arg_vec<N, T: KeyPart<N>>(value: &Vec<T>) -> Arg<'_> {
    Arg::new(value)
}

/// [`arg_option`] for a `Box`.
// The macro hands over the argument as it is: `&Box<T>` is what it has.
#[allow(clippy::borrowed_box)]
#[inline(always)]
pub fn arg_boxed<N, T: KeyPart<N>>(value: &Box<T>) -> Arg<'_> {
    Arg::new(value)
}

/// [`arg`] of `self`.
#[inline(always)]
pub fn arg_self<T: SelfKeyPart>(value: &T) -> Arg<'_> {
    Arg::new(value)
}

/// A call of the process default cache keyed by the hash of its arguments: its value when
/// this thread's hot set has it, else its ticket. The hot set is asked here, where the
/// arguments' JSON is written, so that a hit needs no ticket, no key and no reference of its
/// own to the cache.
pub fn hashed<T>(spec: &'static Spec, args: &[Arg<'_>], reuse: Option<Reuse<T>>) -> Start<T> {
    if !enabled::usual() {
        if probe::active() {
            probe::record(hashed_entry(None::<&Cache>, spec, &[], args));
            return Start::Ticket(None);
        }
        if !enabled::is_enabled() || inside_write_of(spec.namespace) {
            bump_uncached(Count::Bypassed);
            return Start::Ticket(None);
        }
    }
    if !default::current_has_hot_sets() {
        return Start::Ticket(hashed_typed(spec, &[], args));
    }
    let mut inline = Inline::new();
    match default::with_current(|backend| ask(backend, spec, args, reuse, &mut inline)) {
        None => {
            bump_uncached(Count::Bypassed);
            Start::Ticket(None)
        }
        Some(asked) => asked.start(spec, inline, args, None),
    }
}

/// [`hashed`] on the cache `cache` names.
pub fn hashed_in<'c, T>(
    cache: impl CacheRef<'c>,
    spec: &'static Spec,
    args: &[Arg<'_>],
    reuse: Option<Reuse<T>>,
) -> Start<T> {
    if !enabled::usual() {
        if probe::active() {
            probe::record(hashed_entry(Some(cache), spec, &[], args));
            return Start::Ticket(None);
        }
        if inside_write_of(spec.namespace) {
            bump_uncached(Count::Bypassed);
            return Start::Ticket(None);
        }
    }
    let Some(backend) = explicit(cache) else {
        return Start::Ticket(None);
    };
    if backend.hot().is_none() {
        return Start::Ticket(make_hashed(Lent::of(backend), spec, &[], args));
    }
    let mut inline = Inline::new();
    ask(backend, spec, args, reuse, &mut inline).start(spec, inline, args, Some(backend))
}

/// What [`ask`] found out from the cache.
enum Asked<T> {
    Hit(T),
    /// The hot set does not have it.
    Missed,
    /// No hot set, or arguments too long for one.
    NoHotSet,
    Unhashable(serde_json::Error),
}

impl<T> Asked<T> {
    /// The start of a call of `backend` (`None`: the default) after its hot set was asked.
    fn start(
        self,
        spec: &'static Spec,
        inline: Inline,
        args: &[Arg<'_>],
        backend: Option<&Arc<Backend>>,
    ) -> Start<T> {
        match self {
            Asked::Hit(value) => Start::Hot(value),
            Asked::Missed => Start::Ticket(Some(Ticket {
                key: TicketKey::Args(inline, backend.map(Lent::of)),
                spec,
            })),
            Asked::Unhashable(e) => {
                match backend {
                    Some(backend) => backend.counters.bump(Count::Bypassed),
                    None => bump_uncached(Count::Bypassed),
                }
                unhashable(spec, &e);
                Start::Ticket(None)
            }
            Asked::NoHotSet => Start::Ticket(match backend {
                Some(backend) => make_hashed(Lent::of(backend), spec, &[], args),
                None => hashed_typed(spec, &[], args),
            }),
        }
    }
}

/// Asks the hot set in front of `backend` for the call, writing the arguments' JSON into
/// `inline` on the way.
#[inline(always)]
fn ask<T>(
    backend: &Backend,
    spec: &'static Spec,
    args: &[Arg<'_>],
    reuse: Option<Reuse<T>>,
    inline: &mut Inline,
) -> Asked<T> {
    if backend.hot().is_none() {
        return Asked::NoHotSet;
    }
    match keys::write_args(inline, args) {
        Ok(true) => {}
        // Too long to keep inline: streamed into the digest.
        Ok(false) => return Asked::NoHotSet,
        Err(e) => return Asked::Unhashable(e),
    }
    let hit = reuse.filter(|_| !spec.wants_ttl()).and_then(|reuse| {
        let probe = Probe::of_inline(spec.id(), backend.id, inline);
        hot_hit(backend, spec, &probe, reuse, || {
            keys::from_json(
                &backend.prefix,
                spec.namespace,
                spec.function,
                inline.as_slice(),
            )
        })
    });
    match hit {
        Some(value) => Asked::Hit(value),
        None => Asked::Missed,
    }
}

/// The ticket of a call keyed by the hash of its arguments, its key made: the arguments' JSON
/// streamed into the digest. For a method or a generic function `types` holds
/// `type_name::<Self>()` and the type arguments, so that instantiations and types never share
/// entries.
pub fn hashed_typed(
    spec: &'static Spec,
    types: &[&'static str],
    args: &[Arg<'_>],
) -> Option<Ticket> {
    if !enabled::usual() {
        if probe::active() {
            probe::record(hashed_entry(None::<&Cache>, spec, types, args));
            return None;
        }
        if inside_write_of(spec.namespace) {
            bump_uncached(Count::Bypassed);
            return None;
        }
    }
    make_hashed(current()?, spec, types, args)
}

/// [`hashed_typed`] on the cache `cache` names.
pub fn hashed_typed_in<'c>(
    cache: impl CacheRef<'c>,
    spec: &'static Spec,
    types: &[&'static str],
    args: &[Arg<'_>],
) -> Option<Ticket> {
    if !enabled::usual() {
        if probe::active() {
            probe::record(hashed_entry(Some(cache), spec, types, args));
            return None;
        }
        if inside_write_of(spec.namespace) {
            bump_uncached(Count::Bypassed);
            return None;
        }
    }
    make_hashed(Lent::of(explicit(cache)?), spec, types, args)
}

fn make_hashed(
    backend: Lent,
    spec: &'static Spec,
    types: &[&'static str],
    args: &[Arg<'_>],
) -> Option<Ticket> {
    match keys::hashed(&backend.prefix, spec.namespace, spec.function, types, args) {
        Ok(key) => Some(Ticket {
            key: TicketKey::Made(key, backend),
            spec,
        }),
        Err(e) => {
            backend.counters.bump(Count::Bypassed);
            unhashable(spec, &e);
            None
        }
    }
}

/// Arguments that do not serialize: the call runs uncached.
fn unhashable(spec: &Spec, e: &serde_json::Error) {
    throttled!(
        warn,
        function = spec.function,
        "arguments cannot be serialized into a cache key, running uncached: {e}"
    );
}

/// The ticket of a call of the process default cache with a static key or a key builder's
/// result.
pub fn keyed(spec: &'static Spec, key: impl Display) -> Option<Ticket> {
    if !enabled::usual() {
        if probe::active() {
            probe::record(keyed_entry(None::<&Cache>, spec, key));
            return None;
        }
        if inside_write_of(spec.namespace) {
            bump_uncached(Count::Bypassed);
            return None;
        }
    }
    make_keyed(current()?, spec, key)
}

/// [`keyed`] on the cache `cache` names.
pub fn keyed_in<'c>(
    cache: impl CacheRef<'c>,
    spec: &'static Spec,
    key: impl Display,
) -> Option<Ticket> {
    if !enabled::usual() {
        if probe::active() {
            probe::record(keyed_entry(Some(cache), spec, key));
            return None;
        }
        if inside_write_of(spec.namespace) {
            bump_uncached(Count::Bypassed);
            return None;
        }
    }
    make_keyed(Lent::of(explicit(cache)?), spec, key)
}

fn make_keyed(backend: Lent, spec: &'static Spec, key: impl Display) -> Option<Ticket> {
    let key = keys::explicit(&backend.prefix, spec.namespace, key);
    Some(Ticket {
        key: TicketKey::Made(key, backend),
        spec,
    })
}

/// The process default cache, unless caching is off or there is none.
fn current() -> Option<Lent> {
    let backend = enabled::is_enabled().then(default::current).flatten();
    if backend.is_none() {
        bump_uncached(Count::Bypassed);
    }
    backend
}

/// The cache `cache` names, unless caching is off or it names none.
fn explicit<'c>(cache: impl CacheRef<'c>) -> Option<&'c Arc<Backend>> {
    let Some(cache) = cache.cache() else {
        bump_uncached(Count::Bypassed);
        return None;
    };
    let backend = cache.backend();
    if !enabled::is_enabled() {
        backend.counters.bump(Count::Bypassed);
        return None;
    }
    Some(backend)
}

/// The value the hot set of this thread, in front of `backend`, keeps for `probe`, if it can
/// be served.
/// `key` makes the call's key, for the one hit in so many that is sampled (most requested
/// keys).
fn hot_hit<T>(
    backend: &Backend,
    spec: &'static Spec,
    probe: &Probe<'_>,
    reuse: Reuse<T>,
    key: impl FnOnce() -> String,
) -> Option<T> {
    let hot = backend.hot()?;
    let value = hot::get(probe, hot.epochs, reuse.fetch)?;
    let tick = backend
        .counters
        .hit(spec.namespace_slot(), backend.remote());
    if sampled(tick) {
        backend.top.record(key);
    }
    Some(value)
}

impl Ticket {
    /// The value this thread's hot set keeps for this call, if it can be served and was not
    /// asked for already.
    fn hot_hit<T>(&self, reuse: Option<Reuse<T>>) -> Option<T> {
        let reuse = reuse?;
        if self.spec.wants_ttl() {
            // Those want the time left, which only the store tells.
            return None;
        }
        match &self.key {
            TicketKey::Args(..) => None,
            // Hashing the key is left to backends with hot sets.
            TicketKey::Made(key, backend) => backend.hot().and_then(|_| {
                let probe = Probe::new(self.spec.id(), backend.id, key.as_bytes());
                hot_hit(backend, self.spec, &probe, reuse, || key.clone())
            }),
        }
    }

    /// The call with its key made, or `None` to run uncached (caching was switched off or
    /// no default cache is there any more). What identifies it in a hot set is kept only
    /// when a lookup may copy its value there: for values that can be cloned, on a cache
    /// with hot sets, in functions that do not ask for the time left.
    pub(super) fn into_keyed(self, reusable: bool) -> Option<Keyed> {
        let spec = self.spec;
        let fills = |backend: &Backend| reusable && backend.hot().is_some() && !spec.wants_ttl();
        match self.key {
            TicketKey::Args(args, backend) => {
                let backend = match backend {
                    Some(backend) => backend,
                    None => current()?,
                };
                let key = keys::from_json(
                    &backend.prefix,
                    spec.namespace,
                    spec.function,
                    args.as_slice(),
                );
                let ident = fills(&backend).then(|| args.as_slice().into());
                Some(Keyed::new(
                    backend,
                    key,
                    spec,
                    ident.map_or(Ident::None, Ident::Args),
                ))
            }
            TicketKey::Made(key, backend) => {
                let ident = if fills(&backend) {
                    Ident::Key
                } else {
                    Ident::None
                };
                Some(Keyed::new(backend, key, spec, ident))
            }
        }
    }
}

/// What a call is after its hot set was asked: its value, or the call to make (`None`: run
/// uncached).
pub(super) fn prepare<T>(start: Start<T>, reuse: Option<Reuse<T>>) -> Result<T, Option<Keyed>> {
    let ticket = match start {
        Start::Hot(value) => return Ok(value),
        Start::Ticket(None) => return Err(None),
        Start::Ticket(Some(ticket)) => ticket,
    };
    match ticket.hot_hit(reuse) {
        Some(value) => Ok(value),
        None => Err(ticket.into_keyed(reuse.is_some())),
    }
}
