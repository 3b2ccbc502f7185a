//! [`FolderStore`]: the [`LocalStore`] of a synced folder. The saves are the files of an
//! ordinary directory; the state DB holds the records, queue and conflicts exactly as for
//! the mount, plus a hash cache by save path (`state::folder`).
//!
//! Writes into the folder are the ones a careful emulator expects: a download goes to a
//! temp file beside the save (a local-only `.NAME.savesync-XXXXXXXX.tmp`), is fsynced and
//! renamed over the save, and the directory is fsynced. It is carried out only if the file
//! still has the stat the engine decided on (else `Changed`: the engine decides again), and
//! a save that is being written (see `quiet`) is never replaced. A file that changed since
//! its base is never overwritten: the engine's decision is then a conflict, shown as a real
//! read-only `NAME.conflict` file beside the save.
//!
//! A save path whose parent is not a directory here (a file, or a symlink that could lead
//! out of the folder) is `Other`: the engine leaves both alone.

use super::paths::FolderPaths;
use super::quiet::{Readiness, readiness};
use super::writers::open_for_writing;
use crate::clock::now_ns;
use crate::local::{
    ChangeToken, Entry, EntryKind, Installed, LocalBytes, LocalError, LocalResult, LocalStore,
};
use crate::state::{ConflictRow, StatKey, StateDb};
use bytes::Bytes;
use savesync_core::{ContentHash, ContentHasher, SavePath, Version};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Saves up to this size are read into memory to upload; larger ones are copied aside
/// first, so the upload is of one consistent version even if the file changes.
const IN_MEMORY_MAX: u64 = 64 * 1024 * 1024;
/// How long one look at who has files open for writing is reused.
const WRITERS_TTL: Duration = Duration::from_millis(20);
/// Read buffer for hashing.
const CHUNK: usize = 256 * 1024;

/// What a synced folder needs to know.
#[derive(Debug, Clone)]
pub struct FolderConfig {
    /// The folder (absolute, canonical).
    pub root: PathBuf,
    /// The profile's data dir (state DB; private copies of large saves being uploaded).
    pub data_dir: PathBuf,
    /// Quiet time before a written save counts as finished.
    pub debounce: Duration,
}

/// See the module docs.
#[derive(Debug)]
pub struct FolderStore {
    paths: FolderPaths,
    db: StateDb,
    upload_dir: PathBuf,
    debounce: Duration,
    bytes_read: AtomicU64,
    writers: Mutex<Option<(Instant, Arc<HashSet<PathBuf>>)>>,
}

fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
}

fn changed_ns(meta: &std::fs::Metadata) -> i64 {
    mtime_ns(meta).max(meta.ctime() * 1_000_000_000 + meta.ctime_nsec())
}

