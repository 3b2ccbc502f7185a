//! Local-only special files: symlinks (`symlink`, `readlink`), FIFOs, sockets and device
//! nodes (`mknod`), and the hard-link rule (`link`).
//!
//! These are kept like temp names: persisted in the state DB with stable inode numbers
//! (they survive a remount), shown with their real file type, but never uploaded, never
//! queued, never deleted on the server: [`crate::tree::InodeTable::save_path`] is
//! None for them, and the sync engine leaves a server save alone when a special entry of
//! the same name shadows it (as it does for a directory). A symlink's target and a device
//! number live in the `specials` table; the kernel does all I/O of FIFOs, sockets and
//! device nodes itself, so the mount only keeps their inode.
//!
//! A special entry at a save's path (a symlink renamed over a save, say) shadows that
//! save exactly as a directory does: neither is touched, the server keeps the save.
//!
//! Hard links: allowed on the special kinds only (several names for one inode, `nlink`
//! counts them, unlink drops one name, the inode goes with its last). Refused with EPERM
//! on regular files and conflict copies: a save is one path on every device, so a second
//! name would either have to sync (two saves sharing bytes) or silently not, and neither
//! is sound for a save library; EPERM is what POSIX gives for "not on this file".

use super::attr::Attr;
use super::{SaveFs, lock, now_ns};
use crate::error::{FsError, FsResult};
use crate::state::{InodeKind, SpecialData};
use crate::tree::InodeTable;
use std::sync::MutexGuard;

/// Longest symlink target accepted (Linux PATH_MAX, counting the NUL).
const MAX_TARGET_BYTES: usize = 4095;

impl SaveFs {
    /// Create a symlink `name` in `parent` pointing at `target` (stored as given; the
    /// kernel resolves it).
    pub fn symlink(
        &self,
        parent: u64,
        name: &str,
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        if target.len() > MAX_TARGET_BYTES {
            return Err(FsError::new(libc::ENAMETOOLONG, "symlink target too long"));
        }
        let data = SpecialData { target: target.to_vec(), rdev: 0 };
        self.create_special(parent, name, InodeKind::Symlink, 0o777, data, (uid, gid))
    }

