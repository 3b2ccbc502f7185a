//! Namespace operations: lookup, getattr, mkdir, rmdir, unlink, rename, readdir.
//!
//! Sync rules applied here: unlinking a synced save queues its path (the sync decision
//! turns it into a conditional remote delete); a rename queues the old and the new save
//! paths of everything it moved, so "rename A to B" becomes "delete A, upload B", and a
//! rename over an existing save (the temp-file-then-rename pattern of GIO, Samba and
//! editors) becomes one upload of the target's new content. Unlinking or renaming a
//! `NAME.conflict` copy resolves the conflict (`resolve.rs`). A rename downloads nothing:
//! moved saves whose bytes were never downloaded remember where on the server they are
//! (`moved.rs`), and the new path is uploaded once they were fetched.
//!
//! Unlinking or renaming one name of a hard-linked special inode (`ops_special.rs`) moves
//! or drops that name only; the inode lives on under its other names.

use super::attr::{Attr, DirEntry};
use super::{SaveFs, history, lock, now_ns};
use crate::error::{FsError, FsResult};
use crate::state::InodeKind;
use crate::tree::{InodeTable, ROOT_INO};
use savesync_core::SavePath;

/// `links` rows a rename of hard-linked names drops and adds (see `ops_special.rs`).
#[derive(Debug, Default)]
struct LinkOps {
    gone: Vec<(u64, String)>,
    added: Option<(u64, (u64, String))>,
}

/// `renameat2` flags the mount understands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenameOptions {
    pub no_replace: bool,
    pub exchange: bool,
}

impl SaveFs {
    /// Check that `name` may be created in `parent`: a directory, a valid save name (not
    /// `*.conflict`, no control or invisible characters, within the length limits), and
    /// not a second name for a sibling on a case-insensitive re-export.
    pub(crate) fn check_new_name(&self, t: &InodeTable, parent: u64, name: &str) -> FsResult<()> {
        self.check_name_for(t, parent, name, None)
    }

    /// [`SaveFs::check_new_name`] for a rename of `moving`: its own current name is no
    /// collision (a case-only rename such as `zelda.srm` to `Zelda.srm` is allowed).
    pub(crate) fn check_name_for(
        &self,
        t: &InodeTable,
        parent: u64,
        name: &str,
        moving: Option<u64>,
    ) -> FsResult<()> {
        self.history_refuse_new(parent, name)?;
        let dir = t.get(parent).ok_or_else(|| FsError::not_found(format!("inode {parent}")))?;
        if dir.row.kind != InodeKind::Dir {
            return Err(FsError::not_dir(format!("inode {parent}")));
        }
        let rel = t.rel_path(parent).ok_or_else(|| FsError::not_found("unlinked directory"))?;
        let full = if rel.is_empty() { name.to_owned() } else { format!("{rel}/{name}") };
        SavePath::parse(&full).map_err(|e| FsError::bad_name(name, &e))?;
        // An existing `name` is replaced or refused by the caller; a new one must not fold
        // onto a different sibling.
        if t.child(parent, name).is_none()
            && let Some((other, _)) =
                t.fold_siblings(parent, name).into_iter().find(|(_, ino)| Some(*ino) != moving)
        {
            return Err(FsError::new(
                libc::EEXIST,
                format!("{name:?}: differs only in case from {other:?} in the same directory"),
            ));
        }
        Ok(())
    }

    /// Find `name` in `parent`.
    pub fn lookup(&self, parent: u64, name: &str) -> FsResult<Attr> {
        if let Some(found) = self.history_lookup(parent, name) {
            return found;
        }
        let t = lock(&self.tree.table);
        let found = t.child(parent, name);
        // Longer names than new ones may have exist only as conflict copies
        // (`NAME.conflict`, up to NAME_MAX); anything else that long is ENAMETOOLONG.
        if found.is_none() && name.len() > savesync_core::MAX_COMPONENT_BYTES {
            return Err(FsError::new(libc::ENAMETOOLONG, format!("{name:.32}...: name too long")));
        }
        let ino = found.ok_or_else(|| FsError::not_found(name))?;
        let inode = t.get(ino).ok_or_else(|| FsError::not_found(name))?;
        Ok(Attr::of(inode, t.subdir_count(ino)))
    }

