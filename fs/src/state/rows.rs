//! Plain row types of the state DB, shared by the filesystem layer, the sync engine and the
//! status CLI.

use savesync_core::{ContentHash, Rev, SavePath, Version};
use serde::Serialize;

/// What an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InodeKind {
    File,
    Dir,
    /// A read-only `NAME.conflict` copy of the other side's version.
    Conflict,
    /// Local-only special files (never synced): the target or device number lives in the
    /// `specials` table, and the kernel does the I/O of FIFOs, sockets and device nodes.
    Symlink,
    Fifo,
    Socket,
    CharDev,
    BlockDev,
}

impl InodeKind {
    pub(crate) fn to_db(self) -> i64 {
        match self {
            InodeKind::File => 0,
            InodeKind::Dir => 1,
            InodeKind::Conflict => 2,
            InodeKind::Symlink => 3,
            InodeKind::Fifo => 4,
            InodeKind::Socket => 5,
            InodeKind::CharDev => 6,
            InodeKind::BlockDev => 7,
        }
    }

    pub(crate) fn from_db(v: i64) -> InodeKind {
        match v {
            1 => InodeKind::Dir,
            2 => InodeKind::Conflict,
            3 => InodeKind::Symlink,
            4 => InodeKind::Fifo,
            5 => InodeKind::Socket,
            6 => InodeKind::CharDev,
            7 => InodeKind::BlockDev,
            _ => InodeKind::File,
        }
    }
}

impl InodeKind {
    /// True for the local-only special kinds (symlinks, FIFOs, sockets, device nodes):
    /// they have no bytes of their own in the cache and are never synced.
    #[must_use]
    pub fn is_special(self) -> bool {
        matches!(
            self,
            InodeKind::Symlink
                | InodeKind::Fifo
                | InodeKind::Socket
                | InodeKind::CharDev
                | InodeKind::BlockDev
        )
    }
}

/// What a special inode keeps besides its row: a symlink's target (raw bytes: a target
/// need not be UTF-8) or a device node's number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialData {
    pub target: Vec<u8>,
    pub rdev: u32,
}

/// One persisted inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InodeRow {
    pub ino: u64,
    pub parent: u64,
    pub name: Box<str>,
    pub kind: InodeKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime_ns: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    /// False for a save known from the server whose bytes were never downloaded.
    pub cached: bool,
    /// Stat of the cache file at the last durable flush (crash detection).
    pub cache_size: u64,
    pub cache_mtime_ns: i64,
}

/// Sync bookkeeping of one save path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Record {
    /// The version this device last agreed on with the server.
    pub base: Option<Version>,
    /// The newest server head this device heard of.
    pub head: Option<Version>,
    pub head_size: u64,
}

/// One due entry of the pending queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRow {
    pub path: SavePath,
    pub generation: i64,
    pub attempts: i64,
}

/// The other side's version of a save in conflict, shown as `NAME.conflict`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConflictRow {
    pub path: SavePath,
    pub ino: u64,
    pub rev: Rev,
    pub hash: ContentHash,
    pub size: u64,
    /// This device's bytes last kept on the server (as a `conflict` version) while this
    /// conflict is open, so each new closed version is backed up once (migration 3).
    pub backed_up: Option<ContentHash>,
}

impl ConflictRow {
    #[must_use]
    pub fn version(&self) -> Version {
        Version { rev: self.rev, hash: Some(self.hash) }
    }
}

/// The daemon's status row.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct StatusRow {
    pub online: bool,
    pub last_error: Option<String>,
    pub mountpoint: Option<String>,
    pub pid: Option<u32>,
    pub updated_ms: i64,
    /// Bytes of cached saves the engine read (to hash or upload) since the mount started.
    pub save_bytes_read: u64,
}

/// The stat of a cache file a cached hash is valid for: any write changes the mtime (and
/// usually the size); replacing the file changes its inode number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatKey {
    pub size: u64,
    pub mtime_ns: i64,
    pub file_ino: u64,
}

impl StatKey {
    #[must_use]
    pub fn of(meta: &std::fs::Metadata) -> StatKey {
        use std::os::unix::fs::MetadataExt;
        StatKey {
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            file_ino: meta.ino(),
        }
    }
}

/// A save the uploader stopped retrying because the server refused it for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GivenUpRow {
    pub path: SavePath,
    pub error: String,
    pub at_ms: i64,
}