    /// The target of symlink `ino`.
    pub fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        let t = lock(&self.tree.table);
        let inode = t.get(ino).ok_or_else(|| FsError::not_found(format!("inode {ino}")))?;
        if inode.row.kind != InodeKind::Symlink {
            return Err(FsError::new(libc::EINVAL, format!("inode {ino}: not a symlink")));
        }
        Ok(inode.special().target.clone())
    }

    /// Create a FIFO, socket or device node (`mode` carries the `S_IFMT` type bits).
    /// Regular files go through `create`; anything else is EINVAL.
    pub fn mknod(
        &self,
        parent: u64,
        name: &str,
        mode: u32,
        rdev: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        let kind = match mode & libc::S_IFMT {
            libc::S_IFIFO => InodeKind::Fifo,
            libc::S_IFSOCK => InodeKind::Socket,
            libc::S_IFCHR => InodeKind::CharDev,
            libc::S_IFBLK => InodeKind::BlockDev,
            other => {
                return Err(FsError::new(libc::EINVAL, format!("mknod of file type {other:#o}")));
            }
        };
        let rdev = if matches!(kind, InodeKind::CharDev | InodeKind::BlockDev) { rdev } else { 0 };
        let data = SpecialData { target: Vec::new(), rdev };
        self.create_special(parent, name, kind, mode, data, (uid, gid))
    }

    /// Give special inode `ino` the extra name `new_name` in `new_parent` (a hard link).
    pub fn link(&self, ino: u64, new_parent: u64, new_name: &str) -> FsResult<Attr> {
        self.history_refuse_change(ino)?;
        self.history_refuse_new(new_parent, new_name)?;
        let (attr, rows) = {
            let mut t = lock(&self.tree.table);
            let inode = t.get(ino).ok_or_else(|| FsError::not_found(format!("inode {ino}")))?;
            let kind = inode.row.kind;
            if kind == InodeKind::Dir {
                return Err(FsError::new(libc::EPERM, "hard links to directories"));
            }
            self.check_new_name(&t, new_parent, new_name)?;
            if t.child(new_parent, new_name).is_some() {
                return Err(FsError::exists(new_name));
            }
            if !kind.is_special() {
                return Err(FsError::new(
                    libc::EPERM,
                    format!("{new_name}: a save has exactly one path (no hard links)"),
                ));
            }
            // The links row first: a crash before the row update only loses a ctime.
            self.tree
                .db
                .put_link(ino, new_parent, new_name)
                .map_err(|e| FsError::db(format!("link {new_name}"), &e))?;
            t.add_name(ino, new_parent, new_name);
            let now = now_ns();
            let inode = t.get_mut(ino).ok_or_else(|| FsError::not_found(new_name))?;
            inode.row.ctime_ns = now;
            let row = inode.row.clone();
            let attr = Attr::of(t.get(ino).ok_or_else(|| FsError::not_found(new_name))?, 0);
            (attr, std::iter::once(row).chain(t.touch_dir(new_parent, now)).collect::<Vec<_>>())
        };
        self.tree
            .db
            .put_inodes(&rows, &[])
            .map_err(|e| FsError::db(format!("link {new_name}"), &e))?;
        Ok(attr)
    }

    /// Unlink one name of an inode that has several (the caller checked): the inode and
    /// its other names stay.
    pub(crate) fn unlink_one_name(
        &self,
        mut t: MutexGuard<'_, InodeTable>,
        ino: u64,
        parent: u64,
        name: &str,
    ) -> FsResult<()> {
        let gone = t.drop_name(ino, parent, name);
        let now = now_ns();
        let mut rows = Vec::new();
        if let Some(inode) = t.get_mut(ino) {
            // POSIX: unlink changes the ctime of a file that keeps other links.
            inode.row.ctime_ns = now;
            rows.push(inode.row.clone());
        }
        rows.extend(t.touch_dir(parent, now));
        drop(t);
        let ctx = |e: &crate::state::DbError| FsError::db(format!("unlink {name}"), e);
        self.tree.db.put_inodes(&rows, &[]).map_err(|e| ctx(&e))?;
        if let Some((p, n)) = gone {
            self.tree.db.delete_link(p, &n).map_err(|e| ctx(&e))?;
        }
        Ok(())
    }

    fn create_special(
        &self,
        parent: u64,
        name: &str,
        kind: InodeKind,
        mode: u32,
        data: SpecialData,
        owner: (u32, u32),
    ) -> FsResult<Attr> {
        let ino = {
            let mut t = lock(&self.tree.table);
            self.check_new_name(&t, parent, name)?;
            if t.child(parent, name).is_some() {
                return Err(FsError::exists(name));
            }
            t.alloc_ino()
        };
        // The specials row first: a crash before the inode row leaves only an unused row.
        self.tree
            .db
            .put_special(ino, &data)
            .map_err(|e| FsError::db(format!("create {name}"), &e))?;
        let (attr, rows) = {
            let mut t = lock(&self.tree.table);
            // Re-checked: the lock was released for the DB write.
            self.check_new_name(&t, parent, name)?;
            if t.child(parent, name).is_some() {
                return Err(FsError::exists(name));
            }
            let mut row = self.tree.new_row(ino, parent, name, kind, mode, owner);
            row.size = data.target.len() as u64;
            t.insert(row.clone());
            t.set_special(ino, data);
            let attr = Attr::of(t.get(ino).ok_or_else(|| FsError::not_found(name))?, 0);
            let dir = t.touch_dir(parent, row.ctime_ns);
            (attr, std::iter::once(row).chain(dir).collect::<Vec<_>>())
        };
        self.tree
            .db
            .put_inodes(&rows, &[])
            .map_err(|e| FsError::db(format!("create {name}"), &e))?;
        Ok(attr)
    }
}
