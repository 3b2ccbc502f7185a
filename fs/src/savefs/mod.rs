//! [`SaveFs`]: the filesystem layer. It owns the inode table, the open handles, the cache
//! files and the state DB, and implements every POSIX operation the mount supports as a
//! plain method returning plain structs, so it is tested without FUSE (see `fs/tests`).
//! `crate::fuse` only translates kernel requests into these calls.
//!
//! Locking: `table` and `handles` are short-held std mutexes, never held across disk
//! syncs of other files or any network I/O. The only network call a FUSE thread makes is
//! the fresh-on-open download of the file being opened (see `ops_file::open`), which runs
//! with no lock held, so a slow download never stalls other files.
//!
//! Layout of `data_dir`: `state.db`, `cache/<ino>` (bytes of files), `conflicts/<ino>`
//! (the other side's version shown as `NAME.conflict`), `tmp/` (downloads in flight),
//! `space.reserve` (room to record deletes on a full disk, see `space`).

mod attr;
mod handles;
mod moved;
mod ops_dir;
mod ops_file;
mod ops_special;
mod resolve;
mod space;

pub use attr::{Attr, DirEntry, SetAttr, Statfs, TimeSet};
pub use ops_dir::RenameOptions;
pub(crate) use space::is_disk_full;

use crate::error::{FsError, FsResult};
use crate::inode_table::{InodeTable, ROOT_INO};
use crate::remote::Remote;
use crate::state::{InodeKind, InodeRow, StateDb};
use handles::Handles;
use savesync_core::SavePath;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
        }
    }
}

/// A kernel cache entry to drop, sent to the invalidation thread (the FUSE notifier must
/// not be called from inside a FUSE callback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// Data and attributes of an inode.
    Inode(u64),
    /// A name in a directory (appeared, vanished or now points elsewhere).
    Entry { parent: u64, name: String },
}

