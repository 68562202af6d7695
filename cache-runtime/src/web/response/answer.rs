//! [`Answer`]: what one pass of a request through the cache engine gave, as the engine's
//! [`Outcome`]: an entry (a hit's, or a response the handler made and the layer stores), or a
//! response passed on as the handler made it.

use axum::body::Body;
use axum::http::Response;
use serde::Serialize;

use super::stored::Entry;
use crate::call::Outcome;

/// What a request got from the engine.
pub(crate) struct Answer<E> {
    /// What is served (a hit's entry, or the handler's response as stored).
    pub(crate) entry: Option<Entry>,
    /// Whether `entry` is the handler's, to store.
    store: bool,
    /// A response passed on as the handler made it, not stored (or the handler's error).
    pub(crate) passed: Option<Result<Response<Body>, E>>,
    /// Whether the handler ran for this request.
    pub(crate) ran: bool,
    /// Whether the handler's result could not be stored: the store could not be asked, or
    /// caching is off.
    pub(crate) unstored: bool,
}

impl<E> Answer<E> {
    /// The handler's response, stored as `entry`.
    pub(crate) fn stored(entry: Entry) -> Self {
        Answer {
            entry: Some(entry),
            store: true,
            passed: None,
            ran: true,
            unstored: false,
        }
    }

    /// The handler's response (or error), passed on and not stored.
    pub(crate) fn passed(response: Result<Response<Body>, E>) -> Self {
        Answer {
            entry: None,
            store: false,
            passed: Some(response),
            ran: true,
            unstored: false,
        }
    }

    /// The handler's response passed on, and `entry` (the headers it varies by) stored.
    pub(crate) fn passed_storing(response: Response<Body>, entry: Entry) -> Self {
        Answer {
            entry: Some(entry),
            store: true,
            passed: Some(Ok(response)),
            ran: true,
            unstored: false,
        }
    }
}

impl<E> Outcome for Answer<E> {
    type Value = Entry;

    fn cacheable(&self) -> Option<impl Serialize + '_> {
        self.entry.as_ref().filter(|_| self.store)
    }

    fn encoded(&self) -> Option<Result<Vec<u8>, serde_json::Error>> {
        self.entry
            .as_ref()
            .filter(|_| self.store)
            .map(Entry::encode)
    }

    fn decode(bytes: &[u8]) -> Result<Entry, serde_json::Error> {
        Entry::decode(bytes)
    }

    fn from_value(entry: Entry) -> Self {
        Answer {
            entry: Some(entry),
            store: false,
            passed: None,
            ran: false,
            unstored: false,
        }
    }

    fn unstored(&mut self) {
        self.unstored = true;
    }
}