    /// Attributes of an inode.
    pub fn getattr(&self, ino: u64) -> FsResult<Attr> {
        if history::is_virtual(ino) {
            return self.history_getattr(ino);
        }
        let t = lock(&self.tree.table);
        let inode = t.get(ino).ok_or_else(|| FsError::not_found(format!("inode {ino}")))?;
        Ok(Attr::of(inode, t.subdir_count(ino)))
    }

    /// Create a directory (local only: the server knows directories only through saves).
    pub fn mkdir(&self, parent: u64, name: &str, mode: u32, uid: u32, gid: u32) -> FsResult<Attr> {
        let (attr, rows) = {
            let mut t = lock(&self.tree.table);
            self.check_new_name(&t, parent, name)?;
            if t.child(parent, name).is_some() {
                return Err(FsError::exists(name));
            }
            let ino = t.alloc_ino();
            let row = self.tree.new_row(ino, parent, name, InodeKind::Dir, mode, (uid, gid));
            t.insert(row.clone());
            let attr = Attr::of(t.get(ino).ok_or_else(|| FsError::not_found(name))?, 0);
            let dir = t.touch_dir(parent, row.ctime_ns);
            let rows: Vec<_> = std::iter::once(row).chain(dir).collect();
            (attr, rows)
        };
        self.tree
            .db
            .put_inodes(&rows, &[])
            .map_err(|e| FsError::db(format!("mkdir {name}"), &e))?;
        Ok(attr)
    }

    /// Remove an empty directory.
    pub fn rmdir(&self, parent: u64, name: &str) -> FsResult<()> {
        self.history_refuse_removal(parent, name)?;
        let (ino, dir) = {
            let mut t = lock(&self.tree.table);
            let ino = t.child(parent, name).ok_or_else(|| FsError::not_found(name))?;
            let inode = t.get(ino).ok_or_else(|| FsError::not_found(name))?;
            if inode.row.kind != InodeKind::Dir {
                return Err(FsError::not_dir(name));
            }
            if t.has_children(ino) {
                return Err(FsError::new(libc::ENOTEMPTY, format!("{name}: directory not empty")));
            }
            t.detach(ino);
            (ino, t.touch_dir(parent, now_ns()))
        };
        self.tree
            .db_write_freeing_reserve(|| self.tree.db.put_inodes(dir.as_slice(), &[ino]))
            .map_err(|e| FsError::db(format!("rmdir {name}"), &e))
    }

    /// Remove a file; a synced save is deleted on the server (conditionally) after the
    /// debounce. Open handles keep reading and writing the unlinked bytes.
    pub fn unlink(&self, parent: u64, name: &str) -> FsResult<()> {
        self.history_refuse_removal(parent, name)?;
        let (ino, path, cached, dir) = {
            let mut t = lock(&self.tree.table);
            let ino = t.child(parent, name).ok_or_else(|| FsError::not_found(name))?;
            let inode = t.get(ino).ok_or_else(|| FsError::not_found(name))?;
            match inode.row.kind {
                InodeKind::Dir => return Err(FsError::is_dir(name)),
                InodeKind::Conflict => {
                    drop(t);
                    return self.resolve_keep_mine(ino);
                }
                // Regular files and the local-only special kinds (ops_special.rs).
                _ => {}
            }
            if t.has_extra_names(ino) {
                return self.unlink_one_name(t, ino, parent, name);
            }
            let cached = inode.row.cached;
            let path = t.save_path(ino);
            t.detach(ino);
            let dir = t.touch_dir(parent, now_ns());
            (ino, path, cached, dir)
        };
        // A delete must work on a full disk: it is how the user makes room again.
        self.tree
            .db_write_freeing_reserve(|| self.tree.db.put_inodes(dir.as_slice(), &[ino]))
            .map_err(|e| FsError::db(format!("unlink {name}"), &e))?;
        // Open fds keep the bytes alive; the name is gone now.
        let _ = std::fs::remove_file(self.tree.cache_path(ino));
        if let Some(path) = path {
            if !cached {
                // Never downloaded: the device's view is the head itself, so agreeing on it
                // first makes the decision a conditional delete rather than a re-download.
                let rec = self.tree.db.record(&path).map_err(|e| FsError::db("unlink", &e))?;
                if let Some(head) = rec.head {
                    self.tree
                        .db
                        .set_base(&path, Some(head))
                        .map_err(|e| FsError::db("unlink", &e))?;
                }
            }
            self.changed(&[path])?;
        }
        Ok(())
    }

