//! [`Call`]: the future of a cached call, small whatever the body.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The future of a cached call. A hot-set hit is ready at once (after spending the task's
/// budget); every other call runs boxed, so that what a hit builds and moves stays small:
/// moving the whole cache-aside future cost a hot hit more than its lookup did.
pub struct Call<T, F> {
    state: State<T, F>,
}

enum State<T, F> {
    Hot(Option<T>),
    Cold(Pin<Box<F>>),
}

impl<T, F> Call<T, F> {
    pub(crate) fn hot(value: T) -> Self {
        Call {
            state: State::Hot(Some(value)),
        }
    }

    pub(crate) fn cold(future: F) -> Self {
        Call {
            state: State::Cold(Box::pin(future)),
        }
    }
}

// The value is never pinned (it is moved out whole), and the future is pinned in its box.
impl<T, F> Unpin for Call<T, F> {}

impl<T, F: Future<Output = T>> Future for Call<T, F> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match &mut self.get_mut().state {
            State::Hot(value) => {
                // No I/O happened: spend budget so that busy callers still yield.
                let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
                coop.made_progress();
                // `None` only when polled again after it completed, which callers may not do.
                value.take().map_or(Poll::Pending, Poll::Ready)
            }
            State::Cold(future) => future.as_mut().poll(cx),
        }
    }
}
