//! The sync engine: everything between a local store and the server. It owns the remote,
//! the per-path locks, the wake signals, the [`SyncStatus`], the uploader, the feed
//! follower and the negotiation. It depends on [`LocalStore`] and [`Remote`] only, never
//! on a front-end: the FUSE mount and the synced folder sit on top and tell it "these
//! paths changed" ([`SyncEngine::changed`]) or ask it "make this path fresh"
//! ([`SyncEngine::make_fresh`]).
//!
//! - `reconcile`: [`SyncEngine::sync_path`], the one place a save's fate is decided, always
//!   with `savesync_core::decide(local, base, head)`; `plan` turns the decision into an
//!   [`plan::Action`] (a pure function, table-tested) and `reconcile` carries it out.
//! - `uploader`: the durable pending queue worker (debounce, backoff, "changed again while
//!   uploading -> uploaded again").
//! - `feed`: probe, negotiate on start and on every reconnect, then follow `/events` and
//!   pull `/changes`, queueing every save the server changed; backs off while offline.
//! - `moved`: fetching the bytes of saves moved before they were downloaded.
//! - `names`: case-only renames against the server's name-collision rule.
//! - `policy`: the retry and backoff rules as pure functions.
//! - `prefetch`: many queued downloads fetched in one bulk stream, handed to `reconcile`'s
//!   download step.
//!
//! State DB and local-store calls run on tokio's blocking pool ([`SyncEngine::local`]),
//! never on an async worker.

mod feed;
mod held;
mod moved;
mod names;
pub mod plan;
mod policy;
mod prefetch;
mod reconcile;
mod status;
mod uploader;

pub use plan::SyncMode;
pub use prefetch::BulkLimits;
pub use reconcile::{Outcome, SyncError};
pub use status::SyncStatus;

use crate::local::{LocalError, LocalStore};
use crate::remote::Remote;
use savesync_core::SavePath;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The engine's timing and prefetch settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Quiet time after a local change before the upload starts.
    pub debounce: Duration,
    /// Remote changes up to this size are downloaded at once (offline play later); bigger
    /// ones are shown without their bytes by stores that can.
    pub prefetch_max_bytes: u64,
    /// An event stream that delivered no byte at all (not even a keep-alive) for this long
    /// is considered dead.
    pub event_silence: Duration,
    /// Longest wait between two reachability probes while the server is unreachable (a
    /// local change probes at once).
    pub offline_backoff_max: Duration,
    /// First retry delay of a queue entry that failed; doubles per attempt up to 30 s.
    pub retry_backoff: Duration,
    /// Limits of the bulk prefetch (`prefetch`).
    pub bulk: BulkLimits,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            debounce: Duration::from_millis(100),
            prefetch_max_bytes: 1024 * 1024,
            event_silence: Duration::from_secs(45),
            offline_backoff_max: Duration::from_secs(5 * 60),
            retry_backoff: Duration::from_millis(250),
            bulk: BulkLimits::default(),
        }
    }
}

/// The sync engine of one local store.
#[derive(Debug)]
pub struct SyncEngine {
    local: Arc<dyn LocalStore>,
    remote: Arc<dyn Remote>,
    cfg: EngineConfig,
    status: SyncStatus,
    /// Wakes the uploader when the queue changed.
    wake: tokio::sync::Notify,
    /// Wakes the feed follower: a local change (probe at once while offline) or the
    /// uploader finding the server unreachable.
    feed_wake: tokio::sync::Notify,
    /// One sync at a time per save path.
    path_locks: Mutex<HashMap<SavePath, Arc<tokio::sync::Mutex<()>>>>,
    /// Saves being fetched in bulk, parked until their sync installs them.
    prefetch: Arc<prefetch::Prefetch>,
}

/// The running tasks of an engine.
#[derive(Debug)]
pub struct EngineTasks {
    engine: Arc<SyncEngine>,
    tasks: Vec<JoinHandle<()>>,
}

