//! Installing what the server decided into the local tree: downloaded bytes (to a temp
//! file in `data_dir/tmp`, hash verified by the client, then renamed over the cache file),
//! entries known only by name (too big to prefetch), local deletes, and `NAME.conflict`
//! copies. Each install re-checks under the table lock that the file did not change while
//! the download ran, and tells the kernel through the invalidation queue.
//!
//! Directories this module creates (parents of saves from the server) are marked in the
//! state DB's kv table (`synced_dir/<ino>`); when a remote delete or rename empties such a
//! directory, it goes too, up the tree. Directories made locally (mkdir) carry no mark and
//! stay, as does any directory that still holds something (local-only entries, a
//! `.conflict` copy, another save).

use super::reconcile::{Outcome, Snapshot, SyncError, SyncMode};
use crate::inode_table::{InodeTable, ROOT_INO};
use crate::savefs::{Invalidation, SaveFs, cache_stat, lock, now_ns};
use crate::state::{ConflictRow, InodeKind, InodeRow};
use savesync_core::{CONFLICT_SUFFIX, ContentHash, SavePath, Version};
use std::sync::atomic::Ordering;

/// Key of the kv mark saying directory `ino` was created to hold saves from the server.
fn synced_dir_key(ino: u64) -> String {
    format!("synced_dir/{ino}")
}

/// Mark the directories among `rows` as created by sync (best effort: an unmarked
/// directory is merely never pruned).
fn mark_synced_dirs(fs: &SaveFs, rows: &[InodeRow]) {
    for row in rows.iter().filter(|r| r.kind == InodeKind::Dir) {
        if let Err(e) = fs.db.set_kv(&synced_dir_key(row.ino), "1") {
            tracing::warn!(ino = row.ino, "marking a synced directory: {e}");
        }
    }
}

fn is_synced_dir(fs: &SaveFs, ino: u64) -> bool {
    fs.db.get_kv(&synced_dir_key(ino)).ok().flatten().is_some_and(|v| v == "1")
}

/// Add a file entry for a server save whose bytes are not here yet (fetched by prefetch or
/// on open), and tell the kernel its parent gained a name. Returns the new row.
fn insert_uncached_file(
    fs: &SaveFs,
    t: &mut InodeTable,
    parent: u64,
    name: &str,
    size: u64,
) -> InodeRow {
    let ino = t.alloc_ino();
    let mut row =
        fs.new_row(ino, parent, name, InodeKind::File, fs.cfg.file_mode, (fs.cfg.uid, fs.cfg.gid));
    row.cached = false;
    row.size = size;
    t.insert(row.clone());
    fs.invalidate(Invalidation::Entry { parent, name: name.to_owned() });
    row
}

/// Make sure every directory above `path` exists; returns the parent inode and the rows
/// created.
fn ensure_parents(
    fs: &SaveFs,
    t: &mut InodeTable,
    path: &SavePath,
) -> Result<(u64, Vec<InodeRow>), SyncError> {
    let mut cur = ROOT_INO;
    let mut rows = Vec::new();
    if let Some(parent) = path.parent() {
        for comp in parent.components() {
            cur = match t.child(cur, comp) {
                Some(ino) if t.get(ino).is_some_and(|i| i.row.kind == InodeKind::Dir) => ino,
                Some(_) => {
                    return Err(SyncError::Local(format!("{path}: {comp} is not a directory")));
                }
                None => {
                    let ino = t.alloc_ino();
                    let row = fs.new_row(
                        ino,
                        cur,
                        comp,
                        InodeKind::Dir,
                        fs.cfg.dir_mode,
                        (fs.cfg.uid, fs.cfg.gid),
                    );
                    t.insert(row.clone());
                    rows.push(row);
                    fs.invalidate(Invalidation::Entry { parent: cur, name: comp.to_owned() });
                    ino
                }
            };
        }
    }
    Ok((cur, rows))
}

/// Add (or update) an entry for a save whose bytes are not downloaded.
pub(crate) fn show_uncached(
    fs: &SaveFs,
    path: &SavePath,
    v: Version,
    size: u64,
) -> Result<(), SyncError> {
    let rows = {
        let mut t = lock(&fs.table);
        let (parent, mut rows) = ensure_parents(fs, &mut t, path)?;
        let ino = match t.child(parent, path.file_name()) {
            Some(ino) => ino,
            None => insert_uncached_file(fs, &mut t, parent, path.file_name(), size).ino,
        };
        if let Some(inode) = t.get_mut(ino) {
            if !inode.row.cached {
                inode.row.size = size;
                rows.push(inode.row.clone());
                fs.invalidate(Invalidation::Inode(ino));
            }
        }
        rows
    };
    // The device now stands for this version without holding its bytes.
    fs.db.install(&rows, &[(path.clone(), v, size)]).map_err(SyncError::local)?;
    mark_synced_dirs(fs, &rows);
    Ok(())
}

