//! The barrier `savesync status --wait` raises in a synced folder, so that its count of
//! waiting saves includes every file closed before it asked.
//!
//! The folder's daemon hears of a closed file from inotify a moment later, so an empty
//! queue alone does not mean "synced" yet. The waiter creates an empty file
//! `.savesync-wait-PID-NANOS.tmp` in the folder's root (a local-only name: never synced,
//! and removed at the next start like the daemon's own temp files). The watcher reports
//! events in order, so once the front-end has handled the batch holding that file's
//! creation, it has also queued every change made before it; then it acknowledges the
//! barrier with a `kv` row (`wait_barrier:NAME`). After a rescan (events were lost) it
//! acknowledges every barrier file present in the root. The waiter removes its file and
//! row when done; the daemon clears leftover rows at start.

use crate::state::{DbResult, StateDb};
use std::path::{Path, PathBuf};

const PREFIX: &str = ".savesync-wait-";
const SUFFIX: &str = ".tmp";
const KEY_PREFIX: &str = "wait_barrier:";

/// The barrier's file name if `abs` is a barrier file directly in `root`.
fn barrier_name<'a>(root: &Path, abs: &'a Path) -> Option<&'a str> {
    if abs.parent() != Some(root) {
        return None;
    }
    let name = abs.file_name()?.to_str()?;
    (name.starts_with(PREFIX) && name.ends_with(SUFFIX)).then_some(name)
}

fn key(name: &str) -> String {
    format!("{KEY_PREFIX}{name}")
}

/// Daemon side: acknowledge the barriers among `paths` (absolute) that still exist. Call
/// after the changes reported with them were queued.
pub fn acknowledge<'a>(
    db: &StateDb,
    root: &Path,
    paths: impl IntoIterator<Item = &'a PathBuf>,
) -> DbResult<()> {
    for abs in paths {
        if let Some(name) = barrier_name(root, abs)
            && abs.exists()
        {
            db.set_kv(&key(name), "passed")?;
        }
    }
    Ok(())
}

/// Daemon side, after a rescan: acknowledge every barrier file in `root`.
pub fn acknowledge_present(db: &StateDb, root: &Path) -> DbResult<()> {
    let Ok(entries) = std::fs::read_dir(root) else { return Ok(()) };
    let present: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    acknowledge(db, root, &present)
}

/// Daemon side, at start: forget the rows of waiters that did not clean up.
pub fn clear_stale(db: &StateDb) -> DbResult<()> {
    db.delete_kv_prefix(KEY_PREFIX)
}

/// Waiter side: one raised barrier; dropping it removes its file and row.
#[derive(Debug)]
pub struct Barrier<'a> {
    db: &'a StateDb,
    file: PathBuf,
    key: String,
}

impl<'a> Barrier<'a> {
    /// Create the barrier file in the folder `root`.
    pub fn raise(db: &'a StateDb, root: &Path) -> std::io::Result<Barrier<'a>> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("{PREFIX}{}-{nanos}{SUFFIX}", std::process::id());
        let file = root.join(&name);
        std::fs::OpenOptions::new().write(true).create_new(true).open(&file)?;
        Ok(Barrier { db, file, key: key(&name) })
    }

    /// True once the daemon has queued every change made before the barrier was raised.
    pub fn passed(&self) -> DbResult<bool> {
        Ok(self.db.get_kv(&self.key)?.is_some())
    }
}

impl Drop for Barrier<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        let _ = self.db.delete_kv(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::{Barrier, acknowledge, acknowledge_present, barrier_name, clear_stale};
    use crate::state::StateDb;
    use std::path::Path;

    #[test]
    fn only_barrier_files_in_the_root_are_barriers() {
        let root = Path::new("/saves");
        let rows = [
            ("/saves/.savesync-wait-12-34.tmp", Some(".savesync-wait-12-34.tmp")),
            ("/saves/snes/.savesync-wait-12-34.tmp", None),
            ("/saves/.savesync-wait-12-34", None),
            ("/saves/game.srm", None),
            ("/other/.savesync-wait-12-34.tmp", None),
        ];
        for (abs, want) in rows {
            assert_eq!(barrier_name(root, Path::new(abs)), want, "{abs}");
        }
    }

    #[test]
    fn a_barrier_passes_once_acknowledged_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("folder");
        std::fs::create_dir(&root).unwrap();
        let db = StateDb::open(&dir.path().join("state.db")).unwrap();
        let barrier = Barrier::raise(&db, &root).unwrap();
        assert!(!barrier.passed().unwrap());
        // A vanished barrier file is not acknowledged (its waiter is gone).
        acknowledge(&db, &root, &[root.join(".savesync-wait-1-1.tmp")]).unwrap();
        assert!(!barrier.passed().unwrap());
        acknowledge_present(&db, &root).unwrap();
        assert!(barrier.passed().unwrap());
        let file = barrier.file.clone();
        drop(barrier);
        assert!(!file.exists(), "the waiter removes its file");
        assert!(std::fs::read_dir(&root).unwrap().next().is_none());

        let other = Barrier::raise(&db, &root).unwrap();
        acknowledge_present(&db, &root).unwrap();
        let key = other.key.clone();
        std::mem::forget(other);
        clear_stale(&db).unwrap();
        assert_eq!(db.get_kv(&key).unwrap(), None, "a start clears a leftover row");
    }
}