    /// Rename `name` in `parent` to `new_name` in `new_parent`, replacing a target if
    /// allowed.
    pub fn rename(
        &self,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
        opts: RenameOptions,
    ) -> FsResult<()> {
        if opts.exchange {
            return Err(FsError::new(libc::EINVAL, "RENAME_EXCHANGE is not supported"));
        }
        self.history_refuse_removal(parent, name)?;
        self.history_refuse_new(new_parent, new_name)?;
        // Nothing is downloaded here, while the kernel holds its rename lock: moved saves
        // never downloaded keep their server version as origin (`moved.rs`).
        self.rename_entry(parent, name, new_parent, new_name, opts)
    }

    fn rename_entry(
        &self,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
        opts: RenameOptions,
    ) -> FsResult<()> {
        let mut link_ops = LinkOps::default();
        let (src_row, removed, mut paths, origins) = {
            let mut t = lock(&self.tree.table);
            let src = t.child(parent, name).ok_or_else(|| FsError::not_found(name))?;
            let src_kind = t.get(src).ok_or_else(|| FsError::not_found(name))?.row.kind;
            if src_kind == InodeKind::Conflict {
                drop(t);
                return self.resolve_keep_theirs(src, new_parent, new_name);
            }
            self.check_name_for(&t, new_parent, new_name, Some(src))?;
            let target = t.child(new_parent, new_name);
            if target == Some(src) {
                return Ok(());
            }
            if let Some(target) = target {
                if opts.no_replace {
                    return Err(FsError::exists(new_name));
                }
                let tkind = t.get(target).ok_or_else(|| FsError::not_found(new_name))?.row.kind;
                match (src_kind, tkind) {
                    (InodeKind::Dir, InodeKind::Dir) if t.has_children(target) => {
                        return Err(FsError::new(
                            libc::ENOTEMPTY,
                            format!("{new_name}: directory not empty"),
                        ));
                    }
                    (InodeKind::Dir, InodeKind::Dir) => {}
                    (InodeKind::Dir, _) => return Err(FsError::not_dir(new_name)),
                    (_, InodeKind::Dir) => return Err(FsError::is_dir(new_name)),
                    _ => {}
                }
            }
            if src_kind == InodeKind::Dir {
                // A directory cannot move below itself.
                let mut cur = new_parent;
                for _ in 0..=savesync_core::MAX_PATH_COMPONENTS {
                    if cur == src {
                        return Err(FsError::new(
                            libc::EINVAL,
                            format!("cannot move {name} inside itself"),
                        ));
                    }
                    if cur == ROOT_INO {
                        break;
                    }
                    cur = t.get(cur).map_or(ROOT_INO, |i| i.row.parent);
                }
            }
            let moved = t.save_paths_below(src);
            // Never downloaded: the bytes are the server's version of the old path.
            let mut origins = Vec::new();
            for (ino, path) in &moved {
                if t.get(*ino).is_some_and(|i| !i.row.cached) {
                    let rec = self.tree.db.record(path).map_err(|e| FsError::db("rename", &e))?;
                    if let Some(v) = rec.head.filter(|h| h.hash.is_some()).or(rec.base)
                        && v.hash.is_some()
                    {
                        origins.push((*ino, path.clone(), v));
                    }
                }
            }
            let mut paths: Vec<SavePath> = moved.into_iter().map(|(_, p)| p).collect();
            let mut removed = Vec::new();
            let mut rows = Vec::new();
            let now = now_ns();
            if let Some(target) = target {
                if t.has_extra_names(target) {
                    // A hard-linked target loses this one name only (ops_special.rs); its
                    // row goes first, as it may still hold the name the source takes.
                    link_ops.gone.extend(t.drop_name(target, new_parent, new_name));
                    if let Some(inode) = t.get_mut(target) {
                        inode.row.ctime_ns = now;
                        rows.push(inode.row.clone());
                    }
                } else {
                    t.detach(target);
                    removed.push(target);
                }
            }
            if let Some((old, new)) = t.rename_name(src, (parent, name), (new_parent, new_name)) {
                link_ops.gone.push(old);
                link_ops.added = Some((src, new));
            }
            if let Some(inode) = t.get_mut(src) {
                inode.row.ctime_ns = now;
            }
            paths.extend(t.save_paths_below(src).into_iter().map(|(_, p)| p));
            let row = t.get(src).map(|i| i.row.clone()).ok_or_else(|| FsError::not_found(name))?;
            rows.push(row);
            rows.extend(t.touch_dir(parent, now));
            if new_parent != parent {
                rows.extend(t.touch_dir(new_parent, now));
            }
            (rows, removed, paths, origins)
        };
        self.tree
            .db
            .put_moved(&src_row, &removed, &origins)
            .map_err(|e| FsError::db(format!("rename {name} -> {new_name}"), &e))?;
        let ctx = |e: &crate::state::DbError| FsError::db(format!("rename {name}"), e);
        for (p, n) in &link_ops.gone {
            self.tree.db.delete_link(*p, n).map_err(|e| ctx(&e))?;
        }
        if let Some((ino, (p, n))) = &link_ops.added {
            self.tree.db.put_link(*ino, *p, n).map_err(|e| ctx(&e))?;
        }
        for ino in &removed {
            let _ = std::fs::remove_file(self.tree.cache_path(*ino));
        }
        paths.sort();
        paths.dedup();
        self.changed(&paths)
    }