/// Show many server saves at once (negotiate on a fresh device): one table lock, one DB
/// transaction, so the whole library is listed at once; bytes follow by prefetch or open.
pub(crate) fn show_many_uncached(
    fs: &SaveFs,
    saves: &[(SavePath, Version, u64)],
) -> Result<(), SyncError> {
    let mut rows = Vec::new();
    let mut agreed = Vec::new();
    {
        let mut t = lock(&fs.table);
        for (path, v, size) in saves {
            if t.lookup_path(path).is_some() {
                continue;
            }
            let Ok((parent, dirs)) = ensure_parents(fs, &mut t, path) else { continue };
            rows.extend(dirs);
            rows.push(insert_uncached_file(fs, &mut t, parent, path.file_name(), *size));
            agreed.push((path.clone(), *v, *size));
        }
    }
    fs.db.install(&rows, &agreed).map_err(SyncError::local)?;
    mark_synced_dirs(fs, &rows);
    Ok(())
}

/// Download `v` of `path` and make it the local content and the base.
pub(crate) async fn download(
    fs: &SaveFs,
    path: &SavePath,
    v: Version,
    snap: &Snapshot,
    mode: SyncMode,
) -> Result<Outcome, SyncError> {
    let tmp = fs.tmp_path("download");
    let fetched = fs.remote.download_to_file(path.clone(), Some(v.rev), tmp.clone()).await;
    let fetched = match fetched {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
    };
    fs.online.store(true, Ordering::Relaxed);
    let installed = {
        let mut t = lock(&fs.table);
        let now_ino = t.lookup_path(path);
        let unchanged = match (snap.ino, now_ino) {
            (None, None) => true,
            (Some(a), Some(b)) if a == b => t.get(b).is_some_and(|i| {
                i.open_writers == 0 && !i.unflushed && i.row.cache_mtime_ns == snap.cache_mtime_ns
            }),
            _ => false,
        };
        if unchanged { Some(install_file(fs, &mut t, path, &tmp, fetched.size)?) } else { None }
    };
    let Some(rows) = installed else {
        // The file changed while we downloaded: the next decision sees the new bytes.
        let _ = std::fs::remove_file(&tmp);
        tracing::debug!(%path, ?mode, "download discarded: local file changed meanwhile");
        return Ok(Outcome::Busy);
    };
    fs.db
        .install(&rows, &[(path.clone(), fetched.version, fetched.size)])
        .map_err(SyncError::local)?;
    mark_synced_dirs(fs, &rows);
    tracing::debug!(%path, rev = %fetched.version.rev, "downloaded");
    Ok(Outcome::Done)
}

fn install_file(
    fs: &SaveFs,
    t: &mut InodeTable,
    path: &SavePath,
    tmp: &std::path::Path,
    size: u64,
) -> Result<Vec<InodeRow>, SyncError> {
    let (parent, mut rows) = ensure_parents(fs, t, path)?;
    let name = path.file_name();
    let (ino, new) = match t.child(parent, name) {
        Some(ino) => (ino, false),
        None => (t.alloc_ino(), true),
    };
    std::fs::rename(tmp, fs.cache_path(ino)).map_err(SyncError::local)?;
    let stat = std::fs::metadata(fs.cache_path(ino)).map_err(SyncError::local)?;
    let (csize, cmtime) = cache_stat(&stat);
    if new {
        let row = fs.new_row(
            ino,
            parent,
            name,
            InodeKind::File,
            fs.cfg.file_mode,
            (fs.cfg.uid, fs.cfg.gid),
        );
        t.insert(row);
    }
    let inode = t.get_mut(ino).ok_or_else(|| SyncError::Local(format!("{path}: inode lost")))?;
    let now = now_ns();
    inode.row.cached = true;
    inode.row.size = size;
    inode.row.cache_size = csize;
    inode.row.cache_mtime_ns = cmtime;
    inode.row.mtime_ns = now;
    inode.row.ctime_ns = now;
    inode.replaced = true;
    rows.push(inode.row.clone());
    if new {
        fs.invalidate(Invalidation::Entry { parent, name: name.to_owned() });
    } else {
        fs.invalidate(Invalidation::Inode(ino));
    }
    Ok(rows)
}

