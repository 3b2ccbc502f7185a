//! Resolving a conflict with ordinary file operations, so it works from a file manager,
//! Samba or SFTP:
//!
//! - unlink `NAME.conflict`: keep mine. The other version becomes the base, so the sync
//!   decision is an upload of this device's bytes on top of it.
//! - rename `NAME.conflict` over `NAME`: take theirs. The conflict copy becomes the file
//!   (same inode, as POSIX rename requires) and its version the base: nothing to upload.
//!
//! Either way the losing version stays in the server's history.

use super::{SaveFs, cache_stat, lock};
use crate::error::{FsError, FsResult};
use crate::state::InodeKind;
use savesync_core::{CONFLICT_SUFFIX, SavePath};

impl SaveFs {
    /// The save a conflict copy belongs to.
    fn conflict_target(&self, cino: u64) -> FsResult<(u64, String, SavePath)> {
        let t = lock(&self.tree.table);
        let inode = t.get(cino).ok_or_else(|| FsError::not_found(format!("inode {cino}")))?;
        let parent = inode.row.parent;
        let name = inode
            .row
            .name
            .strip_suffix(CONFLICT_SUFFIX)
            .ok_or_else(|| FsError::new(libc::EIO, format!("inode {cino}: bad conflict name")))?
            .to_owned();
        let rel = t.rel_path(parent).ok_or_else(|| FsError::not_found("unlinked directory"))?;
        let full = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        let path = SavePath::parse(&full).map_err(|e| FsError::bad_name(&full, &e))?;
        Ok((parent, name, path))
    }

    /// `rm NAME.conflict`: this device's version wins and is uploaded.
    pub fn resolve_keep_mine(&self, cino: u64) -> FsResult<()> {
        let (_, _, path) = self.conflict_target(cino)?;
        let conflict = self.tree.db.conflict(&path).map_err(|e| FsError::db("resolve", &e))?;
        let ctx = |e: &crate::state::DbError| FsError::db(format!("resolving {path}"), e);
        // Without its row (should not happen) the copy is just removed.
        if let Some(conflict) = conflict {
            self.tree.db.set_base(&path, Some(conflict.version())).map_err(|e| ctx(&e))?;
            self.tree.db.delete_conflict(&path).map_err(|e| ctx(&e))?;
        }
        lock(&self.tree.table).detach(cino);
        self.tree.db.delete_inode(cino).map_err(|e| ctx(&e))?;
        let _ = std::fs::remove_file(self.tree.conflict_path(cino));
        tracing::info!(%path, "conflict resolved: keeping this device's version");
        self.changed(&[path])
    }

    /// `mv NAME.conflict NAME`: the other version wins.
    pub fn resolve_keep_theirs(&self, cino: u64, new_parent: u64, new_name: &str) -> FsResult<()> {
        let (parent, name, path) = self.conflict_target(cino)?;
        if parent != new_parent || name != new_name {
            return Err(FsError::new(
                libc::EPERM,
                format!("a conflict copy can only be renamed over its own save {name:?}"),
            ));
        }
        let conflict = self
            .tree
            .db
            .conflict(&path)
            .map_err(|e| FsError::db("resolve", &e))?
            .ok_or_else(|| FsError::not_found(format!("conflict of {path}")))?;
        let (row, removed) = {
            let mut t = lock(&self.tree.table);
            // The engine may have dropped the copy meanwhile (both sides converged): then
            // nothing changes and the save stays as it is.
            if !t.get(cino).is_some_and(|i| i.row.kind == InodeKind::Conflict) {
                return Err(FsError::not_found(format!("{name}{CONFLICT_SUFFIX}")));
            }
            std::fs::rename(self.tree.conflict_path(cino), self.tree.cache_path(cino))
                .map_err(|e| FsError::io(format!("taking conflict copy of {path}"), &e))?;
            let mut removed = Vec::new();
            if let Some(target) = t.child(parent, &name) {
                t.detach(target);
                removed.push(target);
            }
            let stat = std::fs::metadata(self.tree.cache_path(cino))
                .map_err(|e| FsError::io(format!("stat {path}"), &e))?;
            let (size, mtime) = cache_stat(&stat);
            t.relink(cino, parent, &name);
            let inode =
                t.get_mut(cino).ok_or_else(|| FsError::not_found(format!("inode {cino}")))?;
            inode.row.kind = InodeKind::File;
            inode.row.mode = self.cfg.file_mode;
            inode.row.cached = true;
            inode.row.size = size;
            inode.row.cache_size = size;
            inode.row.cache_mtime_ns = mtime;
            inode.row.ctime_ns = super::now_ns();
            (inode.row.clone(), removed)
        };
        let ctx = |e: &crate::state::DbError| FsError::db(format!("resolving {path}"), e);
        self.tree.db.put_inodes(std::slice::from_ref(&row), &removed).map_err(|e| ctx(&e))?;
        self.tree.db.agree(&path, conflict.version(), conflict.size).map_err(|e| ctx(&e))?;
        self.tree.db.delete_conflict(&path).map_err(|e| ctx(&e))?;
        for ino in removed {
            let _ = std::fs::remove_file(self.tree.cache_path(ino));
        }
        tracing::info!(%path, "conflict resolved: taking the other version");
        self.changed(&[path])
    }

    /// Resolve by save path (the `savesync resolve` command when not mounted).
    pub fn resolve_path(&self, path: &SavePath, keep_mine: bool) -> FsResult<()> {
        let cname = format!("{}{CONFLICT_SUFFIX}", path.file_name());
        let (parent, cino) = {
            let t = lock(&self.tree.table);
            let parent = match path.parent() {
                Some(p) => t.lookup_path(&p).ok_or_else(|| FsError::not_found(p.as_str()))?,
                None => crate::tree::ROOT_INO,
            };
            let cino = t
                .child(parent, &cname)
                .ok_or_else(|| FsError::not_found(format!("{path}: no conflict")))?;
            (parent, cino)
        };
        if keep_mine {
            self.resolve_keep_mine(cino)
        } else {
            self.resolve_keep_theirs(cino, parent, path.file_name())
        }
    }
}
