//! [`InodeTable`]: the in-memory tree of the mount, loaded from the state DB at start and
//! written through on every change.
//!
//! Inode numbers are allocated once and persisted, so they are stable across remounts (NFS,
//! Samba and rsync notice when they are not), and never reused: the state DB keeps the
//! high-water mark (`kv.next_ino`, raised by a trigger on every inserted inode row), so a
//! deleted file's number does not come back after a remount. Inode 1 is the root. An unlinked inode that is
//! still open stays in `inodes` (not in any directory) until its last handle is released,
//! so an open fd keeps working after unlink, as POSIX requires.
//!
//! A *save path* is the `/`-joined path of a regular file whose every component is a valid
//! save name and none of which is a local-only temp name: only those are ever synced.
//! Symlinks, FIFOs, sockets and device nodes are local-only too: [`InodeTable::save_path`]
//! is None for every kind but a regular file, so nothing upstream ever queues them.
//!
//! Hard links (special kinds only, see `ops_special`): an inode's first name is its row's
//! `(parent, name)`; further names are `extra_names`, each also an entry in `children`.
//! Dropping the first name promotes an extra one, so the row always holds a live name.
//!
//! Names are NFC (the FUSE adapter normalises them). Each directory also indexes its names
//! by their canonical caseless key ([`savesync_core::fold_key`]), so the mount can refuse a
//! new name that a case-insensitive re-export would merge with an existing sibling
//! ([`InodeTable::fold_siblings`]), scanning the directory only when one may be there.

use super::dir_entries::DirEntries;
use super::inode_slots::InodeSlots;
use crate::state::{InodeKind, InodeRow, SpecialData};
use savesync_core::{MAX_PATH_COMPONENTS, SavePath, is_local_only_name};
use std::collections::HashMap;

/// Root inode number (FUSE's convention).
pub const ROOT_INO: u64 = 1;

/// One inode and its runtime counters.
#[derive(Debug, Clone)]
pub struct Inode {
    pub row: InodeRow,
    /// Open file handles (any mode).
    pub open_handles: u32,
    /// Open handles that may write.
    pub open_writers: u32,
    /// Open handles an execve made (the program runs from this file): while there are
    /// some, an open that would truncate it is refused with ETXTBSY.
    pub open_execs: u32,
    /// Written or truncated since the last durable flush: its bytes are in motion, so the
    /// uploader waits for the close or fsync that follows.
    pub unflushed: bool,
    /// False once unlinked or replaced; the inode lives on only while open.
    pub linked: bool,
    /// The bytes were replaced from the server since the last open reply: the next open
    /// must not keep the kernel's page cache (the invalidation is asynchronous).
    pub replaced: bool,
    /// What only special inodes have (symlink target, device number, hard links): boxed
    /// and absent for saves and directories, which keeps the table of 100,000 saves small.
    extras: Option<Box<InodeExtras>>,
}

/// The rarely present parts of an inode.
#[derive(Debug, Clone, Default)]
struct InodeExtras {
    /// Symlink target or device number of a special kind.
    special: SpecialData,
    /// Names besides the row's `(parent, name)` (hard links), as (parent, name).
    extra_names: Vec<(u64, String)>,
}

/// No special data: what [`Inode::special`] shows for an inode without any.
static NO_SPECIAL: SpecialData = SpecialData { target: Vec::new(), rdev: 0 };

impl Inode {
    /// Symlink target or device number of a special kind (empty for the others).
    #[must_use]
    pub fn special(&self) -> &SpecialData {
        self.extras.as_ref().map_or(&NO_SPECIAL, |e| &e.special)
    }

    /// Names besides the row's `(parent, name)` (hard links), as (parent, name).
    #[must_use]
    pub fn extra_names(&self) -> &[(u64, String)] {
        self.extras.as_ref().map_or(&[], |e| &e.extra_names)
    }

    fn extras_mut(&mut self) -> &mut InodeExtras {
        self.extras.get_or_insert_with(Box::default)
    }
}

/// The tree.
#[derive(Debug, Default)]
pub struct InodeTable {
    inodes: InodeSlots,
    children: HashMap<u64, DirEntries>,
    next_ino: u64,
}

impl InodeTable {
    /// A tree of only `root`; persisted rows are added with [`InodeTable::insert`] (a stored
    /// root row replaces this one).
    #[must_use]
    pub fn with_root(root: InodeRow) -> InodeTable {
        let mut t = InodeTable { next_ino: ROOT_INO + 1, ..InodeTable::default() };
        t.insert(root);
        t
    }

    /// Never hand out a number below `next` (the persisted high-water mark: numbers of
    /// deleted inodes are not reused).
    pub fn raise_next_ino(&mut self, next: u64) {
        self.next_ino = self.next_ino.max(next);
    }