/// The server deleted the save and this device had not changed it: remove it locally.
pub(crate) fn remove_local(fs: &SaveFs, path: &SavePath, v: Version) -> Result<(), SyncError> {
    let removed = {
        let mut t = lock(&fs.table);
        match t.lookup_path(path) {
            Some(ino) => {
                let parent = t.get(ino).map_or(ROOT_INO, |i| i.row.parent);
                t.detach(ino);
                fs.invalidate(Invalidation::Entry { parent, name: path.file_name().to_owned() });
                Some(ino)
            }
            None => None,
        }
    };
    if let Some(ino) = removed {
        fs.db.delete_inode(ino).map_err(SyncError::local)?;
        let _ = std::fs::remove_file(fs.cache_path(ino));
        tracing::info!(%path, "deleted locally (deleted on the server)");
        prune_emptied_dirs(fs, path)?;
    }
    fs.db.set_base(path, Some(v)).map_err(SyncError::local)?;
    Ok(())
}

/// After `path` went away: remove its parent directories, innermost first, while each is
/// empty and was created by sync. Stops at the first directory that holds anything, was
/// made locally, or is open (a process may be about to create something in it).
fn prune_emptied_dirs(fs: &SaveFs, path: &SavePath) -> Result<(), SyncError> {
    let mut dir = path.parent();
    while let Some(dir_path) = dir {
        let pruned = {
            let mut t = lock(&fs.table);
            let Some(ino) = t.lookup_path(&dir_path) else { return Ok(()) };
            let removable = ino != ROOT_INO
                && t.get(ino).is_some_and(|i| i.row.kind == InodeKind::Dir && i.open_handles == 0)
                && !t.has_children(ino)
                && is_synced_dir(fs, ino);
            if !removable {
                return Ok(());
            }
            let parent = t.get(ino).map_or(ROOT_INO, |i| i.row.parent);
            t.detach(ino);
            fs.invalidate(Invalidation::Entry { parent, name: dir_path.file_name().to_owned() });
            ino
        };
        fs.db.delete_inode(pruned).map_err(SyncError::local)?;
        fs.db.set_kv(&synced_dir_key(pruned), "0").map_err(SyncError::local)?;
        tracing::info!(dir = %dir_path, "removed a directory emptied on the server");
        dir = dir_path.parent();
    }
    Ok(())
}

/// Show the other side's version `v` beside the save as `NAME.conflict` (replacing an
/// older conflict copy: at most one per save, the newest). `backed_up` is the hash of this
/// device's bytes already kept on the server as a `conflict` version, if any.
pub(crate) async fn conflict_copy(
    fs: &SaveFs,
    path: &SavePath,
    v: Version,
    size: u64,
    backed_up: Option<ContentHash>,
) -> Result<Outcome, SyncError> {
    let Some(hash) = v.hash else { return Ok(Outcome::Done) };
    let tmp = fs.tmp_path("conflict");
    if let Err(e) = fs.remote.download_to_file(path.clone(), Some(v.rev), tmp.clone()).await {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    let cname = format!("{}{CONFLICT_SUFFIX}", path.file_name());
    {
        let mut t = lock(&fs.table);
        let (parent, _) = ensure_parents(fs, &mut t, path)?;
        let (cino, new) = match t.child(parent, &cname) {
            Some(ino) => (ino, false),
            None => (t.alloc_ino(), true),
        };
        std::fs::rename(&tmp, fs.conflict_path(cino)).map_err(SyncError::local)?;
        let mut row =
            fs.new_row(cino, parent, &cname, InodeKind::Conflict, 0o444, (fs.cfg.uid, fs.cfg.gid));
        row.size = size;
        let crow = ConflictRow { path: path.clone(), ino: cino, rev: v.rev, hash, size, backed_up };
        // Recorded before the copy becomes visible (still under the table lock): a user who
        // deletes or renames it at once must find the version it shows, or resolving would
        // lose track of it.
        fs.db.put_conflict(&crow, &row).map_err(SyncError::local)?;
        t.insert(row);
        fs.invalidate(if new {
            Invalidation::Entry { parent, name: cname.clone() }
        } else {
            Invalidation::Inode(cino)
        });
    }
    tracing::warn!(%path, rev = %v.rev, "conflict: the other version is shown as {cname}");
    Ok(Outcome::Done)
}

/// The conflict went away by itself (both sides converged): remove the copy.
pub(crate) fn drop_conflict(
    fs: &SaveFs,
    path: &SavePath,
    conflict: Option<&ConflictRow>,
) -> Result<(), SyncError> {
    let Some(c) = conflict else { return Ok(()) };
    {
        let mut t = lock(&fs.table);
        if let Some(inode) = t.get(c.ino) {
            let parent = inode.row.parent;
            let name = inode.row.name.clone();
            t.detach(c.ino);
            fs.invalidate(Invalidation::Entry { parent, name });
        }
    }
    fs.db.delete_conflict(path).map_err(SyncError::local)?;
    fs.db.delete_inode(c.ino).map_err(SyncError::local)?;
    let _ = std::fs::remove_file(fs.conflict_path(c.ino));
    Ok(())
}
