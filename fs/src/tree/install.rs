//! Installing what the engine decided into the tree: downloaded bytes (a temp file in
//! `data_dir/tmp`, hash verified by the client, renamed over the cache file), entries known
//! only by name (too big to prefetch), local deletes, and `NAME.conflict` copies. Each
//! install re-checks under the table lock that the file did not change since the engine
//! looked, and tells the kernel through the invalidation queue.
//!
//! Every downloaded file is synced to disk before its rename ([`sync_download`]): the row
//! that records it as this device's cached copy may become durable with any later commit,
//! and after a power cut the start-up rescan must find the downloaded bytes behind it, not
//! an empty or zero-filled file it would take for a local change and upload.
//!
//! Directories this module creates (parents of saves from the server) are marked in the
//! state DB's kv table (`synced_dir/<ino>`); when a remote delete or rename empties such a
//! directory, it goes too, up the tree. Directories made locally (mkdir) carry no mark and
//! stay, as does any directory that still holds something (local-only entries, a
//! `.conflict` copy, another save).

use super::inode_table::{InodeTable, ROOT_INO};
use super::{Invalidation, LocalTree, cache_stat, lock, now_ns};
use crate::local::{Entry, Installed, LocalError, LocalResult};
use crate::state::{ConflictRow, InodeKind, InodeRow};
use savesync_core::{CONFLICT_SUFFIX, SavePath, Version};
use std::path::Path;

/// Make the downloaded temp file's bytes durable before it is renamed into the cache (see
/// the module doc). Runs before the table lock is taken.
pub(super) fn sync_download(tmp: &Path) -> LocalResult<()> {
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_data())
        .map_err(|e| LocalError(format!("syncing the download {}: {e}", tmp.display())))
}

/// Key of the kv mark saying directory `ino` was created to hold saves from the server.
fn synced_dir_key(ino: u64) -> String {
    format!("synced_dir/{ino}")
}

/// Mark the directories among `rows` as created by sync (best effort: an unmarked
/// directory is merely never pruned).
fn mark_synced_dirs(tree: &LocalTree, rows: &[InodeRow]) {
    for row in rows.iter().filter(|r| r.kind == InodeKind::Dir) {
        if let Err(e) = tree.db.set_kv(&synced_dir_key(row.ino), "1") {
            tracing::warn!(ino = row.ino, "marking a synced directory: {e}");
        }
    }
}

fn is_synced_dir(tree: &LocalTree, ino: u64) -> bool {
    tree.db.get_kv(&synced_dir_key(ino)).ok().flatten().is_some_and(|v| v == "1")
}

/// Add a file entry for a server save whose bytes are not here yet (fetched by prefetch or
/// on open), and tell the kernel its parent gained a name. Returns the new row.
fn insert_uncached_file(
    tree: &LocalTree,
    t: &mut InodeTable,
    parent: u64,
    name: &str,
    size: u64,
) -> InodeRow {
    let ino = t.alloc_ino();
    let mut row = tree.new_row(
        ino,
        parent,
        name,
        InodeKind::File,
        tree.cfg.file_mode,
        (tree.cfg.uid, tree.cfg.gid),
    );
    row.cached = false;
    row.size = size;
    t.insert(row.clone());
    tree.invalidate(Invalidation::Entry { parent, name: name.to_owned() });
    row
}

/// Make sure every directory above `path` exists; returns the parent inode and the rows
/// created.
fn ensure_parents(
    tree: &LocalTree,
    t: &mut InodeTable,
    path: &SavePath,
) -> LocalResult<(u64, Vec<InodeRow>)> {
    let mut cur = ROOT_INO;
    let mut rows = Vec::new();
    if let Some(parent) = path.parent() {
        for comp in parent.components() {
            cur = match t.child(cur, comp) {
                Some(ino) if t.get(ino).is_some_and(|i| i.row.kind == InodeKind::Dir) => ino,
                Some(_) => {
                    return Err(LocalError(format!("{path}: {comp} is not a directory")));
                }
                None => {
                    let ino = t.alloc_ino();
                    let row = tree.new_row(
                        ino,
                        cur,
                        comp,
                        InodeKind::Dir,
                        tree.cfg.dir_mode,
                        (tree.cfg.uid, tree.cfg.gid),
                    );
                    t.insert(row.clone());
                    rows.push(row);
                    tree.invalidate(Invalidation::Entry { parent: cur, name: comp.to_owned() });
                    ino
                }
            };
        }
    }
    Ok((cur, rows))
}

