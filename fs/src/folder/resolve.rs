//! Resolving a conflict in a synced folder by file operations, as in the mount: delete
//! `NAME.conflict` to keep this device's version, or rename it over `NAME` to take the
//! other one. The folder sees only the result, so the decision is read from the state of
//! the files, not from events (which may be lost to a queue overflow or a daemon that was
//! not running): while the copy exists the conflict is open; once it is gone, `NAME`
//! holding the other side's bytes means "theirs", anything else (other bytes, or no file)
//! means "mine".
//!
//! Applying it records what the mount records: keep mine sets the base to the other
//! version (so this device's bytes are uploaded over it, or its delete committed); take
//! theirs agrees on the other version. Either way the save is queued for a decision.

use super::store::FolderStore;
use crate::local::{LocalResult, LocalStore};
use crate::state::ConflictRow;
use savesync_core::{ContentHash, SavePath};
use std::os::unix::fs::PermissionsExt;

/// How an open conflict stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// `NAME.conflict` is still there.
    Open,
    /// The copy was deleted: this device's version (bytes or absence) wins.
    KeepMine,
    /// The copy was renamed over `NAME`: the other version wins.
    TakeTheirs,
}

/// The pure rule: `copy_present` is whether `NAME.conflict` exists, `save_hash` the hash
/// of `NAME` (`None` when absent).
#[must_use]
pub fn judge(copy_present: bool, save_hash: Option<ContentHash>, row: &ConflictRow) -> Resolution {
    if copy_present {
        Resolution::Open
    } else if save_hash == Some(row.hash) {
        Resolution::TakeTheirs
    } else {
        Resolution::KeepMine
    }
}

/// Look at the conflict of `path` (if any) and apply what the user did. Returns true when
/// it was resolved (the caller queues the save for a decision).
pub fn check(store: &FolderStore, path: &SavePath) -> LocalResult<bool> {
    let Some(row) = store.db().conflict(path)? else { return Ok(false) };
    let copy_present = std::fs::symlink_metadata(store.paths().conflict_copy(path)).is_ok();
    let save_hash = if copy_present { None } else { store.hash(path)? };
    apply(store, &row, judge(copy_present, save_hash, &row))
}

/// Check every open conflict (at start and after a rescan).
pub fn check_all(store: &FolderStore) -> LocalResult<Vec<SavePath>> {
    let mut resolved = Vec::new();
    for row in store.db().conflicts()? {
        if check(store, &row.path)? {
            resolved.push(row.path);
        }
    }
    Ok(resolved)
}

fn apply(store: &FolderStore, row: &ConflictRow, res: Resolution) -> LocalResult<bool> {
    let db = store.db();
    let path = &row.path;
    match res {
        Resolution::Open => return Ok(false),
        Resolution::KeepMine => {
            db.set_base(path, Some(row.version()))?;
            tracing::info!(%path, "conflict resolved: keeping this device's version");
        }
        Resolution::TakeTheirs => {
            db.agree(path, row.version(), row.size)?;
            // The copy was read-only; the save it became must be writable again.
            let file = store.paths().file(path);
            if let Ok(meta) = std::fs::metadata(&file) {
                let mut perms = meta.permissions();
                perms.set_mode(perms.mode() | 0o200);
                std::fs::set_permissions(&file, perms)?;
            }
            tracing::info!(%path, "conflict resolved: taking the other version");
        }
    }
    db.delete_conflict(path)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::{Resolution, judge};
    use crate::state::ConflictRow;
    use savesync_core::{ContentHash, Rev, SavePath};

    #[test]
    fn resolution_table() {
        let theirs = ContentHash::of(b"theirs");
        let mine = ContentHash::of(b"mine");
        let row = ConflictRow {
            path: SavePath::parse("a.srm").unwrap(),
            ino: 0,
            rev: Rev(3),
            hash: theirs,
            size: 6,
            backed_up: None,
        };
        let table: &[(bool, Option<ContentHash>, Resolution)] = &[
            (true, Some(mine), Resolution::Open),   // copy still there
            (true, Some(theirs), Resolution::Open), // user copied (not moved) it
            (true, None, Resolution::Open),
            (false, Some(mine), Resolution::KeepMine), // copy deleted
            (false, None, Resolution::KeepMine),       // both deleted: my delete wins
            (false, Some(theirs), Resolution::TakeTheirs), // copy renamed over NAME
        ];
        for &(present, hash, want) in table {
            assert_eq!(judge(present, hash, &row), want, "{present} {hash:?}");
        }
    }
}
