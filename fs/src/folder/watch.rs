//! Watching a synced folder with inotify (the `notify` crate, recursive: directories
//! created later are watched as they appear). Events are only hints: each names a path
//! that may have changed, and the front-end looks at the file itself. Reads (our own
//! hashing included) are ignored; writes, closes after writing, creates, deletes and
//! renames count.
//!
//! Nothing may be lost silently: an inotify queue overflow (the kernel dropped events,
//! `max_queued_events`), a watch that could not be added (`max_user_watches`), or this
//! side's own bounded channel filling up all turn into a full rescan, before which the
//! whole tree is watched again (a directory created among the lost events has no watch).

use notify::event::{AccessKind, AccessMode, CreateKind, RemoveKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// Bound of the channel from the watcher thread (events beyond it become a rescan).
const CHANNEL: usize = 8192;
/// Events arriving this close together are handled as one batch.
const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// Most events in one batch.
const BATCH_MAX: usize = 4096;

/// What one event means for the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// Nothing (a read, an open).
    Ignore,
    /// These paths may have changed; `dir` when the event says they are directories.
    Paths { paths: Vec<PathBuf>, dir: bool },
    /// Events were lost: walk everything.
    Rescan,
}

/// The pure mapping from a `notify` event to a [`Hint`].
#[must_use]
pub fn hint(event: &notify::Result<Event>) -> Hint {
    let Ok(ev) = event else { return Hint::Rescan };
    if ev.need_rescan() {
        return Hint::Rescan;
    }
    let dir = matches!(
        ev.kind,
        EventKind::Create(CreateKind::Folder) | EventKind::Remove(RemoveKind::Folder)
    );
    match ev.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        EventKind::Access(_) => return Hint::Ignore,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => {}
        EventKind::Any | EventKind::Other => return Hint::Rescan,
    }
    Hint::Paths { paths: ev.paths.clone(), dir }
}

/// The changes seen since the last batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Events were lost: walk the whole folder.
    pub rescan: bool,
    /// Paths that may have changed (absolute).
    pub paths: BTreeSet<PathBuf>,
    /// Of those, the ones events called directories (walk below them).
    pub dirs: BTreeSet<PathBuf>,
}

/// A running recursive watch of the folder.
#[derive(Debug)]
pub struct FolderWatcher {
    watcher: RecommendedWatcher,
    root: PathBuf,
    rx: Receiver<Hint>,
    lost: Arc<AtomicBool>,
}

impl FolderWatcher {
    /// Watch `root` recursively. Start it before the first scan, so no change falls
    /// between the two.
    pub fn start(root: &Path) -> notify::Result<FolderWatcher> {
        let (tx, rx): (SyncSender<Hint>, Receiver<Hint>) = std::sync::mpsc::sync_channel(CHANNEL);
        let lost = Arc::new(AtomicBool::new(false));
        let lost_w = Arc::clone(&lost);
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<Event>| {
            let h = hint(&ev);
            if h == Hint::Ignore {
                return;
            }
            match tx.try_send(h) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => lost_w.store(true, Ordering::Relaxed),
            }
        })?;
        watcher.watch(root, RecursiveMode::Recursive)?;
        Ok(FolderWatcher { watcher, root: root.to_path_buf(), rx, lost })
    }

    /// Watch the whole tree again: directories whose creation was among the lost events
    /// have no watch yet (called before each full rescan).
    pub fn rewatch(&mut self) {
        if let Err(e) = self.watcher.watch(&self.root, RecursiveMode::Recursive) {
            tracing::warn!("watching {} again: {e}", self.root.display());
            self.lost.store(true, Ordering::Relaxed);
        }
    }

    /// The next batch of changes, or `None` if nothing happened within `wait`.
    #[must_use]
    pub fn next_batch(&self, wait: Duration) -> Option<Batch> {
        let mut batch = Batch::default();
        let first = match self.rx.recv_timeout(wait) {
            Ok(h) => h,
            Err(RecvTimeoutError::Timeout) if self.lost.load(Ordering::Relaxed) => Hint::Rescan,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
        };
        add(&mut batch, first);
        let started = Instant::now();
        let mut n = 1;
        while n < BATCH_MAX && started.elapsed() < BATCH_WINDOW * 20 {
            match self.rx.recv_timeout(BATCH_WINDOW) {
                Ok(h) => add(&mut batch, h),
                Err(_) => break,
            }
            n += 1;
        }
        if self.lost.swap(false, Ordering::Relaxed) {
            batch.rescan = true;
        }
        Some(batch)
    }
}

fn add(batch: &mut Batch, h: Hint) {
    match h {
        Hint::Ignore => {}
        Hint::Rescan => batch.rescan = true,
        Hint::Paths { paths, dir } => {
            if dir {
                batch.dirs.extend(paths.iter().cloned());
            }
            batch.paths.extend(paths);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{FolderWatcher, Hint, hint};
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, Flag, ModifyKind, RemoveKind, RenameMode,
    };
    use notify::{Event, EventKind};
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    #[test]
    fn hint_table() {
        let p = PathBuf::from("/f/a.srm");
        let ev = |k: EventKind| Ok(Event::new(k).add_path(p.clone()));
        let file = Hint::Paths { paths: vec![p.clone()], dir: false };
        let dir = Hint::Paths { paths: vec![p.clone()], dir: true };
        let table: Vec<(notify::Result<Event>, Hint)> = vec![
            (ev(EventKind::Access(AccessKind::Close(AccessMode::Write))), file.clone()),
            (ev(EventKind::Access(AccessKind::Close(AccessMode::Read))), Hint::Ignore),
            (ev(EventKind::Access(AccessKind::Open(AccessMode::Any))), Hint::Ignore),
            (ev(EventKind::Modify(ModifyKind::Data(DataChange::Any))), file.clone()),
            (ev(EventKind::Modify(ModifyKind::Name(RenameMode::To))), file.clone()),
            (ev(EventKind::Create(CreateKind::File)), file.clone()),
            (ev(EventKind::Create(CreateKind::Folder)), dir.clone()),
            (ev(EventKind::Remove(RemoveKind::Folder)), dir),
            (ev(EventKind::Remove(RemoveKind::File)), file),
            (Ok(Event::new(EventKind::Other).set_flag(Flag::Rescan)), Hint::Rescan),
            (Err(notify::Error::generic("watch limit")), Hint::Rescan),
            (ev(EventKind::Any), Hint::Rescan),
        ];
        for (e, want) in table {
            assert_eq!(hint(&e), want, "{e:?}");
        }
    }

    #[test]
    fn writes_in_new_subdirectories_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let w = FolderWatcher::start(&root).unwrap();
        std::fs::create_dir(root.join("snes")).unwrap();
        // The new directory's watch is added when its creation is read: wait for that.
        let mut seen = std::collections::BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let target = root.join("snes/a.srm");
        let mut written = false;
        while !seen.contains(&target) {
            assert!(Instant::now() < deadline, "never saw {target:?}: {seen:?}");
            if let Some(b) = w.next_batch(Duration::from_millis(50)) {
                seen.extend(b.paths);
            }
            if seen.contains(&root.join("snes")) && !written {
                std::fs::write(&target, b"x").unwrap();
                written = true;
            }
        }
    }
}