fn token_of(meta: &std::fs::Metadata) -> ChangeToken {
    ChangeToken { id: meta.ino(), size: meta.len(), mtime_ns: mtime_ns(meta) }
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn fsync_file(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

impl FolderStore {
    /// Open the store over `cfg.root` with the profile's state DB.
    pub fn open(cfg: &FolderConfig, db: StateDb) -> LocalResult<FolderStore> {
        let upload_dir = cfg.data_dir.join("folder-upload");
        // Copies of large saves left by an earlier run are of no use any more.
        let _ = std::fs::remove_dir_all(&upload_dir);
        std::fs::create_dir_all(&upload_dir)?;
        Ok(FolderStore {
            paths: FolderPaths::new(cfg.root.clone()),
            db,
            upload_dir,
            debounce: cfg.debounce,
            bytes_read: AtomicU64::new(0),
            writers: Mutex::new(None),
        })
    }

    #[must_use]
    pub fn paths(&self) -> &FolderPaths {
        &self.paths
    }

    /// The files below the root open for writing (shared for [`WRITERS_TTL`]).
    fn writers(&self) -> Arc<HashSet<PathBuf>> {
        let mut cached = self.writers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, set)) = cached.as_ref()
            && at.elapsed() < WRITERS_TTL
        {
            return Arc::clone(set);
        }
        let set = Arc::new(open_for_writing(self.paths.root()));
        *cached = Some((Instant::now(), Arc::clone(&set)));
        set
    }

    /// Whether the file may be uploaded or replaced now.
    pub fn readiness(&self, file: &Path, meta: &std::fs::Metadata) -> Readiness {
        match readiness(now_ns(), changed_ns(meta), self.debounce, false) {
            Readiness::Ready => {
                let open = self.writers().contains(file);
                readiness(now_ns(), changed_ns(meta), self.debounce, open)
            }
            other => other,
        }
    }

    /// True when every parent directory of `path` that exists is a real directory (not a
    /// symlink or a file): only then is `path` inside the folder.
    fn parents_are_dirs(&self, path: &SavePath) -> bool {
        let mut dir = self.paths.root().to_path_buf();
        let Some(parent) = path.parent() else { return true };
        for comp in parent.components() {
            dir.push(comp);
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_dir() => {}
                Ok(_) => return false,
                Err(_) => return true, // missing: nothing below exists either
            }
        }
        true
    }

    /// The entry of `path` and the stat it was made from.
    fn stat_entry(&self, path: &SavePath) -> LocalResult<(Entry, Option<std::fs::Metadata>)> {
        if !self.parents_are_dirs(path) {
            return Ok((Entry { kind: EntryKind::Other, ..Entry::absent() }, None));
        }
        let file = self.paths.file(path);
        let meta = match std::fs::symlink_metadata(&file) {
            Ok(m) => m,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                return Ok((Entry::absent(), None));
            }
            Err(e) => return Err(LocalError(format!("{}: {e}", file.display()))),
        };
        if !meta.file_type().is_file() {
            let entry = Entry { kind: EntryKind::Other, token: token_of(&meta), ..Entry::absent() };
            return Ok((entry, Some(meta)));
        }
        let moving = !self.readiness(&file, &meta).is_ready();
        let entry = Entry {
            kind: EntryKind::File,
            cached: true,
            busy: moving,
            unflushed: moving,
            token: token_of(&meta),
        };
        Ok((entry, Some(meta)))
    }

    /// Hash a file, counting the bytes read.
    fn hash_file(&self, file: &Path) -> std::io::Result<ContentHash> {
        crate::file_hash::hash_file(file, |n| {
            self.bytes_read.fetch_add(n, Ordering::Relaxed);
        })
    }

    /// The hash of the file at `path` whose stat is `meta`: from the cache while the stat
    /// is unchanged, else read (and cached if the stat did not change while reading).
    pub fn hash_at(&self, path: &SavePath, meta: &std::fs::Metadata) -> LocalResult<ContentHash> {
        let key = StatKey::of(meta);
        if let Some((k, h)) = self.db.folder_hash(path)?
            && k == key
        {
            return Ok(h);
        }
        let file = self.paths.file(path);
        let hash = self.hash_file(&file)?;
        self.remember(path, key, hash);
        Ok(hash)
    }

    /// Cache `hash` for `path` if the file still has the stat `key` it was read at.
    fn remember(&self, path: &SavePath, key: StatKey, hash: ContentHash) {
        let Ok(now) = std::fs::symlink_metadata(self.paths.file(path)) else { return };
        if StatKey::of(&now) == key
            && let Err(e) = self.db.remember_folder_hashes(&[(path.clone(), key, hash)])
        {
            tracing::debug!(%path, "remembering a hash: {e}");
        }
    }

    /// Every save file in the folder (or below `under`) with its stat.
    #[must_use]
    pub fn walk(&self, under: Option<&SavePath>) -> Vec<(SavePath, std::fs::Metadata)> {
        super::walk::saves(&self.paths, under)
    }

    /// Remove temp files a killed run left (at start only).
    #[must_use]
    pub fn remove_stale_temps(&self) -> usize {
        super::walk::remove_own_temps(&self.paths)
    }

    /// Rename `tmp` to `dest`; with `no_replace`, fail with `AlreadyExists` if `dest`
    /// appeared meanwhile.
    fn rename_into(tmp: &Path, dest: &Path, no_replace: bool) -> std::io::Result<()> {
        if no_replace {
            // rustix, not nix: nix offers renameat2 on glibc only, and the handheld
            // binaries are musl (rustix makes the system call itself).
            use rustix::fs::{CWD, RenameFlags, renameat_with};
            use rustix::io::Errno;
            match renameat_with(CWD, tmp, CWD, dest, RenameFlags::NOREPLACE) {
                Ok(()) => return Ok(()),
                Err(Errno::EXIST) => {
                    return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
                }
                // The file system cannot do it (EINVAL): fall back to a checked rename.
                Err(Errno::INVAL) if std::fs::symlink_metadata(dest).is_err() => {}
                Err(Errno::INVAL) => {
                    return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
                }
                Err(e) => return Err(std::io::Error::from(e)),
            }
        }
        std::fs::rename(tmp, dest)
    }

    /// Make sure the directory of `path` exists.
    fn ensure_parent(&self, path: &SavePath) -> std::io::Result<()> {
        match path.parent() {
            Some(p) => std::fs::create_dir_all(self.paths.file(&p)),
            None => Ok(()),
        }
    }
}

