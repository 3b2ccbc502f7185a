//! [`LocalStore`]: the device's side of sync, as the engine sees it. The engine
//! (`crate::sync`) decides and talks to the server; a local store holds the bytes and
//! carries out what the engine decided, each change as one transaction with the state DB:
//! install a download, show an entry whose bytes are not here yet, remove a save, put or
//! drop a `NAME.conflict` copy, snapshot a path. Two stores implement it:
//!
//! - the mount's cache tree (`crate::tree::LocalTree`): inode table, cache files, conflict
//!   copies in the data dir, shown to the kernel by the FUSE front-end;
//! - the synced folder (`crate::folder`): the files of an ordinary directory.
//!
//! A local store knows nothing of FUSE or HTTP, and never calls the engine: the front-end
//! on top tells the engine what changed. Every method may block on disk or on the state
//! DB; the engine calls them from blocking threads, never from an async worker.

use crate::state::{ConflictRow, DbError, StateDb};
use bytes::Bytes;
use savesync_core::{ContentHash, SavePath, Version};
use std::path::PathBuf;

/// A local failure (disk, state DB), with context.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct LocalError(pub String);

impl LocalError {
    pub fn new(e: impl std::fmt::Display) -> LocalError {
        LocalError(e.to_string())
    }
}

impl From<DbError> for LocalError {
    fn from(e: DbError) -> LocalError {
        LocalError(format!("state db: {e}"))
    }
}

impl From<std::io::Error> for LocalError {
    fn from(e: std::io::Error) -> LocalError {
        LocalError(e.to_string())
    }
}

pub type LocalResult<T> = Result<T, LocalError>;

/// What a path holds on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// Nothing at all.
    Absent,
    /// A save file (cached or not).
    File,
    /// Something that is not a save (a directory, symlink, FIFO ...) shadows the server's
    /// save of the same name: the engine leaves both alone.
    Other,
}

/// What the device has at one save path right now, as far as sync cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    /// The bytes are here (a mount may show a save whose bytes are still on the server).
    pub cached: bool,
    /// Open for writing or written since the last flush: the bytes must not be replaced.
    pub busy: bool,
    /// Written since the last flush/fsync (or, in a folder, not quiet yet): the bytes are
    /// mid-change, do not upload them yet.
    pub unflushed: bool,
    /// Changes whenever the bytes do (a stat fingerprint). An install is carried out only
    /// if the token is still the one the engine decided on.
    pub token: ChangeToken,
}

impl Entry {
    /// Nothing at this path.
    #[must_use]
    pub fn absent() -> Entry {
        Entry {
            kind: EntryKind::Absent,
            cached: false,
            busy: false,
            unflushed: false,
            token: ChangeToken::default(),
        }
    }
}

/// A fingerprint of a file's bytes: (entry id, size, mtime ns). Equal tokens mean "not
/// touched since".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ChangeToken {
    pub id: u64,
    pub size: u64,
    pub mtime_ns: i64,
}

/// A save's bytes, read to be uploaded.
#[derive(Debug, Clone)]
pub enum LocalBytes {
    /// Small saves are read into memory once and hashed from there.
    Small(Bytes),
    /// Large saves are streamed from this file (a private copy the store will not change
    /// under the upload, or the cache file itself).
    Large(PathBuf),
}

/// The outcome of an install: done, or refused because the entry changed since the engine
/// looked (the engine decides again with the new bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    Done,
    Changed,
}

/// The device's side of sync. See the module docs.
pub trait LocalStore: Send + Sync + std::fmt::Debug {
    /// The state DB (records, pending queue, conflicts) this store writes through to.
    fn db(&self) -> &StateDb;

    /// What is at `path` now. Cheap: no file is read.
    fn entry(&self, path: &SavePath) -> LocalResult<Entry>;

    /// Every save file the device holds (cached or not), for a negotiation.
    fn saves(&self) -> LocalResult<Vec<(SavePath, Entry)>>;

    /// Hash of the bytes at `path` (from the hash cache while their stat is unchanged).
    /// `None` when the entry is not a cached file.
    fn hash(&self, path: &SavePath) -> LocalResult<Option<ContentHash>>;

    /// Read the bytes at `path` to upload them, with their hash. Every byte read is counted
    /// in [`LocalStore::save_bytes_read`].
    fn read(&self, path: &SavePath) -> LocalResult<(ContentHash, LocalBytes)>;

    /// Bytes of saves read to hash or upload since the store opened.
    fn save_bytes_read(&self) -> u64;

    /// Where to download the bytes of `path` before [`LocalStore::install`] (a temp file
    /// on the same filesystem as the final place; local-only, never synced).
    fn download_tmp(&self, path: &SavePath) -> PathBuf;

    /// Make the downloaded file `tmp` (already verified: version `v`, `size` bytes) the
    /// content of `path` and `v` its base, unless the entry changed since `seen` (then
    /// `tmp` is removed and `Changed` returned).
    fn install(
        &self,
        path: &SavePath,
        tmp: PathBuf,
        v: Version,
        size: u64,
        seen: &Entry,
    ) -> LocalResult<Installed>;

    /// Whether this store can show a save whose bytes are not here (a mount can; a folder
    /// downloads everything).
    fn shows_uncached(&self) -> bool;

    /// Show server saves without their bytes; each becomes the base of its path.
    fn show_uncached(&self, saves: &[(SavePath, Version, u64)]) -> LocalResult<()>;

    /// The server deleted `path` (tombstone `v`) and the device had not changed it: remove
    /// it, unless it changed since `seen`; record `v` as the base either way only if
    /// removed.
    fn remove(&self, path: &SavePath, v: Version, seen: &Entry) -> LocalResult<Installed>;

    /// Show the other side's version (downloaded to `tmp`) as `NAME.conflict` beside the
    /// save, replacing an older copy, and record the conflict in the DB (before it becomes
    /// visible).
    fn put_conflict(&self, path: &SavePath, tmp: PathBuf, row: &ConflictRow) -> LocalResult<()>;

    /// The conflict went away by itself: remove the copy and its DB row.
    fn drop_conflict(&self, path: &SavePath, row: &ConflictRow) -> LocalResult<()>;

    /// A save moved on this device before its bytes were ever downloaded: where its bytes
    /// are on the server (old path and version). Only a mount has these.
    fn origin(&self, _path: &SavePath) -> LocalResult<Option<(SavePath, Version)>> {
        Ok(None)
    }

    /// Install the bytes of a moved save fetched from its origin into `tmp`.
    fn install_origin(&self, _path: &SavePath, tmp: PathBuf, _v: Version) -> LocalResult<()> {
        let _ = std::fs::remove_file(tmp);
        Ok(())
    }

    /// The origin of `path` is gone from the server: forget it.
    fn forget_origin(&self, _path: &SavePath) -> LocalResult<()> {
        Ok(())
    }

    /// Saves moved away from `path` whose bytes are still only at `path` on the server
    /// (fetched before `path` is deleted there).
    fn moved_from(&self, _path: &SavePath) -> LocalResult<Vec<SavePath>> {
        Ok(Vec::new())
    }
}
