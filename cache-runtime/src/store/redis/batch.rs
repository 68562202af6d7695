//! Lookups that start together go out together: while more than [`BATCH_ABOVE`] lookups of a
//! store are in flight, the first lookup of a moment yields once to the scheduler, the
//! lookups that start meanwhile queue behind it, and it sends all their keys in one `MGET`
//! (its own alone: a `GET`). With fewer in flight, each lookup sends its own `GET`.
//!
//! From many tasks, a `GET` per lookup costs Redis a command each and redis-rs a request
//! each (a channel send, a reply slot, a parse); one `MGET` costs one of each, and its reply
//! carries the same bytes. When a reply wakes many tasks at once, they start their next
//! lookups one after the other on the same workers, and those make one batch. Nothing is held
//! back for a round trip: a lookup waits at most for the tasks that were ready before it, so
//! a few tasks lose nothing (holding lookups back while others were in flight cost 4 tasks
//! half their hits, and 16 tasks a quarter).
//!
//! A lookup that gives up (cancelled) only closes its reply; a leader cancelled before it
//! sent leaves its followers no answer, and each then sends its own `GET`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::link::Link;
use redis::RedisError;
use tokio::sync::oneshot;

/// A failed command; shared, because one failed `MGET` fails every lookup it carried.
pub(crate) type Failure = Arc<RedisError>;

/// What a lookup gets: the stored bytes, none, or the error of its command.
pub(crate) type Reply = Result<Option<Vec<u8>>, Failure>;

/// The most keys one `MGET` asks for; lookups beyond it send their own `GET`s.
const MAX_BATCH: usize = 256;
/// Lookups go out one `GET` each while at most this many are in flight. Below that, the
/// extra hop of a batch (the leader's task wakes, then its followers) cost more than the
/// commands it saved: batching from 16 tasks served 0.91 of the hits of plain `GET`s.
const BATCH_ABOVE: usize = 16;

/// The lookups of one store that wait for their leader.
#[derive(Default)]
pub(crate) struct Batcher {
    /// Lookups of this store under way.
    in_flight: AtomicUsize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// A leader has yielded and will take `waiting`.
    leading: bool,
    waiting: Vec<Waiter>,
}

/// What a lookup is in its moment.
enum Role {
    /// The first: it yields, then sends every key queued meanwhile.
    Lead,
    /// Queued behind a leader.
    Follow(oneshot::Receiver<Reply>),
    /// Its leader's batch is full.
    Alone,
}

struct Waiter {
    key: String,
    reply: oneshot::Sender<Reply>,
}

