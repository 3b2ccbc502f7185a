//! The sync engine: everything between the filesystem layer and the server.
//!
//! - `reconcile`: [`sync_path`], the one place a save's fate is decided, always with
//!   `savesync_core::decide(local, base, head)`, and the action carried out.
//! - `install`: putting downloaded bytes in place (cache file or `NAME.conflict` copy) and
//!   telling the kernel.
//! - `uploader`: the durable pending queue worker (debounce, backoff, "changed again while
//!   uploading -> uploaded again").
//! - `feed`: probe, negotiate on start and on every reconnect, then follow `/events` and
//!   pull `/changes`, queueing every save the server changed; backs off while offline.
//! - `hash_cache`: content hashes of cache files kept by stat, so a negotiation reads only
//!   the saves that changed; counts every save byte the engine reads.
//! - `policy`: the retry and backoff rules as pure functions.
//!
//! It runs on the daemon's tokio runtime; [`Engine::start`] spawns it.

mod feed;
mod hash_cache;
mod install;
mod names;
mod policy;
mod reconcile;
mod uploader;

pub(crate) use hash_cache::remember as remember_hash;
pub use reconcile::{Outcome, SyncError, SyncMode, sync_path};

use crate::savefs::SaveFs;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The running engine of one mount.
#[derive(Debug)]
pub struct Engine {
    fs: Arc<SaveFs>,
    tasks: Vec<JoinHandle<()>>,
}

impl Engine {
    /// Spawn the feed follower and the uploader on the current runtime.
    #[must_use]
    pub fn start(fs: Arc<SaveFs>) -> Engine {
        let tasks = vec![
            tokio::spawn(feed::run(Arc::clone(&fs))),
            tokio::spawn(uploader::run(Arc::clone(&fs))),
        ];
        Engine { fs, tasks }
    }

    /// Give queued work up to `limit` to reach the server (used on clean shutdown; what
    /// does not make it stays queued in the state DB for the next mount).
    pub async fn drain(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline && self.fs.is_online() {
            match self.fs.db.pending_count() {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    self.fs.wake.notify_one();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Stop all engine tasks.
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Remember a failure for `savesync status`.
pub(crate) fn note_error(fs: &SaveFs, err: &dyn std::fmt::Display) {
    *crate::savefs::lock(&fs.last_error) = Some(err.to_string());
}

/// The device is healthy again (a negotiation or an upload went through): forget the last
/// failure, so `status` does not show a stale one.
pub(crate) fn clear_error(fs: &SaveFs) {
    *crate::savefs::lock(&fs.last_error) = None;
}
