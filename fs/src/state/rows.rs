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
}

impl InodeKind {
    pub(crate) fn to_db(self) -> i64 {
        match self {
            InodeKind::File => 0,
            InodeKind::Dir => 1,
            InodeKind::Conflict => 2,
        }
    }

    pub(crate) fn from_db(v: i64) -> InodeKind {
        match v {
            1 => InodeKind::Dir,
            2 => InodeKind::Conflict,
            _ => InodeKind::File,
        }
    }
}

/// One persisted inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InodeRow {
    pub ino: u64,
    pub parent: u64,
    pub name: String,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
}
