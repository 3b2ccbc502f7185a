//! [`SaveFs`]: the mount's front-end below FUSE. It owns the open handles and implements
//! every POSIX operation the mount supports on the mount's local store
//! ([`crate::tree::LocalTree`]: inode table, cache files, state DB) as a plain method
//! returning plain structs, so it is tested without FUSE (see `fs/tests`). Each change it
//! makes to a save is told to the sync engine ([`crate::sync::SyncEngine`]); opening a
//! stale save asks the engine to make it fresh first. `crate::fuse` only translates kernel
//! requests into these calls.
//!
//! Locking: the tree's `table` and `handles` are short-held std mutexes, never held across
//! disk syncs of other files or any network I/O. The only network call a FUSE thread makes is
//! the fresh-on-open download of the file being opened (see `ops_file::open`), which runs
//! with no lock held, so a slow download never stalls other files.
//!
//! Layout of `data_dir`: `state.db`, `cache/<ino>` (bytes of files), `conflicts/<ino>`
//! (the other side's version shown as `NAME.conflict`), `tmp/` (downloads in flight),
//! `space.reserve` (room to record deletes on a full disk, see `tree/space.rs`).

mod attr;
mod cache_check;
mod handles;
pub mod history;
mod ops_dir;
mod ops_file;
mod ops_special;
mod resolve;

pub use crate::tree::Invalidation;
pub use attr::{Attr, DirEntry, SetAttr, Statfs, TimeSet};
pub use cache_check::CacheCheckRun;
pub use ops_dir::RenameOptions;

pub(crate) use crate::clock::{from_ns, now_ms, now_ns, to_ns};
pub(crate) use crate::tree::{cache_stat, lock};

use crate::error::{FsError, FsResult};
use crate::remote::Remote;
use crate::sync::{BulkLimits, EngineConfig, SyncEngine};
use crate::tree::{LocalTree, TreeConfig};
use handles::Handles;
use savesync_core::SavePath;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Settings of one mount.
#[derive(Debug, Clone)]
pub struct FsConfig {
    pub data_dir: PathBuf,
    /// Owner and modes shown for saves that arrive from the server.
    pub uid: u32,
    pub gid: u32,
    pub file_mode: u32,
    pub dir_mode: u32,
    /// Quiet time after a close/fsync before the upload starts.
    pub debounce: Duration,
    /// Remote changes up to this size are downloaded at once (offline play later).
    pub prefetch_max_bytes: u64,
    /// An event stream that delivered no byte at all (not even a keep-alive) for this long
    /// is considered dead.
    pub event_silence: Duration,
    /// Longest wait between two reachability probes while the server is unreachable (a
    /// local change probes at once).
    pub offline_backoff_max: Duration,
    /// First retry delay of a queue entry that failed; doubles per attempt up to 30 s.
    pub retry_backoff: Duration,
    /// List `.history` in the root directory (it is always reachable by name).
    pub show_history: bool,
    /// Limits of the bulk prefetch of many remote saves at once.
    pub bulk: BulkLimits,
}

impl FsConfig {
    /// Defaults for `data_dir`, owned by the calling user.
    #[must_use]
    pub fn new(data_dir: impl Into<PathBuf>) -> FsConfig {
        FsConfig {
            data_dir: data_dir.into(),
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            file_mode: 0o644,
            dir_mode: 0o755,
            debounce: Duration::from_millis(100),
            prefetch_max_bytes: 1024 * 1024,
            event_silence: Duration::from_secs(45),
            offline_backoff_max: Duration::from_secs(5 * 60),
            retry_backoff: Duration::from_millis(250),
            show_history: false,
            bulk: BulkLimits::default(),
        }
    }
}

/// The filesystem layer of one mount: POSIX operations on the mount's [`LocalTree`],
/// telling its [`SyncEngine`] what changed.
#[derive(Debug)]
pub struct SaveFs {
    pub(crate) cfg: FsConfig,
    pub(crate) tree: Arc<LocalTree>,
    pub(crate) engine: Arc<SyncEngine>,
    handles: Mutex<Handles>,
    pub(crate) rt: tokio::runtime::Handle,
    /// The read-only `.history` tree (built lazily, on first use).
    history: history::HistoryDir,
}