impl SyncEngine {
    /// An engine over `local` and `remote`; nothing runs until [`SyncEngine::start`].
    #[must_use]
    pub fn new(
        local: Arc<dyn LocalStore>,
        remote: Arc<dyn Remote>,
        cfg: EngineConfig,
    ) -> Arc<SyncEngine> {
        Arc::new(SyncEngine {
            local,
            remote,
            cfg,
            status: SyncStatus::default(),
            wake: tokio::sync::Notify::new(),
            feed_wake: tokio::sync::Notify::new(),
            path_locks: Mutex::new(HashMap::new()),
            prefetch: Arc::default(),
        })
    }

    /// Spawn the feed follower and the uploader on the current runtime.
    #[must_use]
    pub fn start(self: &Arc<Self>) -> EngineTasks {
        let tasks = vec![
            tokio::spawn(feed::run(Arc::clone(self))),
            tokio::spawn(uploader::run(Arc::clone(self))),
        ];
        EngineTasks { engine: Arc::clone(self), tasks }
    }

    /// The settings the engine runs with.
    #[must_use]
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Online flag and last error.
    #[must_use]
    pub fn status(&self) -> &SyncStatus {
        &self.status
    }

    /// True while the server is reachable (as far as the engine last saw).
    #[must_use]
    pub fn is_online(&self) -> bool {
        self.status.is_online()
    }

    /// The last failure, until a sync goes through again.
    #[must_use]
    pub fn last_error(&self) -> Option<String> {
        self.status.last_error()
    }

    /// Saves installed from a bulk prefetch since the engine started.
    #[must_use]
    pub fn bulk_installed(&self) -> u64 {
        self.prefetch.used()
    }

    /// Bytes of saves the local store read to hash or upload.
    #[must_use]
    pub fn save_bytes_read(&self) -> u64 {
        self.local.save_bytes_read()
    }

    /// A front-end saw `paths` change: queue them (due after the debounce) and wake the
    /// uploader, and the feed follower in case the server is away. Blocking (one state DB
    /// transaction): call it from a front-end thread, not an async worker.
    pub fn changed(&self, paths: &[SavePath]) -> Result<(), LocalError> {
        if paths.is_empty() {
            return Ok(());
        }
        let due = crate::clock::now_ms() + self.cfg.debounce.as_millis() as i64;
        self.local.db().enqueue_many(paths, due)?;
        self.wake();
        Ok(())
    }

    /// A front-end queued work itself (in its own transaction): wake the workers.
    pub fn wake(&self) {
        self.wake.notify_one();
        self.feed_wake.notify_one();
    }

    /// Sync `path` now because its bytes are needed (a file being opened): downloads are
    /// not deferred, even large ones.
    pub async fn make_fresh(&self, path: &SavePath) -> Result<Outcome, SyncError> {
        self.fetch_moved(path).await?;
        self.sync_path(path, SyncMode::Open).await
    }

    fn path_lock(&self, path: &SavePath) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.path_locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Bounded by the paths synced at once: unused locks are dropped as we go.
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        Arc::clone(locks.entry(path.clone()).or_default())
    }

    /// Run `f` on the local store on tokio's blocking pool: reading, hashing and installing
    /// files never runs on an async worker.
    async fn local<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn LocalStore) -> T + Send + 'static,
    ) -> T {
        let local = Arc::clone(&self.local);
        match tokio::task::spawn_blocking(move || f(&*local)).await {
            Ok(v) => v,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => panic!("local store task cancelled: {e}"),
            },
        }
    }

    /// Run a short state DB step (the queue, sync records, the feed cursor: no file I/O)
    /// right here on the async worker. A hop to the blocking pool costs two thread
    /// wake-ups; a synced save took seven of them, and draining 3,000 queued saves cost
    /// the daemon 760-970 µs of CPU per save that way against 526-536 µs with none. Such a
    /// step takes microseconds; at worst it waits behind another commit or a WAL checkpoint
    /// (milliseconds), holding up one of the runtime's workers meanwhile.
    fn bookkeeping<T>(&self, f: impl FnOnce(&dyn LocalStore) -> T) -> T {
        f(&*self.local)
    }
}

impl EngineTasks {
    /// Give queued work up to `limit` to reach the server (used on clean shutdown; what
    /// does not make it stays queued in the state DB for the next run).
    pub async fn drain(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline && self.engine.is_online() {
            match self.engine.local(|l| l.db().pending_count()).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    self.engine.wake.notify_one();
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