    /// Snapshot a directory listing for a new directory handle.
    pub fn opendir(&self, ino: u64) -> FsResult<u64> {
        if history::is_virtual(ino) {
            let entries = self.history_listing(ino)?;
            return Ok(self.handles_add_dir(entries));
        }
        let mut entries = {
            let t = lock(&self.tree.table);
            let dir = t.get(ino).ok_or_else(|| FsError::not_found(format!("inode {ino}")))?;
            if dir.row.kind != InodeKind::Dir {
                return Err(FsError::not_dir(format!("inode {ino}")));
            }
            let mut entries = vec![
                DirEntry { ino, kind: InodeKind::Dir, name: ".".into() },
                DirEntry { ino: dir.row.parent, kind: InodeKind::Dir, name: "..".into() },
            ];
            for (name, child) in t.children(ino) {
                if let Some(c) = t.get(child) {
                    entries.push(DirEntry { ino: child, kind: c.row.kind, name });
                }
            }
            entries
        };
        if ino == ROOT_INO {
            self.history_in_root_listing(&mut entries);
        }
        Ok(self.handles_add_dir(entries))
    }

    /// Entries of the snapshot from `offset` on; entry `i` has offset `i + 1`.
    pub fn readdir(&self, fh: u64, offset: u64) -> FsResult<Vec<(u64, DirEntry)>> {
        let entries = lock(&self.handles).dir(fh).ok_or_else(|| FsError::bad_handle(fh))?;
        Ok(entries
            .iter()
            .enumerate()
            .skip(offset as usize)
            .map(|(i, e)| (i as u64 + 1, e.clone()))
            .collect())
    }

    pub fn releasedir(&self, fh: u64) {
        let listing = lock(&self.handles).remove_dir(fh);
        if let Some(entries) = listing {
            self.history_listing_closed(&entries);
        }
    }

    fn handles_add_dir(&self, entries: Vec<DirEntry>) -> u64 {
        lock(&self.handles).add_dir(entries)
    }
}