    /// Hand out a fresh, never reused inode number.
    pub fn alloc_ino(&mut self) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        ino
    }

    /// Add (or replace) an inode and link it under its parent (the root links nowhere).
    pub fn insert(&mut self, row: InodeRow) {
        self.next_ino = self.next_ino.max(row.ino + 1);
        let ino = row.ino;
        if ino != ROOT_INO {
            self.link_child(row.parent, &row.name, ino, row.kind == InodeKind::Dir);
        }
        if row.kind == InodeKind::Dir {
            self.children.entry(ino).or_default();
        }
        // A row replacing one of the same inode keeps the runtime state (open handles,
        // unflushed bytes, special data, extra names) of the one before it.
        if let Some(prev) = self.inodes.get_mut(ino) {
            prev.row = row;
            prev.linked = true;
            prev.replaced = true;
            return;
        }
        self.inodes.insert_new(Inode {
            row,
            open_handles: 0,
            open_writers: 0,
            open_execs: 0,
            unflushed: false,
            linked: true,
            replaced: true,
            extras: None,
        });
    }

    /// Give `ino` one more name (a hard link); the caller checked the name is free.
    pub fn add_name(&mut self, ino: u64, parent: u64, name: &str) {
        if let Some(inode) = self.inodes.get_mut(ino) {
            let is_dir = inode.row.kind == InodeKind::Dir;
            inode.extras_mut().extra_names.push((parent, name.to_owned()));
            self.link_child(parent, name, ino, is_dir);
        }
    }

    /// True when `ino` has more than one name.
    #[must_use]
    pub fn has_extra_names(&self, ino: u64) -> bool {
        self.inodes.get(ino).is_some_and(|i| !i.extra_names().is_empty())
    }

    /// Drop the name `(parent, name)` of an inode that has others. Returns the extra name
    /// whose `links` row must go: the dropped one, or the one promoted to the row's name
    /// when the first name was dropped (the caller then persists the row too).
    pub fn drop_name(&mut self, ino: u64, parent: u64, name: &str) -> Option<(u64, String)> {
        let inode = self.inodes.get_mut(ino)?;
        let gone = if (inode.row.parent, &*inode.row.name) == (parent, name) {
            if inode.extra_names().is_empty() {
                return None;
            }
            let (p, n) = inode.extras_mut().extra_names.remove(0);
            inode.row.parent = p;
            inode.row.name = n.as_str().into();
            (p, n)
        } else {
            let extra = &mut inode.extras_mut().extra_names;
            let at = extra.iter().position(|(p, n)| (*p, n.as_str()) == (parent, name))?;
            extra.remove(at)
        };
        self.unlink_child(parent, name, ino);
        Some(gone)
    }

    /// Move the name `(parent, name)` of `ino` to `(new_parent, new_name)`. For the row's
    /// own name this is [`InodeTable::relink`] (None); for an extra name it returns the
    /// old and new `links` rows to swap.
    pub fn rename_name(
        &mut self,
        ino: u64,
        (parent, name): (u64, &str),
        (new_parent, new_name): (u64, &str),
    ) -> Option<((u64, String), (u64, String))> {
        let inode = self.inodes.get_mut(ino)?;
        if (inode.row.parent, &*inode.row.name) == (parent, name) {
            self.relink(ino, new_parent, new_name);
            return None;
        }
        let at =
            inode.extra_names().iter().position(|(p, n)| (*p, n.as_str()) == (parent, name))?;
        let old = std::mem::replace(
            &mut inode.extras_mut().extra_names[at],
            (new_parent, new_name.to_owned()),
        );
        let is_dir = inode.row.kind == InodeKind::Dir;
        self.unlink_child(parent, name, ino);
        self.link_child(new_parent, new_name, ino, is_dir);
        Some((old, (new_parent, new_name.to_owned())))
    }

    /// Enter `name` -> `ino` (a directory when `is_dir`) in directory `parent`.
    fn link_child(&mut self, parent: u64, name: &str, ino: u64, is_dir: bool) {
        self.children.entry(parent).or_default().insert(name, ino, is_dir);
    }

    /// Remove `name` from directory `parent` if it still points at `ino`.
    fn unlink_child(&mut self, parent: u64, name: &str, ino: u64) {
        if let Some(c) = self.children.get_mut(&parent) {
            c.remove_if(name, ino);
        }
    }

    /// Entries of `parent` whose names differ from `name` but case-fold to the same key:
    /// the names `name` would collide with on a case-insensitive re-export.
    #[must_use]
    pub fn fold_siblings(&self, parent: u64, name: &str) -> Vec<(String, u64)> {
        let Some(dir) = self.children.get(&parent) else { return Vec::new() };
        dir.fold_siblings(name).into_iter().map(|(n, ino)| (n.to_owned(), ino)).collect()
    }

    /// Attach the target or device number of a special inode.
    pub fn set_special(&mut self, ino: u64, data: SpecialData) {
        if let Some(inode) = self.inodes.get_mut(ino) {
            inode.extras_mut().special = data;
        }
    }

    #[must_use]
    pub fn get(&self, ino: u64) -> Option<&Inode> {
        self.inodes.get(ino)
    }

    pub fn get_mut(&mut self, ino: u64) -> Option<&mut Inode> {
        self.inodes.get_mut(ino)
    }

    #[must_use]
    pub fn child(&self, parent: u64, name: &str) -> Option<u64> {
        self.children.get(&parent)?.get(name)
    }

    /// Children of a directory in name order.
    #[must_use]
    pub fn children(&self, parent: u64) -> Vec<(String, u64)> {
        self.children
            .get(&parent)
            .map(|c| c.iter().map(|(n, i)| (n.to_owned(), i)).collect())
            .unwrap_or_default()
    }

    #[must_use]
    pub fn has_children(&self, ino: u64) -> bool {
        self.children.get(&ino).is_some_and(|c| !c.is_empty())
    }

    /// Unlink `ino` from its directory. It stays in the table while open; returns true
    /// when it was dropped entirely (not open).
    pub fn detach(&mut self, ino: u64) -> bool {
        let Some(inode) = self.inodes.get_mut(ino) else { return true };
        let (parent, name) = (inode.row.parent, inode.row.name.clone());
        inode.linked = false;
        let open = inode.open_handles > 0;
        self.unlink_child(parent, &name, ino);
        if !open {
            self.inodes.remove(ino);
            self.children.remove(&ino);
            true
        } else {
            false
        }
    }

    /// Number of child directories of `ino` (for its link count), counted as entries come
    /// and go: a getattr of a directory of 1,000 saves looked each one up.
    #[must_use]
    pub fn subdir_count(&self, ino: u64) -> u32 {
        self.children.get(&ino).map_or(0, DirEntries::subdirs)
    }

    /// Record that entries of directory `ino` changed now (mtime and ctime, as POSIX
    /// requires of create, unlink, rename, mkdir, rmdir). Returns the row to persist.
    pub fn touch_dir(&mut self, ino: u64, now_ns: i64) -> Option<InodeRow> {
        let inode = self.inodes.get_mut(ino)?;
        inode.row.mtime_ns = now_ns;
        inode.row.ctime_ns = now_ns;
        Some(inode.row.clone())
    }

    /// Drop an unlinked inode whose last handle closed.
    pub fn forget_if_orphan(&mut self, ino: u64) -> bool {
        let orphan = self.inodes.get(ino).is_some_and(|i| !i.linked && i.open_handles == 0);
        if orphan {
            self.inodes.remove(ino);
            self.children.remove(&ino);
        }
        orphan
    }

    /// Move `ino` to `(new_parent, new_name)`; the caller has detached any target.
    pub fn relink(&mut self, ino: u64, new_parent: u64, new_name: &str) {
        let Some(inode) = self.inodes.get_mut(ino) else { return };
        let (parent, name) = (inode.row.parent, inode.row.name.clone());
        let is_dir = inode.row.kind == InodeKind::Dir;
        inode.row.parent = new_parent;
        inode.row.name = new_name.into();
        self.unlink_child(parent, &name, ino);
        self.link_child(new_parent, new_name, ino, is_dir);
    }

    /// The `/`-joined path of a linked inode below the root ("" for the root).
    #[must_use]
    pub fn rel_path(&self, ino: u64) -> Option<String> {
        let mut parts = Vec::new();
        let mut cur = ino;
        // Bounded: a path has at most MAX_PATH_COMPONENTS components.
        for _ in 0..=MAX_PATH_COMPONENTS {
            if cur == ROOT_INO {
                parts.reverse();
                return Some(parts.join("/"));
            }
            let inode = self.inodes.get(cur)?;
            if !inode.linked {
                return None;
            }
            parts.push(&*inode.row.name);
            cur = inode.row.parent;
        }
        None
    }

    /// The save path of a linked regular file that is synced, or None (directories,
    /// conflict copies, temp names, unlinked inodes).
    #[must_use]
    pub fn save_path(&self, ino: u64) -> Option<SavePath> {
        let inode = self.inodes.get(ino)?;
        if inode.row.kind != InodeKind::File {
            return None;
        }
        let rel = self.rel_path(ino)?;
        if rel.split('/').any(is_local_only_name) {
            return None;
        }
        SavePath::parse(&rel).ok()
    }

    /// Every synced file at or below `ino` (for renames and deletes of directories).
    #[must_use]
    pub fn save_paths_below(&self, ino: u64) -> Vec<(u64, SavePath)> {
        let mut out = Vec::new();
        let mut stack = vec![ino];
        while let Some(cur) = stack.pop() {
            if let Some(p) = self.save_path(cur) {
                out.push((cur, p));
            }
            if let Some(c) = self.children.get(&cur) {
                stack.extend(c.iter().map(|(_, i)| i));
            }
        }
        out
    }

    /// The inode at a save path, if linked.
    #[must_use]
    pub fn lookup_path(&self, path: &SavePath) -> Option<u64> {
        let mut cur = ROOT_INO;
        for comp in path.components() {
            cur = self.child(cur, comp)?;
        }
        Some(cur)
    }

    /// Give back the room the directories grew into while the table was loaded.
    pub fn shrink_to_fit(&mut self) {
        self.children.values_mut().for_each(DirEntries::shrink_to_fit);
    }

    /// All inodes (for startup checks).
    pub fn iter(&self) -> impl Iterator<Item = &Inode> {
        self.inodes.values()
    }

    /// Number of inodes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inodes.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inodes.is_empty()
    }
}
