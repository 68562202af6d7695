//! Lookups that arrive while one is in flight on the shared connection wait, and go out
//! together as one `MGET` when it returns.
//!
//! From many tasks, a `GET` per lookup costs Redis a command each and redis-rs a request
//! each (a channel send, a reply slot, a parse); one `MGET` of the keys that queued during a
//! round trip costs one of each, and its reply carries the same bytes. A lone lookup finds
//! nothing in flight and sends its `GET` at once, so one task waits for nothing.
//!
//! A lookup that gives up (cancelled) only closes its reply; the keys of those that gave up
//! are left out of the next `MGET`. A leader or batch that is dropped before it ends hands its
//! waiters an error-free "no answer", and they send their own `GET`s.

use std::sync::{Arc, Mutex, MutexGuard};

use redis::aio::MultiplexedConnection;
use redis::RedisError;
use tokio::sync::oneshot;

/// What a waiting lookup gets: the stored bytes, none, or the error of its `MGET`.
pub(crate) type Reply = Result<Option<Vec<u8>>, Arc<RedisError>>;

/// The most keys one `MGET` asks for; more wait for the next one.
const MAX_BATCH: usize = 512;

/// The lookups of one store that wait for the one in flight.
#[derive(Default)]
pub(crate) struct Batcher {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// A `GET` or an `MGET` of this store is in flight.
    busy: bool,
    waiting: Vec<Waiter>,
}

struct Waiter {
    key: String,
    reply: oneshot::Sender<Reply>,
}

/// What a lookup does: send its own `GET`, or wait for a batch.
pub(crate) enum Turn {
    /// Nothing was in flight: send the `GET`, then hand the lookups that queued meanwhile to
    /// a batch with [`Lead::done`].
    Lead(Lead),
    /// Queued: the reply comes from an `MGET`; a closed channel means "ask yourself".
    Wait(oneshot::Receiver<Reply>),
}

impl Batcher {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a flag and a list, consistent after every statement: a panic while
        // it was held leaves nothing half done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The turn of a lookup of `key`.
    pub(crate) fn turn(self: &Arc<Self>, key: &str) -> Turn {
        let mut state = self.lock();
        if !state.busy {
            state.busy = true;
            return Turn::Lead(Lead {
                busy: Busy(Some(Arc::clone(self))),
            });
        }
        let (reply, rx) = oneshot::channel();
        state.waiting.push(Waiter {
            key: key.to_owned(),
            reply,
        });
        Turn::Wait(rx)
    }

    /// The next batch, or `None` (and nothing in flight any more) when none waits.
    fn next(&self) -> Option<Vec<Waiter>> {
        let mut state = self.lock();
        if state.waiting.is_empty() {
            state.busy = false;
            return None;
        }
        let rest = state.waiting.len().saturating_sub(MAX_BATCH);
        let mut batch = std::mem::take(&mut state.waiting);
        state.waiting = batch.split_off(batch.len() - rest);
        Some(batch)
    }
}

/// Marks the store's lookups in flight; if dropped while it still does, nothing is in flight
/// any more and the waiters are sent away to ask for themselves.
struct Busy(Option<Arc<Batcher>>);

impl Busy {
    fn take(&mut self) -> Option<Arc<Batcher>> {
        self.0.take()
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(batcher) = self.0.take() {
            let waiting = {
                let mut state = batcher.lock();
                state.busy = false;
                std::mem::take(&mut state.waiting)
            };
            drop(waiting);
        }
    }
}

/// The lookup that found nothing in flight.
pub(crate) struct Lead {
    busy: Busy,
}

impl Lead {
    /// Called when this lookup's `GET` returned: the lookups that queued meanwhile go out as
    /// one `MGET` on `conn`, from a task of their own so that this caller returns now.
    pub(crate) fn done(mut self, conn: &MultiplexedConnection) {
        let Some(batcher) = self.busy.take() else {
            return;
        };
        let Some(batch) = batcher.next() else {
            return;
        };
        let busy = Busy(Some(batcher));
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(flush(busy, conn.clone(), batch));
            }
            // No runtime to run it on: `busy` and `batch` drop, and the waiters ask themselves.
            Err(_) => drop((busy, batch)),
        }
    }
}

/// Sends batches until none waits.
async fn flush(mut busy: Busy, mut conn: MultiplexedConnection, mut batch: Vec<Waiter>) {
    loop {
        // Those that gave up need no answer.
        batch.retain(|w| !w.reply.is_closed());
        if !batch.is_empty() {
            let mut mget = redis::cmd("MGET");
            for waiter in &batch {
                mget.arg(&waiter.key);
            }
            let reply: Result<Vec<Option<Vec<u8>>>, RedisError> = mget.query_async(&mut conn).await;
            match reply {
                Ok(values) if values.len() == batch.len() => {
                    for (waiter, value) in batch.drain(..).zip(values) {
                        let _ = waiter.reply.send(Ok(value));
                    }
                }
                Ok(values) => {
                    let e = Arc::new(RedisError::from((
                        redis::ErrorKind::Parse,
                        "MGET answered another number of values than keys",
                        format!("{} keys, {} values", batch.len(), values.len()),
                    )));
                    for waiter in batch.drain(..) {
                        let _ = waiter.reply.send(Err(Arc::clone(&e)));
                    }
                }
                Err(e) => {
                    let e = Arc::new(e);
                    for waiter in batch.drain(..) {
                        let _ = waiter.reply.send(Err(Arc::clone(&e)));
                    }
                }
            }
        }
        let Some(batcher) = busy.take() else { return };
        match batcher.next() {
            Some(next) => {
                batch = next;
                busy = Busy(Some(batcher));
            }
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(batcher: &Batcher) -> usize {
        batcher.lock().waiting.len()
    }

    #[test]
    fn the_first_leads_and_the_others_wait() {
        let batcher = Arc::new(Batcher::default());
        let Turn::Lead(lead) = batcher.turn("a") else {
            panic!("nothing was in flight")
        };
        let Turn::Wait(mut rx) = batcher.turn("b") else {
            panic!("a lookup was in flight")
        };
        assert_eq!(waiting(&batcher), 1);
        // The lead is dropped (its caller cancelled): the waiter is told to ask itself, and
        // the next lookup leads.
        drop(lead);
        assert!(rx.try_recv().is_err());
        assert_eq!(waiting(&batcher), 0);
        assert!(matches!(batcher.turn("c"), Turn::Lead(_)));
    }

    #[test]
    fn batches_take_at_most_max_batch_keys_in_arrival_order() {
        let batcher = Arc::new(Batcher::default());
        let lead = batcher.turn("lead");
        let receivers: Vec<_> = (0..MAX_BATCH + 3)
            .map(|i| batcher.turn(&i.to_string()))
            .collect();
        let first = batcher.next().expect("a batch");
        assert_eq!(first.len(), MAX_BATCH);
        assert_eq!(first[0].key, "0");
        let second = batcher.next().expect("the rest");
        assert_eq!(second.len(), 3);
        assert_eq!(second[0].key, MAX_BATCH.to_string());
        assert!(batcher.next().is_none());
        assert!(!batcher.lock().busy, "nothing in flight once none waits");
        drop((lead, receivers));
    }
}
