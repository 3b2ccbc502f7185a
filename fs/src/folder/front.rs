//! The synced folder's front-end loop: between the watcher, the store and the engine.
//! At start it removes temp files a crash left, applies conflict resolutions made while
//! nothing ran, and walks the folder ([`catch_up`]); then every batch of watcher hints
//! becomes "these saves changed" for the engine ([`apply_batch`]), with a full rescan
//! whenever events were lost. It never decides anything itself: the engine looks at each
//! reported path and decides with `core::decide`.

use super::paths::{Name, classify};
use super::scan::{ScanReport, scan};
use super::store::FolderStore;
use super::watch::{Batch, FolderWatcher};
use crate::local::{LocalError, LocalResult, LocalStore};
use savesync_core::SavePath;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Where the front-end reports changed saves (the engine).
pub trait ChangeSink: Send + Sync {
    /// These saves may have changed on this device: queue them for a decision.
    fn changed(&self, paths: &[SavePath]) -> Result<(), LocalError>;
}

/// How long the loop waits for events before looking at its stop flag again.
const STOP_POLL: Duration = Duration::from_millis(200);
/// Pause before retrying after a failed batch (a full disk, a busy DB).
const FAULT_PAUSE: Duration = Duration::from_millis(500);

/// Bring the state in line with the folder after a start: stale temps, resolutions made
/// while not running, and a full walk; reports everything that needs a decision.
pub fn catch_up(store: &FolderStore, sink: &dyn ChangeSink) -> LocalResult<ScanReport> {
    let temps = store.remove_stale_temps();
    if temps > 0 {
        tracing::info!(temps, "removed temp files left by an earlier run");
    }
    rescan(store, sink)
}

/// Walk the whole folder and report what differs.
pub fn rescan(store: &FolderStore, sink: &dyn ChangeSink) -> LocalResult<ScanReport> {
    let resolved = super::resolve::check_all(store)?;
    let report = scan(store, None)?;
    let mut paths = report.paths();
    paths.extend(resolved);
    paths.sort();
    paths.dedup();
    sink.changed(&paths)?;
    super::wait_barrier::acknowledge_present(store.db(), store.paths().root())?;
    tracing::info!(
        files = report.files,
        hashed = report.hashed,
        changed = report.changed.len(),
        vanished = report.vanished.len(),
        "scanned the folder"
    );
    Ok(report)
}

/// Turn one batch of watcher hints into reported saves.
pub fn apply_batch(store: &FolderStore, sink: &dyn ChangeSink, batch: &Batch) -> LocalResult<()> {
    if batch.rescan {
        tracing::info!("file events were lost: rescanning the folder");
        rescan(store, sink)?;
        return Ok(());
    }
    let mut changed = BTreeSet::new();
    for abs in &batch.paths {
        let Some(rel) = store.paths().relative(abs) else { continue };
        match classify(&rel) {
            Name::Save(path) => {
                let is_dir = std::fs::symlink_metadata(abs).is_ok_and(|m| m.is_dir());
                let known_file = store.db().folder_hash(&path)?.is_some()
                    || store.db().record(&path)?.base.is_some_and(|b| !b.is_tombstone());
                if is_dir || batch.dirs.contains(abs) || (!abs.exists() && !known_file) {
                    // A directory appeared, vanished or moved: walk below it.
                    changed.extend(scan(store, Some(&path))?.paths());
                }
                if super::resolve::check(store, &path)? {
                    changed.insert(path.clone());
                }
                if !is_dir {
                    changed.insert(path);
                }
            }
            Name::ConflictCopy(path) => {
                if super::resolve::check(store, &path)? {
                    changed.insert(path);
                }
            }
            Name::Ignored => {}
        }
    }
    if !changed.is_empty() {
        let paths: Vec<SavePath> = changed.into_iter().collect();
        sink.changed(&paths)?;
    }
    super::wait_barrier::acknowledge(store.db(), store.paths().root(), &batch.paths)?;
    Ok(())
}

/// Run the loop on its own thread until `stop` is set.
pub fn spawn(
    store: Arc<FolderStore>,
    sink: Arc<dyn ChangeSink>,
    mut watcher: FolderWatcher,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("savesync-folder".into()).spawn(move || {
        let mut redo = false;
        while !stop.load(Ordering::Relaxed) {
            let batch = match watcher.next_batch(STOP_POLL) {
                Some(b) => b,
                None if redo => Batch { rescan: true, ..Batch::default() },
                None => continue,
            };
            let batch = if redo { Batch { rescan: true, ..batch } } else { batch };
            redo = false;
            if batch.rescan {
                watcher.rewatch();
            }
            if let Err(e) = apply_batch(&store, sink.as_ref(), &batch) {
                // Nothing is lost: the next round walks the whole folder.
                tracing::warn!("handling file changes failed, will rescan: {e}");
                redo = true;
                std::thread::sleep(FAULT_PAUSE);
            }
        }
    })
}