/// The filesystem layer of one mount.
#[derive(Debug)]
pub struct SaveFs {
    pub(crate) cfg: FsConfig,
    pub(crate) db: StateDb,
    pub(crate) table: Mutex<InodeTable>,
    handles: Mutex<Handles>,
    pub(crate) remote: Arc<dyn Remote>,
    pub(crate) rt: tokio::runtime::Handle,
    /// Wakes the uploader when the queue changed.
    pub(crate) wake: tokio::sync::Notify,
    inval: Mutex<Option<std::sync::mpsc::Sender<Invalidation>>>,
    pub(crate) online: AtomicBool,
    /// One sync at a time per save path.
    path_locks: Mutex<HashMap<SavePath, Arc<tokio::sync::Mutex<()>>>>,
    pub(crate) last_error: Mutex<Option<String>>,
    /// Bytes of cached saves the engine has read to hash or upload (see `status`).
    pub(crate) save_bytes_read: AtomicU64,
    /// Wakes the feed follower: a local change (probe at once while offline) or the
    /// uploader finding the server unreachable.
    pub(crate) feed_wake: tokio::sync::Notify,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data stays consistent at every unlock point; a panic elsewhere must not
    // take the whole mount down with it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn to_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

pub(crate) fn from_ns(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

pub(crate) fn now_ns() -> i64 {
    to_ns(SystemTime::now())
}

pub(crate) fn now_ms() -> i64 {
    now_ns() / 1_000_000
}

/// Stat of a cache file as (size, mtime ns).
pub(crate) fn cache_stat(meta: &std::fs::Metadata) -> (u64, i64) {
    use std::os::unix::fs::MetadataExt;
    (meta.len(), meta.mtime() * 1_000_000_000 + meta.mtime_nsec())
}

impl SaveFs {
    /// Open the mount state in `cfg.data_dir`, check the cache against the DB (a crash
    /// between a write and its close leaves a cache file newer than its row: that save is
    /// queued as changed), and return the filesystem layer.
    pub fn load(
        cfg: FsConfig,
        remote: Arc<dyn Remote>,
        rt: tokio::runtime::Handle,
    ) -> anyhow::Result<Arc<SaveFs>> {
        for sub in ["cache", "conflicts", "tmp"] {
            std::fs::create_dir_all(cfg.data_dir.join(sub))?;
        }
        // Leftovers of downloads interrupted by a crash.
        for entry in std::fs::read_dir(cfg.data_dir.join("tmp"))?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        let db = StateDb::open(&cfg.data_dir.join("state.db"))?;
        let now = now_ns();
        let root = InodeRow {
            ino: ROOT_INO,
            parent: ROOT_INO,
            name: String::new(),
            kind: InodeKind::Dir,
            mode: cfg.dir_mode,
            uid: cfg.uid,
            gid: cfg.gid,
            size: 0,
            atime_ns: now,
            mtime_ns: now,
            ctime_ns: now,
            cached: true,
            cache_size: 0,
            cache_mtime_ns: 0,
        };
        let rows = db.load_inodes()?;
        if !rows.iter().any(|r| r.ino == ROOT_INO) {
            db.put_inode(&root)?;
        }
        let mut table = InodeTable::from_rows(rows, root);
        // Numbers of deleted inodes are never handed out again (NFS, Samba and rsync key
        // on them): the DB keeps the high-water mark.
        table.raise_next_ino(db.next_ino()?);
        for (ino, data) in db.load_specials()? {
            table.set_special(ino, data);
        }
        for (ino, parent, name) in db.load_links()? {
            table.add_name(ino, parent, &name);
        }
        let fs = Arc::new(SaveFs {
            cfg,
            db,
            table: Mutex::new(table),
            handles: Mutex::new(Handles::default()),
            remote,
            rt,
            wake: tokio::sync::Notify::new(),
            inval: Mutex::new(None),
            online: AtomicBool::new(false),
            path_locks: Mutex::new(HashMap::new()),
            last_error: Mutex::new(None),
            save_bytes_read: AtomicU64::new(0),
            feed_wake: tokio::sync::Notify::new(),
        });
        fs.recover_after_crash()?;
        fs.ensure_reserve();
        Ok(fs)
    }

    fn recover_after_crash(&self) -> anyhow::Result<()> {
        let mut changed = Vec::new();
        let mut rows = Vec::new();
        {
            let mut t = lock(&self.table);
            let inos: Vec<u64> = t
                .iter()
                .filter(|i| i.row.kind == InodeKind::File && i.row.cached)
                .map(|i| i.row.ino)
                .collect();
            for ino in inos {
                let cache = self.cache_path(ino);
                let stat = std::fs::metadata(&cache).ok().map(|m| cache_stat(&m));
                let path = t.save_path(ino);
                let Some(inode) = t.get_mut(ino) else { continue };
                match stat {
                    Some((size, mtime)) => {
                        if (size, mtime) != (inode.row.cache_size, inode.row.cache_mtime_ns) {
                            tracing::info!(ino, "cache file changed since its last flush");
                            inode.row.size = size;
                            inode.row.cache_size = size;
                            inode.row.cache_mtime_ns = mtime;
                            rows.push(inode.row.clone());
                            changed.extend(path);
                        }
                    }
                    None => {
                        // Bytes lost (cache wiped): fall back to downloading the base.
                        inode.row.cached = false;
                        rows.push(inode.row.clone());
                    }
                }
            }
        }
        self.db.put_inodes(&rows, &[])?;
        self.db.enqueue_many(&changed, now_ms())?;
        Ok(())
    }

    /// The settings this mount runs with.
    #[must_use]
    pub fn config(&self) -> &FsConfig {
        &self.cfg
    }

    /// The state DB (status, conflicts).
    #[must_use]
    pub fn state(&self) -> &StateDb {
        &self.db
    }

    /// Route kernel cache invalidations to `tx` (the mount's notifier thread).
    pub fn set_invalidation_sink(&self, tx: std::sync::mpsc::Sender<Invalidation>) {
        *lock(&self.inval) = Some(tx);
    }

    pub(crate) fn invalidate(&self, what: Invalidation) {
        if let Some(tx) = lock(&self.inval).as_ref() {
            let _ = tx.send(what);
        }
    }

    /// Bytes of cached saves the engine has read to hash or upload since the mount started.
    #[must_use]
    pub fn save_bytes_read(&self) -> u64 {
        self.save_bytes_read.load(Ordering::Relaxed)
    }

    pub(crate) fn count_read(&self, n: u64) {
        self.save_bytes_read.fetch_add(n, Ordering::Relaxed);
    }

    /// True while the server is reachable (as far as the engine last saw).
    #[must_use]
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    pub(crate) fn cache_path(&self, ino: u64) -> PathBuf {
        self.cfg.data_dir.join("cache").join(ino.to_string())
    }

    pub(crate) fn conflict_path(&self, ino: u64) -> PathBuf {
        self.cfg.data_dir.join("conflicts").join(ino.to_string())
    }

    pub(crate) fn tmp_path(&self, tag: &str) -> PathBuf {
        let n: u64 = rand::random();
        self.cfg.data_dir.join("tmp").join(format!("{tag}-{n:016x}"))
    }

    /// The file holding the bytes of `ino` (cache or conflict store).
    pub(crate) fn content_path(&self, row: &InodeRow) -> PathBuf {
        match row.kind {
            InodeKind::Conflict => self.conflict_path(row.ino),
            _ => self.cache_path(row.ino),
        }
    }

    pub(crate) fn path_lock(&self, path: &SavePath) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(lock(&self.path_locks).entry(path.clone()).or_default())
    }

    /// Queue `paths` for a sync decision after the debounce.
    pub(crate) fn enqueue_debounced(&self, paths: &[SavePath]) -> FsResult<()> {
        if paths.is_empty() {
            return Ok(());
        }
        let due = now_ms() + self.cfg.debounce.as_millis() as i64;
        self.db.enqueue_many(paths, due).map_err(|e| FsError::db("queueing saves", &e))?;
        self.wake.notify_one();
        self.feed_wake.notify_one();
        Ok(())
    }

    /// A new row for an entry created now.
    pub(crate) fn new_row(
        &self,
        ino: u64,
        parent: u64,
        name: &str,
        kind: InodeKind,
        mode: u32,
        (uid, gid): (u32, u32),
    ) -> InodeRow {
        let now = now_ns();
        InodeRow {
            ino,
            parent,
            name: name.to_owned(),
            kind,
            mode: mode & 0o7777,
            uid,
            gid,
            size: 0,
            atime_ns: now,
            mtime_ns: now,
            ctime_ns: now,
            cached: true,
            cache_size: 0,
            cache_mtime_ns: 0,
        }
    }

    /// Statistics of the disk holding the cache.
    pub fn statfs(&self) -> FsResult<Statfs> {
        let st = nix::sys::statvfs::statvfs(&self.cfg.data_dir)
            .map_err(|e| FsError::new(e as i32, format!("statvfs of data dir: {e}")))?;
        let files = lock(&self.table).len() as u64;
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
