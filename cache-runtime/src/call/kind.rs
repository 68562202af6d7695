//! [`Kind`]: whether a function's value type can be stored, picked at compile time by autoref
//! specialization, so that a value type that cannot be stored is reported once, at the type
//! inside it that lacks serde's traits, and never by every entry point that needs them.

use std::future::Future;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::future::Call;
use super::reuse::Reuse;
use super::ticket::Start;
use crate::storable::Storable;

/// The value type `T` of a function (what is stored of its return value) and the list `P`
/// ([`Part`]s ending in [`End`]) of the types the macro found inside it. The macro calls
/// `(&&&Kind::<T, P>::NEW).pick()`, which resolves to
///
/// - [`PickStored`] when `T` can be stored: it gives [`Stored`], the engine;
/// - [`PickWhole`] when every part can be stored but `T` cannot (an `Arc` without serde's
///   `rc` feature, a type the macro does not look into): `check_whole::<T>` reports `T`;
/// - [`PickParts`] otherwise: `check_part::<X>` reports each part `X` that cannot be stored.
///
/// Exactly one of the checks fails for a value type with one unstorable part, and none for a
/// value type that can be stored, whose calls run the engine as if called directly.
pub struct Kind<T, P>(PhantomData<fn() -> (T, P)>);

impl<T, P> Kind<T, P> {
    /// The only value.
    pub const NEW: Self = Kind(PhantomData);
}

/// A list of the types inside a value type: `H`, then the list `Rest`.
pub struct Part<H, Rest>(PhantomData<fn() -> (H, Rest)>);

/// The end of a list of [`Part`]s.
pub struct End;

/// A list of [`Part`]s each of which can be stored.
pub trait AllStorable {}

impl AllStorable for End {}

impl<H: Serialize + DeserializeOwned, Rest: AllStorable> AllStorable for Part<H, Rest> {}

/// The choice for a value type that can be stored.
pub trait PickStored {
    /// The engine.
    #[inline(always)]
    fn pick(&self) -> Stored {
        Stored
    }
    /// Nothing to report.
    #[inline(always)]
    fn check_part<X: ?Sized>(&self) {}
    /// Nothing to report.
    #[inline(always)]
    fn check_whole<X: ?Sized>(&self) {}
}

impl<T: Serialize + DeserializeOwned, P> PickStored for &&Kind<T, P> {}

/// The choice for a value type whose parts can be stored but which cannot.
pub trait PickWhole {
    /// No engine: the function fails to compile.
    fn pick(&self) -> Unstored {
        Unstored
    }
    /// The parts can be stored.
    fn check_part<X: ?Sized>(&self) {}
    /// Reports the value type `X`.
    fn check_whole<X: Storable>(&self) {}
}

impl<T, P: AllStorable> PickWhole for &Kind<T, P> {}

/// The choice for a value type with a part that cannot be stored.
pub trait PickParts {
    /// No engine: the function fails to compile.
    fn pick(&self) -> Unstored {
        Unstored
    }
    /// Reports the part `X` if it cannot be stored.
    fn check_part<X: Storable>(&self) {}
    /// The parts are reported instead.
    fn check_whole<X: ?Sized>(&self) {}
}

impl<T, P> PickParts for Kind<T, P> {}

/// The engine's entry points, for a value type that can be stored: each calls the function
/// of the same name in `call`, and nothing else.
#[derive(Clone, Copy, Debug)]
pub struct Stored;

impl Stored {
    /// [`value`](super::value).
    #[inline(always)]
    pub fn value<T, B, F>(
        self,
        start: impl Into<Start<T>>,
        reuse: Option<Reuse<T>>,
        body: B,
    ) -> Call<T, impl Future<Output = T>>
    where
        T: Serialize + DeserializeOwned,
        B: FnOnce() -> F,
        F: Future<Output = T>,
    {
        super::value(start, reuse, body)
    }

    /// [`result`](super::result).
    #[inline(always)]
    pub fn result<T, E, B, F>(
        self,
        start: impl Into<Start<T>>,
        reuse: Option<Reuse<T>>,
        body: B,
    ) -> Call<Result<T, E>, impl Future<Output = Result<T, E>>>
    where
        T: Serialize + DeserializeOwned,
        B: FnOnce() -> F,
        F: Future<Output = Result<T, E>>,
    {
        super::result(start, reuse, body)
    }

    /// [`option`](super::option).
    #[inline(always)]
    pub fn option<T, B, F>(
        self,
        start: impl Into<Start<T>>,
        reuse: Option<Reuse<T>>,
        body: B,
    ) -> Call<Option<T>, impl Future<Output = Option<T>>>
    where
        T: Serialize + DeserializeOwned,
        B: FnOnce() -> F,
        F: Future<Output = Option<T>>,
    {
        super::option(start, reuse, body)
    }

    /// [`shaped`](crate::web::shape::shaped).
    #[cfg(feature = "axum")]
    #[inline(always)]
    pub fn shaped<S, B, F>(
        self,
        start: impl Into<Start<S::Value>>,
        reuse: Option<Reuse<S::Value>>,
        body: B,
    ) -> Call<S::Out, impl Future<Output = S::Out>>
    where
        S: crate::web::shape::Shape,
        B: FnOnce() -> F,
        F: Future<Output = S::Out>,
    {
        crate::web::shape::shaped::<S, B, F>(start, reuse, body)
    }
}

/// What a function whose value type cannot be stored calls instead of the engine: its body,
/// without the serde bounds that would each report the type again. Such a function never
/// compiles (a check of [`Kind`] reports the type), so this never runs.
#[derive(Clone, Copy, Debug)]
pub struct Unstored;

impl Unstored {
    /// The body's future.
    pub fn value<B: FnOnce() -> F, F>(self, start: impl Sized, reuse: impl Sized, body: B) -> F {
        let _ = (start, reuse);
        body()
    }

    /// The body's future.
    pub fn result<B: FnOnce() -> F, F>(self, start: impl Sized, reuse: impl Sized, body: B) -> F {
        let _ = (start, reuse);
        body()
    }

    /// The body's future.
    pub fn option<B: FnOnce() -> F, F>(self, start: impl Sized, reuse: impl Sized, body: B) -> F {
        let _ = (start, reuse);
        body()
    }

    /// The body's future; `S` is the shape the return type would have been stored by.
    pub fn shaped<S: ?Sized, B: FnOnce() -> F, F>(
        self,
        start: impl Sized,
        reuse: impl Sized,
        body: B,
    ) -> F {
        let _ = (start, reuse);
        body()
    }
}