impl LocalStore for FolderStore {
    fn db(&self) -> &StateDb {
        &self.db
    }

    fn entry(&self, path: &SavePath) -> LocalResult<Entry> {
        Ok(self.stat_entry(path)?.0)
    }

    fn saves(&self) -> LocalResult<Vec<(SavePath, Entry)>> {
        let files = self.walk(None);
        let now = now_ns();
        let quiet = |m: &std::fs::Metadata| {
            readiness(now, changed_ns(m), self.debounce, false) == Readiness::Ready
        };
        let writers =
            if files.iter().any(|(_, m)| quiet(m)) { self.writers() } else { Arc::default() };
        Ok(files
            .into_iter()
            .map(|(path, meta)| {
                let open = writers.contains(&self.paths.file(&path));
                let moving = !quiet(&meta) || open;
                let entry = Entry {
                    kind: EntryKind::File,
                    cached: true,
                    busy: moving,
                    unflushed: moving,
                    token: token_of(&meta),
                };
                (path, entry)
            })
            .collect())
    }

    fn hash(&self, path: &SavePath) -> LocalResult<Option<ContentHash>> {
        let (entry, meta) = self.stat_entry(path)?;
        match (entry.kind, meta) {
            (EntryKind::File, Some(meta)) => Ok(Some(self.hash_at(path, &meta)?)),
            _ => Ok(None),
        }
    }

