//! Plain result types of the filesystem layer (no FUSE types): attributes, directory
//! entries, setattr requests and statfs numbers.

use crate::state::InodeKind;
use crate::tree::Inode;
use std::time::SystemTime;

use super::from_ns;

/// Attributes of one inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: InodeKind,
    pub size: u64,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub nlink: u32,
    /// Device number of a device node (0 for everything else).
    pub rdev: u32,
}

impl Attr {
    /// Attributes of `inode`; `subdirs` is its number of child directories (a directory's
    /// link count is 2 plus that, as on local file systems).
    pub(crate) fn of(inode: &Inode, subdirs: u32) -> Attr {
        let r = &inode.row;
        let perm = match r.kind {
            // Conflict copies are read-only: resolve by unlink or rename, never by editing.
            InodeKind::Conflict => (r.mode & 0o444) as u16,
            _ => r.mode as u16,
        };
        Attr {
            ino: r.ino,
            kind: r.kind,
            size: r.size,
            perm,
            uid: r.uid,
            gid: r.gid,
            atime: from_ns(r.atime_ns),
            mtime: from_ns(r.mtime_ns),
            ctime: from_ns(r.ctime_ns),
            nlink: match (r.kind, inode.linked) {
                (_, false) => 0,
                (InodeKind::Dir, true) => 2 + subdirs,
                _ => 1 + inode.extra_names().len() as u32,
            },
            rdev: inode.special().rdev,
        }
    }
}

/// One directory entry of a readdir snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: u64,
    pub kind: InodeKind,
    pub name: String,
}

/// A time to set: a given instant or "now".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSet {
    At(SystemTime),
    Now,
}

/// What a setattr changes (None = unchanged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
}

/// Numbers for statfs, from statvfs of the data dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statfs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
}
