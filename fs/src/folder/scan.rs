//! The full walk of a synced folder, at start and after the watcher lost events (an
//! inotify queue overflow): which saves differ from what this device last agreed on.
//!
//! Only files whose (size, mtime, inode) changed since they were last hashed are read;
//! the rest take their hash from the cache. A path is reported when its bytes differ from
//! its base (a new file, an edit made while the daemon was not running or while events
//! were lost) or when a file this device knew is gone (a delete). The engine decides what
//! each one means; reporting too much costs a decision, never a wrong sync.

use super::store::FolderStore;
use crate::local::{LocalResult, LocalStore};
use savesync_core::SavePath;
use std::collections::{BTreeMap, BTreeSet};

/// What a walk found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanReport {
    /// Save files seen.
    pub files: usize,
    /// Files read because their stat changed since they were hashed.
    pub hashed: usize,
    /// Saves that differ from their base (new or edited files).
    pub changed: Vec<SavePath>,
    /// Saves this device knew that are gone.
    pub vanished: Vec<SavePath>,
}

impl ScanReport {
    /// Everything the engine should look at.
    #[must_use]
    pub fn paths(&self) -> Vec<SavePath> {
        let mut all: Vec<SavePath> = self.changed.iter().chain(&self.vanished).cloned().collect();
        all.sort();
        all.dedup();
        all
    }
}

/// Walk the folder (or only below `under`) and compare with the state DB.
pub fn scan(store: &FolderStore, under: Option<&SavePath>) -> LocalResult<ScanReport> {
    let db = store.db();
    let inside = |p: &SavePath| under.is_none_or(|u| p.starts_with(u));
    let bases: BTreeMap<SavePath, Option<savesync_core::ContentHash>> = db
        .all_records()?
        .into_iter()
        .filter(|(p, _)| inside(p))
        .filter_map(|(p, r)| r.base.map(|b| (p, b.hash)))
        .collect();
    let mut report = ScanReport::default();
    let mut seen = BTreeSet::new();
    for (path, meta) in store.walk(under) {
        report.files += 1;
        let cached = db.folder_hash(&path)?;
        let fresh = cached.as_ref().is_some_and(|(k, _)| *k == crate::state::StatKey::of(&meta));
        if !fresh {
            report.hashed += 1;
        }
        let hash = match store.hash_at(&path, &meta) {
            Ok(h) => h,
            Err(e) => {
                // Gone or unreadable since the walk: let the engine look at it.
                tracing::debug!(%path, "hashing during a scan: {e}");
                report.changed.push(path.clone());
                seen.insert(path);
                continue;
            }
        };
        if bases.get(&path).copied().flatten() != Some(hash) {
            report.changed.push(path.clone());
        }
        seen.insert(path);
    }
    // Known files that are gone: those with a live base, and those hashed before.
    let mut gone: BTreeSet<SavePath> = bases
        .iter()
        .filter(|(p, h)| h.is_some() && !seen.contains(*p))
        .map(|(p, _)| p.clone())
        .collect();
    let stale: Vec<SavePath> =
        db.folder_hash_paths()?.into_iter().filter(|p| inside(p) && !seen.contains(p)).collect();
    db.forget_folder_hashes(&stale)?;
    gone.extend(stale);
    report.vanished = gone.into_iter().collect();
    Ok(report)
}
