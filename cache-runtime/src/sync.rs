//! Locks whose holder may have panicked.

use std::sync::{Mutex, MutexGuard};
#[cfg(feature = "axum")]
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, also when a thread panicked while holding it. Only for state that is
/// consistent after every statement made under the lock (a single insert, remove or push): a
/// panic then leaves nothing half done, and refusing the lock would only turn one caller's
/// panic into everybody's.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// [`lock`] for reading an `RwLock`.
#[cfg(feature = "axum")]
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// [`lock`] for writing an `RwLock`.
#[cfg(feature = "axum")]
pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
