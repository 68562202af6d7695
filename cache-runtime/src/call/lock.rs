//! The cross-process lock a call holds while it computes a value (`lock = true`).

use std::sync::Arc;

use crate::backend::Backend;
use crate::store::Store;

/// A cross-process lock this call holds. Released after the body; if the body panics or the
/// call is cancelled, released from a spawned task, so that other processes need not wait
/// for the lock to expire.
pub(super) struct LockGuard {
    backend: Arc<Backend>,
    key: String,
    token: Option<String>,
}

impl LockGuard {
    pub(super) fn new(backend: Arc<Backend>, key: String, token: String) -> Self {
        Self {
            backend,
            key,
            token: Some(token),
        }
    }

    pub(super) async fn release(mut self) {
        if let Some(token) = self.token.take() {
            self.backend.store.unlock(&self.key, &token).await;
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let backend = Arc::clone(&self.backend);
        let key = std::mem::take(&mut self.key);
        runtime.spawn(async move {
            backend.store.unlock(&key, &token).await;
        });
    }
}
