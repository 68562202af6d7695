//! The call engine: what a `#[cache]` function does when it is called.
//!
//! - [`spec`]: what the attribute said;
//! - [`ticket`]: the key made (or the arguments written), the hot set asked, the cache picked;
//! - [`run`]: cache-aside with single-flight for a call the hot set did not answer;
//! - [`lock`]: the cross-process lock held around a miss;
//! - [`outcome`]: which part of a result is stored; [`reuse`]: how values are kept decoded;
//! - [`future`]: the small future a call returns;
//! - [`kind`]: whether the value type can be stored, picked at compile time.
//!
//! The entry points below are what the macro's expansion calls, through `__private`.

mod future;
mod kind;
mod lock;
mod outcome;
mod reuse;
mod run;
pub(crate) mod spec;
mod ticket;

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use future::Call;
pub use kind::{AllStorable, End, Kind, Part, PickParts, PickStored, PickWhole, Stored, Unstored};
pub use outcome::{Outcome, Returns};
pub use reuse::{Reusable, Reuse, ReuseByClone, ReuseNot};
pub use spec::Spec;
pub use ticket::{
    arg, arg_boxed, arg_option, arg_self, arg_vec, hashed, hashed_in, hashed_typed,
    hashed_typed_in, keyed, keyed_in, KeyPart, SelfKeyPart, Start, Ticket,
};

use outcome::Plain;
use ticket::prepare;

/// Cache-aside for a function returning a plain value. `body` makes the function's original
/// body: on a hit it is never called, so the hit's future does not hold the body's.
pub fn value<T, B, F>(
    start: impl Into<Start<T>>,
    reuse: Option<Reuse<T>>,
    body: B,
) -> Call<T, impl Future<Output = T>>
where
    T: Serialize + DeserializeOwned,
    B: FnOnce() -> F,
    F: Future<Output = T>,
{
    through(start.into(), reuse, body, Plain, |plain| plain.0)
}

/// Cache-aside for a body whose result is stored as the [`Outcome`] `O` it converts into
/// (`into`) and back (`out`): a plain value, an axum response type.
pub(crate) fn through<O, R, B, F>(
    start: Start<O::Value>,
    reuse: Option<Reuse<O::Value>>,
    body: B,
    into: fn(R) -> O,
    out: fn(O) -> R,
) -> Call<R, impl Future<Output = R>>
where
    O: Outcome,
    B: FnOnce() -> F,
    F: Future<Output = R>,
{
    let call = match prepare(start, reuse) {
        Ok(value) => return Call::hot(out(O::from_value(value))),
        Err(call) => call,
    };
    Call::cold(async move {
        match call {
            // A probe (`evict`) starts the call for its key only: the body never runs.
            None if crate::probe::active() => std::future::pending().await,
            None => body().await,
            Some(call) => out(call
                .run(reuse, move || async move { into(body().await) })
                .await),
        }
    })
}

/// Cache-aside for a function returning `Result`: only `Ok` is stored.
pub fn result<T, E, B, F>(
    start: impl Into<Start<T>>,
    reuse: Option<Reuse<T>>,
    body: B,
) -> Call<Result<T, E>, impl Future<Output = Result<T, E>>>
where
    T: Serialize + DeserializeOwned,
    B: FnOnce() -> F,
    F: Future<Output = Result<T, E>>,
{
    outcome(start.into(), reuse, body)
}

/// Cache-aside for a function returning `Option`: only `Some` is stored.
pub fn option<T, B, F>(
    start: impl Into<Start<T>>,
    reuse: Option<Reuse<T>>,
    body: B,
) -> Call<Option<T>, impl Future<Output = Option<T>>>
where
    T: Serialize + DeserializeOwned,
    B: FnOnce() -> F,
    F: Future<Output = Option<T>>,
{
    outcome(start.into(), reuse, body)
}

/// Cache-aside for the response cache layer: a call made with [`keyed`] or [`keyed_in`]
/// whose body's result tells what to store; with `fresh`, the lookup (and the hot set) is
/// skipped and the body's result replaces the entry.
#[cfg(feature = "axum")]
pub(crate) async fn answer<O, B, F>(
    ticket: Option<Ticket>,
    reuse: Option<Reuse<O::Value>>,
    fresh: bool,
    body: B,
) -> O
where
    O: Outcome,
    B: FnOnce() -> F,
    F: Future<Output = O>,
{
    let keyed = match (ticket, fresh) {
        (None, _) => None,
        (Some(ticket), true) => ticket.into_keyed(reuse.is_some()),
        (Some(ticket), false) => match prepare(Start::Ticket(Some(ticket)), reuse) {
            Ok(value) => return O::from_value(value),
            Err(keyed) => keyed,
        },
    };
    // Only the lookup is polled in place: what else may run (the body, a refresh) is boxed,
    // so that the future of every call, hits included, stays small to move.
    match keyed {
        Some(keyed) if fresh => Box::pin(keyed.renew(body)).await,
        Some(keyed) => keyed.run(reuse, body).await,
        None => {
            let mut outcome = Box::pin(body()).await;
            outcome.unstored();
            outcome
        }
    }
}

/// [`result`] and [`option`]: cache-aside for a body whose result tells what to store.
fn outcome<O, B, F>(
    start: Start<O::Value>,
    reuse: Option<Reuse<O::Value>>,
    body: B,
) -> Call<O, impl Future<Output = O>>
where
    O: Outcome,
    B: FnOnce() -> F,
    F: Future<Output = O>,
{
    let call = match prepare(start, reuse) {
        Ok(value) => return Call::hot(O::from_value(value)),
        Err(call) => call,
    };
    Call::cold(async move {
        match call {
            None if crate::probe::active() => std::future::pending().await,
            None => body().await,
            Some(call) => call.run(reuse, body).await,
        }
    })
}