impl Batcher {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a flag and a list, consistent after every statement.
        crate::sync::lock(&self.state)
    }

    /// Reads `key` on `conn`: as the leader of the lookups that start meanwhile, or as one of
    /// them.
    pub(crate) async fn get(&self, conn: &mut Link, key: &str) -> Reply {
        let counted = InFlight::enter(&self.in_flight);
        // A cluster's keys are on several nodes: one `MGET` would be split by slot again.
        if counted.0 <= BATCH_ABOVE || conn.is_cluster() {
            return get_alone(conn, key).await;
        }
        // Boxed: the batched path's future is large, and every lookup's future (a lone one's
        // too) would otherwise carry and move its size.
        Box::pin(self.batched(conn, key)).await
    }

    /// [`get`](Self::get) among many lookups in flight.
    async fn batched(&self, conn: &mut Link, key: &str) -> Reply {
        match self.role(key) {
            Role::Lead => self.lead(conn, key).await,
            Role::Follow(rx) => match rx.await {
                Ok(reply) => reply,
                // The leader was cancelled before it answered.
                Err(_) => get_alone(conn, key).await,
            },
            Role::Alone => get_alone(conn, key).await,
        }
    }

    fn role(&self, key: &str) -> Role {
        let mut state = self.lock();
        if !state.leading {
            state.leading = true;
            Role::Lead
        } else if state.waiting.len() < MAX_BATCH {
            let (reply, rx) = oneshot::channel();
            state.waiting.push(Waiter {
                key: key.to_owned(),
                reply,
            });
            Role::Follow(rx)
        } else {
            // A full batch: this one goes alone rather than waiting for another.
            Role::Alone
        }
    }

    async fn lead(&self, conn: &mut Link, key: &str) -> Reply {
        let leading = Leading(Some(self));
        // Lets the tasks that are ready now run first; those that look up a key queue.
        tokio::task::yield_now().await;
        let batch = leading.take();
        if batch.is_empty() {
            return get_alone(conn, key).await;
        }
        let mut mget = redis::cmd("MGET");
        mget.arg(key);
        for waiter in &batch {
            mget.arg(&waiter.key);
        }
        let reply: Result<Vec<Option<Vec<u8>>>, RedisError> = mget.query_async(conn).await;
        match reply {
            Ok(values) if values.len() == batch.len() + 1 => {
                let mut values = values.into_iter();
                let own = values.next().flatten();
                for (waiter, value) in batch.into_iter().zip(values) {
                    let _ = waiter.reply.send(Ok(value));
                }
                Ok(own)
            }
            Ok(values) => {
                let counts = format!("{} keys, {} values", batch.len() + 1, values.len());
                let e = RedisError::from((
                    redis::ErrorKind::Parse,
                    "MGET answered another number of values than keys",
                    counts,
                ));
                fail(batch, e)
            }
            Err(e) => fail(batch, e),
        }
    }
}

/// The error of a batch, for each of its lookups.
fn fail(batch: Vec<Waiter>, e: RedisError) -> Reply {
    let e = Arc::new(e);
    for waiter in batch {
        let _ = waiter.reply.send(Err(Arc::clone(&e)));
    }
    Err(e)
}

async fn get_alone(conn: &mut Link, key: &str) -> Reply {
    redis::cmd("GET")
        .arg(key)
        .query_async(conn)
        .await
        .map_err(Arc::new)
}

/// One lookup counted in flight until it is dropped, ended or cancelled.
struct InFlight<'a>(usize, &'a AtomicUsize);

impl<'a> InFlight<'a> {
    /// Counts one more, and knows how many that makes.
    fn enter(count: &'a AtomicUsize) -> Self {
        InFlight(count.fetch_add(1, Ordering::Relaxed) + 1, count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.1.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A leader that has not taken its batch yet. Dropped before that (its caller cancelled), it
/// sends the followers away to ask for themselves and lets the next lookup lead.
struct Leading<'a>(Option<&'a Batcher>);

impl Leading<'_> {
    /// The lookups that queued behind this leader, taken: later ones have a leader of their
    /// own.
    fn take(mut self) -> Vec<Waiter> {
        self.0.take().map_or_else(Vec::new, end)
    }
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        if let Some(batcher) = self.0.take() {
            drop(end(batcher));
        }
    }
}

fn end(batcher: &Batcher) -> Vec<Waiter> {
    let mut state = batcher.lock();
    state.leading = false;
    std::mem::take(&mut state.waiting)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_takes_the_lookups_queued_behind_it_or_sends_them_away() {
        let batcher = Batcher::default();
        let queue = |key: &str| {
            let (reply, rx) = oneshot::channel();
            let mut state = batcher.lock();
            state.waiting.push(Waiter {
                key: key.to_owned(),
                reply,
            });
            rx
        };
        batcher.lock().leading = true;
        let leading = Leading(Some(&batcher));
        let _a = queue("a");
        let _b = queue("b");
        let batch = leading.take();
        assert_eq!(
            batch.iter().map(|w| w.key.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(!batcher.lock().leading, "the next lookup leads");
        // A leader dropped before it took its batch: the followers get no answer.
        batcher.lock().leading = true;
        let leading = Leading(Some(&batcher));
        let mut c = queue("c");
        drop(leading);
        assert!(matches!(
            c.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        assert!(!batcher.lock().leading);
        assert!(batcher.lock().waiting.is_empty());
    }
}
