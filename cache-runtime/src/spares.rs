//! Per-thread spares: copies of a shared value (a connection clone, a reference to the
//! backend) that a thread's calls give back for its next calls. Cloning and dropping the
//! shared value writes a reference count on a cache line every core shares; taking a spare
//! and giving it back writes only the thread's own list.
//!
//! Each spare carries the id of the version it copies. When the value is replaced, spares of
//! older versions are not handed out again: they are dropped at the thread's next take.

use std::cell::RefCell;
use std::thread::LocalKey;

/// One thread's spares of one kind; declared in a `thread_local!`.
pub(crate) struct Spares<T> {
    list: RefCell<Vec<(u64, T)>>,
    capacity: usize,
}

impl<T> Spares<T> {
    /// An empty list that keeps at most `capacity` spares.
    pub(crate) const fn new(capacity: usize) -> Self {
        Self {
            list: RefCell::new(Vec::new()),
            capacity,
        }
    }

    /// A spare of version `id`, if this thread has one.
    #[inline]
    pub(crate) fn take(&self, id: u64) -> Option<T> {
        let (found, stale) = {
            let Ok(mut list) = self.list.try_borrow_mut() else {
                return None;
            };
            match list.last() {
                Some((version, _)) if *version == id => {
                    (list.pop().map(|(_, value)| value), Vec::new())
                }
                // Spares of a replaced version are newer than none of the current one.
                _ => (None, std::mem::take(&mut *list)),
            }
        };
        // Outside the borrow: dropping the last copy of a value may run any code.
        drop(stale);
        found
    }

    /// Runs `f` on the newest spare, if it is of version `id`, without taking it out: a
    /// borrow writes nothing but the list's borrow flag. `f` is left in place when there is
    /// no such spare (or the list is busy: `f` may make another call that asks for it).
    #[inline]
    pub(crate) fn peek<R>(&self, id: u64, f: &mut Option<impl FnOnce(&T) -> R>) -> Option<R> {
        let list = self.list.try_borrow().ok()?;
        match list.last() {
            Some((version, value)) if *version == id => f.take().map(|f| f(value)),
            _ => None,
        }
    }

    /// Keeps `value`, a copy of version `id`, for this thread's next call, unless `current`
    /// says it was replaced meanwhile or the list is full; then it is dropped.
    #[inline]
    pub(crate) fn give(&self, id: u64, current: u64, value: T) {
        if id != current {
            return;
        }
        let unkept = match self.list.try_borrow_mut() {
            Ok(mut list) if list.len() < self.capacity => {
                list.push((id, value));
                None
            }
            _ => Some(value),
        };
        // Outside the borrow, like in `take`.
        drop(unkept);
    }
}

/// [`Spares::take`] on this thread's list in `spares`.
pub(crate) fn take<T>(spares: &'static LocalKey<Spares<T>>, id: u64) -> Option<T> {
    spares.try_with(|spares| spares.take(id)).ok().flatten()
}

/// [`Spares::give`] on this thread's list in `spares`.
pub(crate) fn give<T>(spares: &'static LocalKey<Spares<T>>, id: u64, current: u64, value: T) {
    // During the thread's teardown the list is gone, and the value is dropped with the closure.
    let _ = spares.try_with(move |spares| spares.give(id, current, value));
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static KEPT: Spares<String> = const { Spares::new(2) };
    }

    #[test]
    fn spares_of_the_current_version_come_back_and_others_do_not() {
        give(&KEPT, 1, 1, "a".to_owned());
        give(&KEPT, 1, 1, "b".to_owned());
        give(&KEPT, 1, 1, "full".to_owned());
        give(&KEPT, 1, 2, "replaced".to_owned());
        assert_eq!(take(&KEPT, 1).as_deref(), Some("b"));
        assert_eq!(take(&KEPT, 2), None, "only version 1 is kept");
        assert_eq!(take(&KEPT, 1), None, "and was dropped by the take of 2");
    }
}
