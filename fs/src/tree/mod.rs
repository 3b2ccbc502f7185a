//! [`LocalTree`]: the mount's local store. It owns the inode table, the state DB it writes
//! through to, the cache files (`cache/<ino>`), the conflict copies (`conflicts/<ino>`,
//! shown as `NAME.conflict`), downloads in flight (`tmp/`) and the space reserve. It
//! implements [`crate::local::LocalStore`] for the engine (`store.rs`, `install.rs`) and
//! gives the FUSE front-end (`crate::savefs`) the table and paths its POSIX operations work
//! on. It knows nothing of FUSE or HTTP: what the kernel must forget is sent as
//! [`Invalidation`]s to a sink the front-end installs.
//!
//! Locking: `table` is a short-held std mutex, never held across disk syncs of other files
//! or any network I/O.

pub mod cache_check;
mod dir_entries;
mod fold_index;
mod hash_cache;
mod inode_slots;
pub mod inode_table;
mod install;
mod moved;
pub(crate) mod power_cut;
mod space;
mod store;

pub use inode_table::{Inode, InodeTable, ROOT_INO};

use crate::state::{InodeKind, InodeRow, StateDb};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Where the tree lives and how new entries look.
#[derive(Debug, Clone)]
pub struct TreeConfig {
    pub data_dir: PathBuf,
    /// Owner and modes shown for saves that arrive from the server.
    pub uid: u32,
    pub gid: u32,
    pub file_mode: u32,
    pub dir_mode: u32,
}

/// A kernel cache entry to drop, sent to the front-end's invalidation sink (the FUSE
/// notifier must not be called from inside a FUSE callback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// Data and attributes of an inode.
    Inode(u64),
    /// A name in a directory (appeared, vanished or now points elsewhere).
    Entry { parent: u64, name: String },
}

/// The mount's local store.
#[derive(Debug)]
pub struct LocalTree {
    pub(crate) cfg: TreeConfig,
    pub(crate) db: StateDb,
    pub(crate) table: Mutex<InodeTable>,
    inval: Mutex<Option<std::sync::mpsc::Sender<Invalidation>>>,
    /// Bytes of cached saves read to hash or upload (see `status`).
    save_bytes_read: AtomicU64,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data stays consistent at every unlock point; a panic elsewhere must not
    // take the whole mount down with it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

use crate::clock::{now_ms, now_ns};

/// A save (not a directory or special file) whose bytes are in the cache.
fn is_cached_save(row: &InodeRow) -> bool {
    row.kind == InodeKind::File && row.cached
}

/// Stat of a cache file as (size, mtime ns).
pub(crate) fn cache_stat(meta: &std::fs::Metadata) -> (u64, i64) {
    use std::os::unix::fs::MetadataExt;
    (meta.len(), meta.mtime() * 1_000_000_000 + meta.mtime_nsec())
}

impl LocalTree {
    /// Open the tree in `cfg.data_dir` and check the cache against the DB: a crash between
    /// a write and its close leaves a cache file newer than its row, and that save is
    /// queued as changed. After a run that did not stop cleanly, created files that lost
    /// their rows get them back (`power_cut`), and a check of the cache by hash is noted as
    /// due; it runs once the mount serves ([`LocalTree::check_cache`]).
    pub fn load(cfg: TreeConfig) -> anyhow::Result<LocalTree> {
        for sub in ["cache", "conflicts", "tmp"] {
            std::fs::create_dir_all(cfg.data_dir.join(sub))?;
        }
        // Leftovers of downloads interrupted by a crash.
        for entry in std::fs::read_dir(cfg.data_dir.join("tmp"))?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        let db = StateDb::open(&cfg.data_dir.join("state.db"))?;
        // A full disk must not keep the mount from starting (the user needs it to free
        // space): without its marker this run is simply not rescanned after a crash.
        let unclean = power_cut::begin(&cfg.data_dir).unwrap_or_else(|e| {
            tracing::warn!("cannot note this run as started ({e}): a crash will not be rescanned");
            false
        });
        let now = now_ns();
        let root = InodeRow {
            ino: ROOT_INO,
            parent: ROOT_INO,
            name: "".into(),
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
        let mut table = InodeTable::with_root(root.clone());
        let mut stored_root = false;
        db.for_each_inode(|row| {
            stored_root |= row.ino == ROOT_INO;
            table.insert(row);
        })?;
        if !stored_root {
            db.put_inode(&root)?;
        }
        // Numbers of deleted inodes are never handed out again (NFS, Samba and rsync key
        // on them): the DB keeps the high-water mark.
        table.raise_next_ino(db.next_ino()?);
        for (ino, data) in db.load_specials()? {
            table.set_special(ino, data);
        }
        for (ino, parent, name) in db.load_links()? {
            table.add_name(ino, parent, &name);
        }
        table.shrink_to_fit();
        let tree = LocalTree {
            cfg,
            db,
            table: Mutex::new(table),
            inval: Mutex::new(None),
            save_bytes_read: AtomicU64::new(0),
        };
        tree.recover_after_crash()?;
        if unclean {
            tree.recover_after_power_cut()?;
        }
        tree.ensure_reserve();
        // Loading read every inode row and grew the table's maps step by step; the page
        // cache and the smaller copies the maps left are free.
        tree.db.release_memory();
        crate::heap::release_free_memory();
        Ok(tree)
    }

    fn recover_after_crash(&self) -> anyhow::Result<()> {
        let mut changed = Vec::new();
        let mut rows = Vec::new();
        {
            let mut t = lock(&self.table);
            let inos: Vec<u64> =
                t.iter().filter(|i| is_cached_save(&i.row)).map(|i| i.row.ino).collect();
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

    /// Where this tree lives and how new entries look.
    #[must_use]
    pub fn config(&self) -> &TreeConfig {
        &self.cfg
    }

    /// The state DB.
    #[must_use]
    pub fn state(&self) -> &StateDb {
        &self.db
    }

    /// Data dir of this tree.
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        &self.cfg.data_dir
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

    pub(crate) fn count_read(&self, n: u64) {
        self.save_bytes_read.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn bytes_read(&self) -> u64 {
        self.save_bytes_read.load(Ordering::Relaxed)
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
            name: name.into(),
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
}

/// What sync sees of inode `ino`.
pub(crate) fn tree_entry(t: &InodeTable, ino: u64) -> crate::local::Entry {
    use crate::local::{ChangeToken, Entry, EntryKind};
    let Some(i) = t.get(ino) else { return Entry::absent() };
    Entry {
        kind: if i.row.kind == InodeKind::File { EntryKind::File } else { EntryKind::Other },
        cached: i.row.cached,
        busy: i.open_writers > 0 || i.unflushed,
        unflushed: i.unflushed,
        token: ChangeToken { id: ino, size: i.row.cache_size, mtime_ns: i.row.cache_mtime_ns },
    }
}
