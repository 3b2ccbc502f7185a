//! The checks the mount's operations make before touching the tree: route what lives in
//! `.history` here, refuse every change inside it (EROFS), and keep the name `.history`
//! at the mount root taken (creating or renaming onto it is EEXIST). Each is one call at
//! the top of the operation it guards.

use super::inodes::{Node, VIRTUAL_BASE, is_virtual};
use super::{HISTORY_DIR, HistoryDir};
use crate::error::{FsError, FsResult};
use crate::savefs::attr::{Attr, DirEntry};
use crate::savefs::{SaveFs, lock};
use crate::state::InodeKind;
use crate::tree::ROOT_INO;

fn read_only() -> FsError {
    FsError::new(libc::EROFS, format!("{HISTORY_DIR} is read-only"))
}

fn is_history_name(parent: u64, name: &str) -> bool {
    parent == ROOT_INO && name == HISTORY_DIR
}

impl HistoryDir {
    fn attr(&self, ino: u64, node: &Node, uid: u32, gid: u32) -> Attr {
        let (kind, size, perm, nlink, time) = match node {
            Node::Root | Node::Dir(_) => (InodeKind::Dir, 0, 0o555, 2, self.born),
            Node::Version(v) => (InodeKind::File, v.size, 0o444, 1, v.mtime),
        };
        Attr {
            ino,
            kind,
            size,
            perm,
            uid,
            gid,
            atime: time,
            mtime: time,
            ctime: time,
            nlink,
            rdev: 0,
        }
    }
}

impl SaveFs {
    fn history_attr(&self, ino: u64, node: &Node) -> Attr {
        self.history.attr(ino, node, self.cfg.uid, self.cfg.gid)
    }

    /// `lookup(parent, name)` when the answer is in `.history` (None: ask the tree).
    pub(crate) fn history_lookup(&self, parent: u64, name: &str) -> Option<FsResult<Attr>> {
        if is_history_name(parent, name) {
            return Some(Ok(self.history_attr(VIRTUAL_BASE, &Node::Root)));
        }
        if !is_virtual(parent) {
            return None;
        }
        Some((|| {
            let dir = lock(&self.history.nodes)
                .get(parent)
                .ok_or_else(|| FsError::not_found(format!("{HISTORY_DIR} inode {parent}")))?;
            let node = self.history_child(&dir, name)?;
            let mut nodes = lock(&self.history.nodes);
            let ino = nodes.intern(node.clone()).map_err(|max| {
                FsError::new(libc::ENFILE, format!("{HISTORY_DIR}: {max} entries in use"))
            })?;
            nodes.looked_up(ino);
            Ok(self.history_attr(ino, &node))
        })())
    }

    /// Attributes of a `.history` inode.
    pub(crate) fn history_getattr(&self, ino: u64) -> FsResult<Attr> {
        let node = lock(&self.history.nodes)
            .get(ino)
            .ok_or_else(|| FsError::not_found(format!("{HISTORY_DIR} inode {ino}")))?;
        Ok(self.history_attr(ino, &node))
    }

    /// A new name `name` in `parent` (create, mkdir, mknod, symlink, link, rename target):
    /// EROFS inside `.history`, EEXIST for `.history` itself at the root.
    pub(crate) fn history_refuse_new(&self, parent: u64, name: &str) -> FsResult<()> {
        if is_virtual(parent) {
            return Err(read_only());
        }
        if is_history_name(parent, name) {
            return Err(FsError::new(
                libc::EEXIST,
                format!("{HISTORY_DIR} is reserved at the mount root (the save history)"),
            ));
        }
        Ok(())
    }

    /// Removing or moving `name` out of `parent` (unlink, rmdir, rename source): EROFS for
    /// anything in `.history` and for `.history` itself.
    pub(crate) fn history_refuse_removal(&self, parent: u64, name: &str) -> FsResult<()> {
        if is_virtual(parent) || is_history_name(parent, name) {
            return Err(read_only());
        }
        Ok(())
    }

    /// Any change of inode `ino` itself (setattr, link): EROFS in `.history`.
    pub(crate) fn history_refuse_change(&self, ino: u64) -> FsResult<()> {
        if is_virtual(ino) { Err(read_only()) } else { Ok(()) }
    }

    /// The listing of the `.history` directory `ino`: every entry is held (pinned) until
    /// the listing is released.
    pub(crate) fn history_listing(&self, ino: u64) -> FsResult<Vec<DirEntry>> {
        let dir = lock(&self.history.nodes)
            .get(ino)
            .ok_or_else(|| FsError::not_found(format!("{HISTORY_DIR} inode {ino}")))?;
        if matches!(dir, Node::Version(_)) {
            return Err(FsError::not_dir(HISTORY_DIR));
        }
        let children = self.history_entries(&dir)?;
        let parent = if dir == Node::Root { ROOT_INO } else { VIRTUAL_BASE };
        let mut entries = vec![
            DirEntry { ino, kind: InodeKind::Dir, name: ".".into() },
            DirEntry { ino: parent, kind: InodeKind::Dir, name: "..".into() },
        ];
        let mut nodes = lock(&self.history.nodes);
        for (name, node) in children {
            let kind =
                if matches!(node, Node::Version(_)) { InodeKind::File } else { InodeKind::Dir };
            let Ok(child) = nodes.intern(node) else {
                tracing::warn!("{HISTORY_DIR}: too many entries in use; listing cut short");
                break;
            };
            nodes.pin(child);
            entries.push(DirEntry { ino: child, kind, name });
        }
        Ok(entries)
    }

    /// The root's listing: the tree's own `.history` (another device's save there) never
    /// shows; the virtual one does when configured.
    pub(crate) fn history_in_root_listing(&self, entries: &mut Vec<DirEntry>) {
        entries.retain(|e| e.name != HISTORY_DIR);
        if self.history.show {
            entries.push(DirEntry {
                ino: VIRTUAL_BASE,
                kind: InodeKind::Dir,
                name: HISTORY_DIR.into(),
            });
        }
    }

    /// A listing snapshot was released: its `.history` entries are no longer pinned.
    pub(crate) fn history_listing_closed(&self, entries: &[DirEntry]) {
        let mut nodes = None;
        for e in entries.iter().skip(2).filter(|e| is_virtual(e.ino)) {
            nodes.get_or_insert_with(|| lock(&self.history.nodes)).unpin(e.ino);
        }
    }

    /// The kernel sent an entry of a READDIRPLUS reply: it now holds a reference.
    pub fn note_listed(&self, ino: u64) {
        if is_virtual(ino) {
            lock(&self.history.nodes).looked_up(ino);
        }
    }

    /// FORGET: the kernel dropped `n` references to `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        if is_virtual(ino) {
            lock(&self.history.nodes).forget(ino, n);
        }
    }

    /// History calls (listings and downloads) this mount made to the server.
    #[must_use]
    pub fn history_server_calls(&self) -> u64 {
        self.history.server_calls()
    }

    /// `.history` inodes held right now.
    #[must_use]
    pub fn history_nodes_held(&self) -> usize {
        lock(&self.history.nodes).len()
    }
}