/// Show server saves whose bytes are not downloaded (too big to prefetch, or a fresh
/// device listing its library): one table lock, one DB transaction. An entry that exists
/// without its bytes gets the new size; a cached one is left alone. Each shown save's
/// version becomes its base: the device stands for it without holding its bytes.
pub(super) fn show_uncached(
    tree: &LocalTree,
    saves: &[(SavePath, Version, u64)],
) -> LocalResult<()> {
    let mut rows = Vec::new();
    let mut agreed = Vec::new();
    {
        let mut t = lock(&tree.table);
        for (path, v, size) in saves {
            let Ok((parent, dirs)) = ensure_parents(tree, &mut t, path) else { continue };
            rows.extend(dirs);
            let ino = match t.child(parent, path.file_name()) {
                Some(ino) => ino,
                None => {
                    rows.push(insert_uncached_file(tree, &mut t, parent, path.file_name(), *size));
                    agreed.push((path.clone(), *v, *size));
                    continue;
                }
            };
            if let Some(inode) = t.get_mut(ino).filter(|i| i.row.kind == InodeKind::File)
                && !inode.row.cached
            {
                inode.row.size = *size;
                rows.push(inode.row.clone());
                agreed.push((path.clone(), *v, *size));
                tree.invalidate(Invalidation::Inode(ino));
            }
        }
    }
    tree.db.install(&rows, &agreed)?;
    mark_synced_dirs(tree, &rows);
    Ok(())
}

/// True when the entry at `path` is still what the engine saw.
fn unchanged(t: &InodeTable, path: &SavePath, seen: &Entry) -> bool {
    match t.lookup_path(path) {
        None => !seen.cached && seen.token.id == 0,
        Some(ino) => {
            ino == seen.token.id
                && t.get(ino).is_some_and(|i| {
                    i.open_writers == 0
                        && !i.unflushed
                        && i.row.cache_mtime_ns == seen.token.mtime_ns
                })
        }
    }
}

/// Make the downloaded `tmp` the content of `path` and `v` its base, unless the file
/// changed since `seen`.
pub(super) fn install(
    tree: &LocalTree,
    path: &SavePath,
    tmp: &Path,
    v: Version,
    size: u64,
    seen: &Entry,
) -> LocalResult<Installed> {
    sync_download(tmp)?;
    let installed = {
        let mut t = lock(&tree.table);
        if unchanged(&t, path, seen) {
            Some(install_file(tree, &mut t, path, tmp, size)?)
        } else {
            None
        }
    };
    let Some(rows) = installed else {
        // The file changed while the engine downloaded: it decides again with the new bytes.
        let _ = std::fs::remove_file(tmp);
        return Ok(Installed::Changed);
    };
    tree.db.install(&rows, &[(path.clone(), v, size)])?;
    mark_synced_dirs(tree, &rows);
    Ok(Installed::Done)
}

fn install_file(
    tree: &LocalTree,
    t: &mut InodeTable,
    path: &SavePath,
    tmp: &Path,
    size: u64,
) -> LocalResult<Vec<InodeRow>> {
    let (parent, mut rows) = ensure_parents(tree, t, path)?;
    let name = path.file_name();
    let (ino, new) = match t.child(parent, name) {
        Some(ino) => (ino, false),
        None => (t.alloc_ino(), true),
    };
    std::fs::rename(tmp, tree.cache_path(ino))?;
    let stat = std::fs::metadata(tree.cache_path(ino))?;
    let (csize, cmtime) = cache_stat(&stat);
    if new {
        let row = tree.new_row(
            ino,
            parent,
            name,
            InodeKind::File,
            tree.cfg.file_mode,
            (tree.cfg.uid, tree.cfg.gid),
        );
        t.insert(row);
    }
    let inode = t.get_mut(ino).ok_or_else(|| LocalError(format!("{path}: inode lost")))?;
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
        tree.invalidate(Invalidation::Entry { parent, name: name.to_owned() });
    } else {
        tree.invalidate(Invalidation::Inode(ino));
    }
    Ok(rows)
}

/// The server deleted the save (tombstone `v`) and this device had not changed it:
/// remove it locally, unless it changed since `seen`.
pub(super) fn remove(
    tree: &LocalTree,
    path: &SavePath,
    v: Version,
    seen: &Entry,
) -> LocalResult<Installed> {
    let removed = {
        let mut t = lock(&tree.table);
        if !unchanged(&t, path, seen) {
            return Ok(Installed::Changed);
        }
        match t.lookup_path(path) {
            Some(ino) => {
                let parent = t.get(ino).map_or(ROOT_INO, |i| i.row.parent);
                t.detach(ino);
                tree.invalidate(Invalidation::Entry { parent, name: path.file_name().to_owned() });
                Some(ino)
            }
            None => None,
        }
    };
    if let Some(ino) = removed {
        tree.db.delete_inode(ino)?;
        let _ = std::fs::remove_file(tree.cache_path(ino));
        tracing::info!(%path, "deleted locally (deleted on the server)");
        prune_emptied_dirs(tree, path)?;
    }
    tree.db.set_base(path, Some(v))?;
    Ok(Installed::Done)
}

