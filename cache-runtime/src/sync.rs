//! Mutexes whose holder may have panicked.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, also when a thread panicked while holding it. Only for state that is
/// consistent after every statement made under the lock (a single insert, remove or push): a
/// panic then leaves nothing half done, and refusing the lock would only turn one caller's
/// panic into everybody's.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
