//! [`SyncStatus`]: what the engine tells `savesync status`: whether the server is
//! reachable and the last failure (cleared when a sync goes through again).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Online flag and last error of one engine.
#[derive(Debug, Default)]
pub struct SyncStatus {
    online: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl SyncStatus {
    /// True while the server is reachable (as far as the engine last saw).
    #[must_use]
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    /// Set the online flag; returns the previous value.
    pub(crate) fn set_online(&self, online: bool) -> bool {
        self.online.swap(online, Ordering::Relaxed)
    }

    /// The last failure, if no sync went through since.
    #[must_use]
    pub fn last_error(&self) -> Option<String> {
        self.errors().clone()
    }

    /// Remember a failure for `savesync status`.
    pub(crate) fn note_error(&self, err: &dyn std::fmt::Display) {
        *self.errors() = Some(err.to_string());
    }

    /// The device is healthy again (a negotiation or an upload went through): forget the
    /// last failure, so `status` does not show a stale one.
    pub(crate) fn clear_error(&self) {
        *self.errors() = None;
    }

    fn errors(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
