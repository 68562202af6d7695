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
    pub(crate) fn take(spares: &'static LocalKey<Self>, id: u64) -> Option<T> {
        let (found, stale) = spares
            .try_with(|spares| {
                let mut list = spares.list.borrow_mut();
                match list.last() {
                    Some((version, _)) if *version == id => {
                        (list.pop().map(|(_, value)| value), Vec::new())
                    }
                    // Spares of a replaced version are newer than none of the current one.
                    _ => (None, std::mem::take(&mut *list)),
                }
            })
            .unwrap_or_default();
        // Outside the borrow: dropping the last copy of a value may run any code.
        drop(stale);
        found
    }

    /// Keeps `value`, a copy of version `id`, for this thread's next call, unless `current`
    /// says it was replaced meanwhile or the list is full; then it is dropped.
    pub(crate) fn give(spares: &'static LocalKey<Self>, id: u64, current: u64, value: T) {
        if id != current {
            return;
        }
        let unkept = spares
            .try_with(|spares| {
                let mut list = spares.list.borrow_mut();
                if list.len() < spares.capacity {
                    list.push((id, value));
                    None
                } else {
                    Some(value)
                }
            })
            .ok()
            .flatten();
        drop(unkept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static KEPT: Spares<String> = const { Spares::new(2) };
    }

    #[test]
    fn spares_of_the_current_version_come_back_and_others_do_not() {
        Spares::give(&KEPT, 1, 1, "a".to_owned());
        Spares::give(&KEPT, 1, 1, "b".to_owned());
        Spares::give(&KEPT, 1, 1, "full".to_owned());
        Spares::give(&KEPT, 1, 2, "replaced".to_owned());
        assert_eq!(Spares::take(&KEPT, 1).as_deref(), Some("b"));
        assert_eq!(Spares::take(&KEPT, 2), None, "only version 1 is kept");
        assert_eq!(
            Spares::take(&KEPT, 1),
            None,
            "and was dropped by the take of 2"
        );
    }
}