    fn read(&self, path: &SavePath) -> LocalResult<(ContentHash, LocalBytes)> {
        let file = self.paths.file(path);
        let before = std::fs::symlink_metadata(&file)?;
        let key = StatKey::of(&before);
        let (hash, bytes) = if before.len() <= IN_MEMORY_MAX {
            let bytes = std::fs::read(&file)?;
            self.bytes_read.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            (ContentHash::of(&bytes), LocalBytes::Small(Bytes::from(bytes)))
        } else {
            // A private copy: the upload then sends one version even if the save changes.
            // One per save (the engine syncs a path once at a time, so the previous upload
            // of this save is over): copies never pile up.
            let name = ContentHash::of(path.as_str().as_bytes()).to_hex();
            let copy = self.upload_dir.join(format!("{name}.part"));
            let mut src = std::fs::File::open(&file)?;
            let mut dst = std::fs::File::create(&copy)?;
            let mut hasher = ContentHasher::new();
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = src.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                self.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                hasher.update(&buf[..n]);
                dst.write_all(&buf[..n])?;
            }
            (hasher.finish(), LocalBytes::Large(copy))
        };
        let after = std::fs::symlink_metadata(&file)?;
        if StatKey::of(&after) != key {
            if let LocalBytes::Large(copy) = &bytes {
                let _ = std::fs::remove_file(copy);
            }
            return Err(LocalError(format!("{path}: changed while it was read")));
        }
        self.remember(path, key, hash);
        Ok((hash, bytes))
    }

    fn save_bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    fn download_tmp(&self, path: &SavePath) -> PathBuf {
        // The temp file goes beside the save, so the rename is atomic: its directory must
        // exist (a failure shows up when the download writes the file).
        if let Err(e) = self.ensure_parent(path) {
            tracing::debug!(%path, "creating the save's directory: {e}");
        }
        self.paths.temp_beside(path)
    }

    fn install(
        &self,
        path: &SavePath,
        tmp: PathBuf,
        v: Version,
        size: u64,
        seen: &Entry,
    ) -> LocalResult<Installed> {
        let dest = self.paths.file(path);
        let result = (|| -> LocalResult<Installed> {
            let (now, meta) = self.stat_entry(path)?;
            let same =
                now.kind == seen.kind && (now.kind == EntryKind::Absent || now.token == seen.token);
            if !same || now.busy || now.kind == EntryKind::Other {
                return Ok(Installed::Changed);
            }
            // A replaced save keeps its permissions.
            if let Some(meta) = &meta {
                std::fs::set_permissions(&tmp, meta.permissions())?;
            }
            fsync_file(&tmp)?;
            match Self::rename_into(&tmp, &dest, now.kind == EntryKind::Absent) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Ok(Installed::Changed);
                }
                Err(e) => return Err(LocalError(format!("{}: {e}", dest.display()))),
            }
            if let Some(dir) = dest.parent() {
                fsync_dir(dir)?;
            }
            if let (Some(hash), Ok(meta)) = (v.hash, std::fs::symlink_metadata(&dest)) {
                self.db.remember_folder_hashes(&[(path.clone(), StatKey::of(&meta), hash)])?;
            }
            self.db.install(&[], &[(path.clone(), v, size)])?;
            Ok(Installed::Done)
        })();
        if !matches!(result, Ok(Installed::Done)) {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn shows_uncached(&self) -> bool {
        false
    }

    fn show_uncached(&self, saves: &[(SavePath, Version, u64)]) -> LocalResult<()> {
        if saves.is_empty() {
            return Ok(());
        }
        Err(LocalError("a synced folder downloads every save; it cannot show one uncached".into()))
    }

    fn remove(&self, path: &SavePath, v: Version, seen: &Entry) -> LocalResult<Installed> {
        let (now, _) = self.stat_entry(path)?;
        let same =
            now.kind == seen.kind && (now.kind == EntryKind::Absent || now.token == seen.token);
        if !same || now.busy || now.kind == EntryKind::Other {
            return Ok(Installed::Changed);
        }
        let file = self.paths.file(path);
        match std::fs::remove_file(&file) {
            Ok(()) => {
                if let Some(dir) = file.parent() {
                    fsync_dir(dir)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LocalError(format!("{}: {e}", file.display()))),
        }
        self.db.forget_folder_hashes(std::slice::from_ref(path))?;
        self.db.agree(path, v, 0)?;
        Ok(Installed::Done)
    }

    fn put_conflict(&self, path: &SavePath, tmp: PathBuf, row: &ConflictRow) -> LocalResult<()> {
        let copy = self.paths.conflict_copy(path);
        // The user resolved the previous copy (deleted or renamed it) since the engine
        // looked: leave the resolution to the front-end (which sees the copy go and records
        // it) and let the engine decide again after that.
        if self.db.conflict(path)?.is_some() && std::fs::symlink_metadata(&copy).is_err() {
            let _ = std::fs::remove_file(&tmp);
            let due = crate::clock::now_ms() + self.debounce.as_millis() as i64;
            self.db.enqueue(path, due)?;
            return Ok(());
        }
        let result = (|| -> LocalResult<()> {
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o444))?;
            fsync_file(&tmp)?;
            // The copy becomes visible before its row: a crash in between leaves a copy the
            // next decision replaces, never a row whose missing copy would read as "the
            // user deleted it".
            std::fs::rename(&tmp, &copy)?;
            if let Some(dir) = copy.parent() {
                fsync_dir(dir)?;
            }
            let mut row = row.clone();
            row.ino = 0;
            self.db.put_folder_conflict(&row)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn drop_conflict(&self, path: &SavePath, _row: &ConflictRow) -> LocalResult<()> {
        // The row goes first: a crash in between leaves a stale copy, never a row without
        // its copy (which would read as "keep mine").
        self.db.delete_conflict(path)?;
        match std::fs::remove_file(self.paths.conflict_copy(path)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
