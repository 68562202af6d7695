//! Single-flight: concurrent misses of one key in this process run the body once; the other
//! callers wait for its encoded result. A flight belongs to the fence its leader read: a call
//! that read another fence (a clear happened in between) never joins it, and leads its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::fence::Era;
use crate::sync::lock;

type Outcome = Option<Arc<[u8]>>;

/// The flights under way, by key. Touched on misses only, never on hits.
#[derive(Default)]
pub(crate) struct Flights {
    running: Mutex<HashMap<Box<str>, Flight>>,
}

/// A flight under way: the era of its leader's miss, and where its result lands.
struct Flight {
    era: Era,
    rx: watch::Receiver<Option<Outcome>>,
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
    /// Joins the flight of `key` in `era`, or starts one. A flight of another era began
    /// before a clear that this call began after: this call leads a new flight, which later
    /// calls join, while the old one's followers still get its result.
    pub(crate) fn join<'a>(&'a self, key: &'a str, era: Era) -> Join<'a> {
        // Every operation on the map is a single insert or remove.
        let mut running = lock(&self.running);
        if let Some(flight) = running.get(key) {
            if flight.era == era {
                return Join::Follow(flight.rx.clone());
            }
        }
        let (tx, rx) = watch::channel(None);
        running.insert(key.into(), Flight { era, rx });
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
            .is_some_and(|flight| flight.rx.same_channel(&self.tx.subscribe()))
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
    use crate::fence::Fence;

    const NONE: Era = Era {
        fence: None,
        clears: 0,
    };

    #[tokio::test]
    async fn one_leads_the_others_follow_and_a_dropped_leader_frees_them() {
        let flights = Flights::default();
        let Join::Lead(lead) = flights.join("k", NONE) else {
            panic!("first caller leads")
        };
        let Join::Follow(rx) = flights.join("k", NONE) else {
            panic!("second caller follows")
        };
        lead.land(Some(Arc::from(&b"42"[..])));
        assert_eq!(follow(rx).await.as_deref(), Some(&b"42"[..]));
        assert!(
            matches!(flights.join("k", NONE), Join::Lead(_)),
            "landed flights are gone"
        );

        let Join::Lead(lead) = flights.join("k", NONE) else {
            panic!()
        };
        let Join::Follow(rx) = flights.join("k", NONE) else {
            panic!()
        };
        drop(lead);
        assert_eq!(
            follow(rx).await,
            None,
            "an abandoned flight frees its followers"
        );
    }

    #[tokio::test]
    async fn a_call_under_another_fence_leads_a_flight_of_its_own() {
        let flights = Flights::default();
        let before = Era {
            fence: Some(Fence([0, 0])),
            clears: 0,
        };
        let after = Era {
            fence: Some(Fence([0, 1])),
            ..before
        };
        let Join::Lead(old) = flights.join("k", before) else {
            panic!("first caller leads")
        };
        let Join::Follow(old_follower) = flights.join("k", before) else {
            panic!("same fence: follows")
        };
        let Join::Lead(new) = flights.join("k", after) else {
            panic!("a clear in between: leads")
        };
        let Join::Follow(new_follower) = flights.join("k", after) else {
            panic!("later calls join the new flight")
        };
        old.land(Some(Arc::from(&b"old"[..])));
        assert_eq!(follow(old_follower).await.as_deref(), Some(&b"old"[..]));
        assert!(
            matches!(flights.join("k", after), Join::Follow(_)),
            "the old leader's end leaves the new flight in place"
        );
        new.land(Some(Arc::from(&b"new"[..])));
        assert_eq!(follow(new_follower).await.as_deref(), Some(&b"new"[..]));
        // A local clear tells eras apart when the store cannot tell the fence.
        let Join::Lead(_unknown) = flights.join("k", NONE) else {
            panic!("leads")
        };
        let later = Era { clears: 1, ..NONE };
        assert!(matches!(flights.join("k", later), Join::Lead(_)));
    }
}
