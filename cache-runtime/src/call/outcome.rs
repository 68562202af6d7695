//! [`Outcome`]: which part of a cached function's result is stored and shared.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// How a cached function's result is shared and stored: all of a plain value, the `Ok` of a
/// `Result`, the `Some` of an `Option`. The macro names a function's value type with it.
pub trait Outcome {
    /// What is stored: the plain value, `T` of `Result<T, E>`, `T` of `Option<T>`.
    type Value: Serialize + DeserializeOwned;
    /// The part of the result to store, if any: the value, or something that serializes as
    /// it does.
    fn cacheable(&self) -> Option<impl Serialize + '_>;
    /// The result for a stored value.
    fn from_value(value: Self::Value) -> Self;
    /// Whether the body failed, so that a stale copy is better (`Err`).
    fn failed(&self) -> bool {
        false
    }
    /// The stored form of [`cacheable`](Self::cacheable)'s part, if any: its JSON, unless
    /// the outcome's values have a format of their own.
    fn encoded(&self) -> Option<Result<Vec<u8>, serde_json::Error>> {
        self.cacheable().map(|value| crate::codec::encode(&value))
    }
    /// A stored value: JSON, unless the outcome's values have a format of their own (what
    /// [`encoded`](Self::encoded) writes).
    fn decode(bytes: &[u8]) -> Result<Self::Value, serde_json::Error> {
        crate::codec::decode(bytes)
    }
    /// Told when the body ran and its result could not be stored: the store could not be
    /// asked (fail-open) or the call ran uncached. The response cache layer says `SKIP`.
    fn unstored(&mut self) {}
}

/// What is stored of a `Result` (its `Ok` value) or an `Option` (its `Some` value), without
/// the serde bounds of [`Outcome`]: the macro names a function's value type with it, so that
/// a value type that cannot be stored is reported once, by the check of `Kind`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `Result` or an `Option`, so `#[cache]` cannot tell which part of it to store",
    label = "`#[cache]` stores the `Ok` value of a `Result` and the `Some` value of an `Option`",
    note = "a `Result` or `Option` of your own: write `returns = \"value\"` to store it whole"
)]
pub trait Returns {
    /// The `T` of `Result<T, E>` or `Option<T>`.
    type Value;
}

impl<T, E> Returns for Result<T, E> {
    type Value = T;
}

impl<T> Returns for Option<T> {
    type Value = T;
}

/// A plain value, stored whole.
pub(crate) struct Plain<T>(pub(crate) T);

impl<T: Serialize + DeserializeOwned> Outcome for Plain<T> {
    type Value = T;
    fn cacheable(&self) -> Option<impl Serialize + '_> {
        Some(&self.0)
    }
    fn from_value(value: T) -> Self {
        Plain(value)
    }
}

impl<T: Serialize + DeserializeOwned, E> Outcome for Result<T, E> {
    type Value = T;
    fn cacheable(&self) -> Option<impl Serialize + '_> {
        self.as_ref().ok()
    }
    fn from_value(value: T) -> Self {
        Ok(value)
    }
    fn failed(&self) -> bool {
        self.is_err()
    }
}

impl<T: Serialize + DeserializeOwned> Outcome for Option<T> {
    type Value = T;
    fn cacheable(&self) -> Option<impl Serialize + '_> {
        self.as_ref()
    }
    fn from_value(value: T) -> Self {
        Some(value)
    }
}