/// After `path` went away: remove its parent directories, innermost first, while each is
/// empty and was created by sync. Stops at the first directory that holds anything, was
/// made locally, or is open (a process may be about to create something in it).
fn prune_emptied_dirs(tree: &LocalTree, path: &SavePath) -> LocalResult<()> {
    let mut dir = path.parent();
    while let Some(dir_path) = dir {
        let pruned = {
            let mut t = lock(&tree.table);
            let Some(ino) = t.lookup_path(&dir_path) else { return Ok(()) };
            let removable = ino != ROOT_INO
                && t.get(ino).is_some_and(|i| i.row.kind == InodeKind::Dir && i.open_handles == 0)
                && !t.has_children(ino)
                && is_synced_dir(tree, ino);
            if !removable {
                return Ok(());
            }
            let parent = t.get(ino).map_or(ROOT_INO, |i| i.row.parent);
            t.detach(ino);
            tree.invalidate(Invalidation::Entry { parent, name: dir_path.file_name().to_owned() });
            ino
        };
        tree.db.delete_inode(pruned).map_err(LocalError::new)?;
        tree.db.set_kv(&synced_dir_key(pruned), "0").map_err(LocalError::new)?;
        tracing::info!(dir = %dir_path, "removed a directory emptied on the server");
        dir = dir_path.parent();
    }
    Ok(())
}

/// Show the other side's version (downloaded to `tmp`) beside the save as
/// `NAME.conflict`, replacing an older conflict copy: at most one per save, the newest.
pub(super) fn put_conflict(
    tree: &LocalTree,
    path: &SavePath,
    tmp: &Path,
    c: &ConflictRow,
) -> LocalResult<()> {
    let cname = format!("{}{CONFLICT_SUFFIX}", path.file_name());
    sync_download(tmp)?;
    let mut t = lock(&tree.table);
    let (parent, _) = ensure_parents(tree, &mut t, path)?;
    let (cino, new) = match t.child(parent, &cname) {
        Some(ino) => (ino, false),
        None => (t.alloc_ino(), true),
    };
    std::fs::rename(tmp, tree.conflict_path(cino))?;
    let mut row = tree.new_row(
        cino,
        parent,
        &cname,
        InodeKind::Conflict,
        0o444,
        (tree.cfg.uid, tree.cfg.gid),
    );
    row.size = c.size;
    let crow = ConflictRow { ino: cino, ..c.clone() };
    // Recorded before the copy becomes visible (still under the table lock): a user who
    // deletes or renames it at once must find the version it shows, or resolving would
    // lose track of it.
    tree.db.put_conflict(&crow, &row)?;
    t.insert(row);
    tree.invalidate(if new {
        Invalidation::Entry { parent, name: cname.clone() }
    } else {
        Invalidation::Inode(cino)
    });
    Ok(())
}

/// The conflict went away by itself (both sides converged): remove the copy.
///
/// `c` is the engine's snapshot, taken before it talked to the server. Meanwhile the user
/// may have resolved the conflict (renaming the copy over the save turns the copy's inode
/// into the save itself) or a newer copy may have replaced it. Only the copy that `c`
/// describes, still recorded and still a conflict copy, is dropped; anything else is left
/// alone, so a stale plan can never remove the save a resolve just put in place.
pub(super) fn drop_conflict(tree: &LocalTree, path: &SavePath, c: &ConflictRow) -> LocalResult<()> {
    let mut t = lock(&tree.table);
    let recorded = tree.db.conflict(path)?;
    let same_copy = recorded.is_some_and(|r| (r.ino, r.rev, r.hash) == (c.ino, c.rev, c.hash));
    if !same_copy {
        return Ok(());
    }
    if let Some(inode) = t.get(c.ino) {
        if inode.row.kind != InodeKind::Conflict {
            return Ok(());
        }
        let parent = inode.row.parent;
        let name = inode.row.name.to_string();
        t.detach(c.ino);
        tree.invalidate(Invalidation::Entry { parent, name });
    }
    tree.db.delete_conflict(path)?;
    tree.db.delete_inode(c.ino)?;
    drop(t);
    let _ = std::fs::remove_file(tree.conflict_path(c.ino));
    Ok(())
}
