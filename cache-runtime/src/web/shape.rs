//! [`Shape`]: how a handler's return type is stored by its inner value and rebuilt into the
//! same response. The macro names the shape of a return type it recognizes by its syntax.

use std::future::Future;

use axum::http::StatusCode;
use axum::response::Html;
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::call::{through, Call, Outcome, Reuse, Start};

/// A return type stored by what it carries.
pub trait Shape {
    /// The handler's return type.
    type Out;
    /// What is stored.
    type Value: Serialize + DeserializeOwned;
    /// What to store of `out`, if anything.
    fn stored(out: &Self::Out) -> Option<impl Serialize + '_>;
    /// `out` again, from a stored value.
    fn rebuild(value: Self::Value) -> Self::Out;
    /// Whether the handler failed (an `Err`, a non-2xx status), so that a stale copy is
    /// better.
    fn failed(out: &Self::Out) -> bool {
        let _ = out;
        false
    }
}

/// `Json<T>`: stored as `T`'s JSON, the same entry a function returning `T` stores.
pub struct JsonOf<T>(std::marker::PhantomData<T>);

impl<T: Serialize + DeserializeOwned> Shape for JsonOf<T> {
    type Out = Json<T>;
    type Value = T;
    fn stored(out: &Json<T>) -> Option<impl Serialize + '_> {
        Some(&out.0)
    }
    fn rebuild(value: T) -> Json<T> {
        Json(value)
    }
}

/// `Html<T>`: stored as `T` (a `String`, typically).
pub struct HtmlOf<T>(std::marker::PhantomData<T>);

impl<T: Serialize + DeserializeOwned> Shape for HtmlOf<T> {
    type Out = Html<T>;
    type Value = T;
    fn stored(out: &Html<T>) -> Option<impl Serialize + '_> {
        Some(&out.0)
    }
    fn rebuild(value: T) -> Html<T> {
        Html(value)
    }
}

/// A plain value inside another shape (`(StatusCode, String)`).
pub struct PlainOf<T>(std::marker::PhantomData<T>);

impl<T: Serialize + DeserializeOwned> Shape for PlainOf<T> {
    type Out = T;
    type Value = T;
    fn stored(out: &T) -> Option<impl Serialize + '_> {
        Some(out)
    }
    fn rebuild(value: T) -> T {
        value
    }
}

/// `(StatusCode, S)`: stored as `[status, value]` when the status is 2xx, so that the same
/// status comes back; other statuses are not stored.
pub struct StatusOf<S>(std::marker::PhantomData<S>);

impl<S: Shape> Shape for StatusOf<S> {
    type Out = (StatusCode, S::Out);
    type Value = (u16, S::Value);
    fn stored(out: &Self::Out) -> Option<impl Serialize + '_> {
        let (status, inner) = out;
        if !status.is_success() {
            return None;
        }
        S::stored(inner).map(|inner| (status.as_u16(), inner))
    }
    fn rebuild((status, value): Self::Value) -> Self::Out {
        // Only 2xx statuses are stored; anything else was written by someone else.
        let status = StatusCode::from_u16(status)
            .ok()
            .filter(StatusCode::is_success)
            .unwrap_or(StatusCode::OK);
        (status, S::rebuild(value))
    }
    fn failed(out: &Self::Out) -> bool {
        !out.0.is_success() || S::failed(&out.1)
    }
}

/// `Result<S, E>`: only `Ok` is stored.
pub struct ResultOf<S, E>(std::marker::PhantomData<(S, E)>);

impl<S: Shape, E> Shape for ResultOf<S, E> {
    type Out = Result<S::Out, E>;
    type Value = S::Value;
    fn stored(out: &Self::Out) -> Option<impl Serialize + '_> {
        out.as_ref().ok().and_then(S::stored)
    }
    fn rebuild(value: S::Value) -> Self::Out {
        Ok(S::rebuild(value))
    }
    fn failed(out: &Self::Out) -> bool {
        out.as_ref().map_or(true, S::failed)
    }
}

/// `Option<S>`: only `Some` is stored.
pub struct OptionOf<S>(std::marker::PhantomData<S>);

impl<S: Shape> Shape for OptionOf<S> {
    type Out = Option<S::Out>;
    type Value = S::Value;
    fn stored(out: &Self::Out) -> Option<impl Serialize + '_> {
        out.as_ref().and_then(S::stored)
    }
    fn rebuild(value: S::Value) -> Self::Out {
        Some(S::rebuild(value))
    }
}

/// The [`Outcome`] of a handler of shape `S`.
struct Shaped<S: Shape>(S::Out);

impl<S: Shape> Outcome for Shaped<S> {
    type Value = S::Value;
    fn cacheable(&self) -> Option<impl Serialize + '_> {
        S::stored(&self.0)
    }
    fn from_value(value: S::Value) -> Self {
        Shaped(S::rebuild(value))
    }
    fn failed(&self) -> bool {
        S::failed(&self.0)
    }
}

/// Cache-aside for a handler whose return type has the shape `S`.
pub fn shaped<S, B, F>(
    start: impl Into<Start<S::Value>>,
    reuse: Option<Reuse<S::Value>>,
    body: B,
) -> Call<S::Out, impl Future<Output = S::Out>>
where
    S: Shape,
    B: FnOnce() -> F,
    F: Future<Output = S::Out>,
{
    through(start.into(), reuse, body, Shaped::<S>, |shaped| shaped.0)
}
