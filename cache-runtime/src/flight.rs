//! Single-flight: concurrent misses of one key in this process run the body once; the other
//! callers wait for its encoded result.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::sync::lock;

type Outcome = Option<Arc<[u8]>>;

/// The flights under way, by key. Touched on misses only, never on hits.
#[derive(Default)]
pub(crate) struct Flights {
    running: Mutex<HashMap<Box<str>, watch::Receiver<Option<Outcome>>>>,
}

pub(crate) enum Join<'a> {
    /// This caller runs the body and must [`Lead::land`] its result.
    Lead(Lead<'a>),
    /// Another caller is running the body; wait for it with [`follow`].
    Follow(watch::Receiver<Option<Outcome>>),
}

/// The caller running the body. Dropped without landing (the body panicked or the call was
/// cancelled), it lets the followers go, and one of them leads instead.
pub(crate) struct Lead<'a> {
    flights: &'a Flights,
    key: &'a str,
    tx: watch::Sender<Option<Outcome>>,
}

impl Flights {
    pub(crate) fn join<'a>(&'a self, key: &'a str) -> Join<'a> {
        // Every operation on the map is a single insert or remove.
        let mut running = lock(&self.running);
        if let Some(rx) = running.get(key) {
            return Join::Follow(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        running.insert(key.into(), rx);
        Join::Lead(Lead {
            flights: self,
            key,
            tx,
        })
    }
}

impl Lead<'_> {
    /// Hands the encoded result (or `None`: nothing to share, such as an `Err`) to the
    /// followers.
    pub(crate) fn land(self, outcome: Outcome) {
        self.tx.send_replace(Some(outcome));
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        let mut running = lock(&self.flights.running);
        if running
            .get(self.key)
            .is_some_and(|rx| rx.same_channel(&self.tx.subscribe()))
        {
            running.remove(self.key);
        }
    }
}

/// Waits for the leader: `Some(bytes)` to share, `None` when there is nothing to share (an
/// `Err`/`None` result, a panic, a cancellation), and the follower must try again.
pub(crate) async fn follow(mut rx: watch::Receiver<Option<Outcome>>) -> Outcome {
    match rx.wait_for(Option::is_some).await {
        Ok(landed) => landed.clone().flatten(),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leads_the_others_follow_and_a_dropped_leader_frees_them() {
        let flights = Flights::default();
        let Join::Lead(lead) = flights.join("k") else {
            panic!("first caller leads")
        };
        let Join::Follow(rx) = flights.join("k") else {
            panic!("second caller follows")
        };
        lead.land(Some(Arc::from(&b"42"[..])));
        assert_eq!(follow(rx).await.as_deref(), Some(&b"42"[..]));
        assert!(
            matches!(flights.join("k"), Join::Lead(_)),
            "landed flights are gone"
        );

        let Join::Lead(lead) = flights.join("k") else {
            panic!()
        };
        let Join::Follow(rx) = flights.join("k") else {
            panic!()
        };
        drop(lead);
        assert_eq!(
            follow(rx).await,
            None,
            "an abandoned flight frees its followers"
        );
    }
}
