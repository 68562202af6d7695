//! [`Reuse`]: how a value of a type that can be cloned is kept decoded in the in-process
//! stores and the hot sets, picked for each value type by autoref specialization.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

/// How a value of a type that can be cloned is kept decoded in the memory store and the
/// near-cache: later hits clone it instead of parsing its JSON again. `None` for other types.
pub struct Reuse<T> {
    pub(crate) fetch: fn(&(dyn Any + Send + Sync)) -> Option<T>,
    pub(crate) keep: fn(&T) -> Arc<dyn Any + Send + Sync>,
    pub(crate) is: fn(&(dyn Any + Send + Sync)) -> bool,
}

impl<T> Clone for Reuse<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Reuse<T> {}

/// Picks [`Reuse`] for a value type by autoref specialization: the macro calls
/// `(&&Reusable::<T>::NEW).reuse()`, which resolves to [`ReuseByClone`] when `T` can be
/// cloned and shared between threads, and to [`ReuseNot`] otherwise (also for a generic `T`
/// without those bounds).
pub struct Reusable<T>(PhantomData<fn() -> T>);

impl<T> Reusable<T> {
    /// The only value.
    pub const NEW: Self = Reusable(PhantomData);
}

/// The choice for types that can be cloned.
pub trait ReuseByClone<T> {
    /// Some [`Reuse`].
    fn reuse(&self) -> Option<Reuse<T>>;
}

impl<T: Clone + Send + Sync + 'static> ReuseByClone<T> for &Reusable<T> {
    fn reuse(&self) -> Option<Reuse<T>> {
        Some(Reuse {
            fetch: |any| any.downcast_ref::<T>().cloned(),
            keep: |value| Arc::new(value.clone()),
            is: |any| any.is::<T>(),
        })
    }
}

/// The choice for every other type.
pub trait ReuseNot<T> {
    /// No [`Reuse`].
    fn reuse(&self) -> Option<Reuse<T>>;
}

impl<T> ReuseNot<T> for Reusable<T> {
    fn reuse(&self) -> Option<Reuse<T>> {
        None
    }
}