impl FsConfig {
    /// The local store's part.
    #[must_use]
    pub fn tree(&self) -> TreeConfig {
        TreeConfig {
            data_dir: self.data_dir.clone(),
            uid: self.uid,
            gid: self.gid,
            file_mode: self.file_mode,
            dir_mode: self.dir_mode,
        }
    }

    /// The engine's part.
    #[must_use]
    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            debounce: self.debounce,
            prefetch_max_bytes: self.prefetch_max_bytes,
            event_silence: self.event_silence,
            offline_backoff_max: self.offline_backoff_max,
            retry_backoff: self.retry_backoff,
            bulk: self.bulk,
        }
    }
}

impl SaveFs {
    /// Open the mount's tree in `cfg.data_dir` (checking the cache against the state DB)
    /// and an engine over it and `remote`; the engine runs once started
    /// (`fs.engine().start()`, on `rt`).
    pub fn load(
        cfg: FsConfig,
        remote: Arc<dyn Remote>,
        rt: tokio::runtime::Handle,
    ) -> anyhow::Result<Arc<SaveFs>> {
        let tree = Arc::new(LocalTree::load(cfg.tree())?);
        let history = history::HistoryDir::new(Arc::clone(&remote), cfg.show_history);
        let engine = SyncEngine::new(Arc::clone(&tree) as _, remote, cfg.engine());
        let handles = Mutex::new(Handles::default());
        Ok(Arc::new(SaveFs { cfg, tree, engine, handles, rt, history }))
    }

    /// The settings this mount runs with.
    #[must_use]
    pub fn config(&self) -> &FsConfig {
        &self.cfg
    }

    /// The state DB (status, conflicts).
    #[must_use]
    pub fn state(&self) -> &crate::state::StateDb {
        self.tree.state()
    }

    /// The mount's local store.
    #[must_use]
    pub fn tree(&self) -> &Arc<LocalTree> {
        &self.tree
    }

    /// The mount's sync engine.
    #[must_use]
    pub fn engine(&self) -> &Arc<SyncEngine> {
        &self.engine
    }

    /// Route kernel cache invalidations to `tx` (the mount's notifier thread).
    pub fn set_invalidation_sink(&self, tx: std::sync::mpsc::Sender<Invalidation>) {
        self.tree.set_invalidation_sink(tx);
    }

    /// Bytes of cached saves the engine has read to hash or upload since the mount started.
    #[must_use]
    pub fn save_bytes_read(&self) -> u64 {
        self.engine.save_bytes_read()
    }

    /// True while the server is reachable (as far as the engine last saw).
    #[must_use]
    pub fn is_online(&self) -> bool {
        self.engine.is_online()
    }

    /// Tell the engine `paths` changed here (queued after the debounce).
    /// The queue entries are written here, in the tree's state DB, so a full disk reaches
    /// the caller as ENOSPC; then the engine is woken.
    pub(crate) fn changed(&self, paths: &[SavePath]) -> FsResult<()> {
        if paths.is_empty() {
            return Ok(());
        }
        let due = now_ms() + self.cfg.debounce.as_millis() as i64;
        self.tree.db.enqueue_many(paths, due).map_err(|e| FsError::db("queueing saves", &e))?;
        self.engine.wake();
        Ok(())
    }

    /// Statistics of the disk holding the cache.
    pub fn statfs(&self) -> FsResult<Statfs> {
        let st = nix::sys::statvfs::statvfs(&self.cfg.data_dir)
            .map_err(|e| FsError::new(e as i32, format!("statvfs of data dir: {e}")))?;
        let files = lock(&self.tree.table).len() as u64;
        Ok(Statfs {
            blocks: st.blocks(),
            bfree: st.blocks_free(),
            bavail: st.blocks_available(),
            files: files + st.files_free(),
            ffree: st.files_free(),
            bsize: st.block_size() as u32,
            namelen: savesync_core::MAX_COMPONENT_BYTES as u32,
            frsize: st.fragment_size() as u32,
        })
    }

    /// Data dir of this mount.
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        &self.cfg.data_dir
    }
}
