//! The check of every cached save by hash after an unclean stop, run while the mount
//! already serves.
//!
//! A power cut can take back the unsynced commits that queued a closed save
//! (`power_cut`); its bytes are in the cache file. The check hashes each cached save and
//! queues the ones whose bytes differ from the version this device last agreed on with the
//! server. It used to run inside the start, before the kernel saw the mount: with 2 GB
//! cached that kept the saves out of reach for 3 s on a warm page cache and 7 s on a cold
//! one, on a 2-core VM (longer on a handheld's SD card). Nothing needs it first:
//!
//! - every sync decides from the bytes themselves, not from the queue, so a save the check
//!   has not reached yet is never overwritten by a download (it becomes a conflict copy);
//! - opening a save never trusts the queue either (fresh on open syncs the path first).
//!
//! So it runs on its own thread once the mount is up (`savefs::cache_check`). Until every
//! changed save is queued, the state DB keeps a `kv` row ([`KEY`], "checked/total"): a
//! clean stop in the middle leaves it, and the next start checks again; `savesync status`
//! shows it, and `status --wait` waits for it.

use super::{LocalTree, is_cached_save, lock};
use crate::file_hash::hash_file;
use crate::state::{DbResult, StateDb};
use savesync_core::SavePath;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The `kv` row that says a check is due or under way, and how far it got.
const KEY: &str = "cache_check";
/// Longest time between two progress updates (and hand-offs of changed saves).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Most changed saves held before they are handed to the queue.
const QUEUE_BATCH: usize = 256;

/// How far a check got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheCheck {
    /// Cached saves hashed so far.
    pub checked: u64,
    /// Cached saves when the check began.
    pub total: u64,
}

impl CacheCheck {
    fn encode(self) -> String {
        format!("{}/{}", self.checked, self.total)
    }

    fn decode(value: &str) -> Option<CacheCheck> {
        let (checked, total) = value.split_once('/')?;
        Some(CacheCheck { checked: checked.parse().ok()?, total: total.parse().ok()? })
    }
}

/// The check due or under way for the tree of `db`, if any (read by `savesync status`,
/// also from another process). A row it cannot read still counts as due.
pub fn due(db: &StateDb) -> DbResult<Option<CacheCheck>> {
    Ok(db.get_kv(KEY)?.map(|v| CacheCheck::decode(&v).unwrap_or_default()))
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Every cached save was hashed; this many were queued.
    Finished { queued: usize },
    /// Asked to stop first: still due.
    Stopped,
}

impl LocalTree {
    /// Note that the cache must be checked (the last run did not stop cleanly). A commit
    /// like any other: a power cut before it syncs leaves the unclean marker, which asks
    /// again at the next start.
    pub(super) fn require_cache_check(&self) -> DbResult<()> {
        let total = lock(&self.table).iter().filter(|i| is_cached_save(&i.row)).count();
        self.db.set_kv(KEY, &CacheCheck { checked: 0, total: total as u64 }.encode())
    }

    /// Whether a check is due (begun by an unclean stop, not finished yet).
    pub fn cache_check_due(&self) -> bool {
        matches!(due(&self.db), Ok(Some(_)))
    }

    /// Hash every cached save, handing the ones that differ from the version last agreed
    /// with the server to `queue` (a batch at a time), and clear the due row once all are
    /// handed over. Returns between two files once `stop` is set, leaving the check due.
    /// A file it cannot read is logged and skipped: its next write queues it anyway.
    pub fn check_cache(
        &self,
        stop: &AtomicBool,
        mut queue: impl FnMut(&[SavePath]) -> anyhow::Result<()>,
    ) -> anyhow::Result<Checked> {
        let files: Vec<(u64, SavePath)> = {
            let t = lock(&self.table);
            t.iter()
                .filter(|i| is_cached_save(&i.row))
                .filter_map(|i| t.save_path(i.row.ino).map(|p| (i.row.ino, p)))
                .collect()
        };
        let mut progress = CacheCheck { checked: 0, total: files.len() as u64 };
        let mut changed = Vec::new();
        let mut queued = 0;
        let mut last_note = Instant::now();
        for (ino, path) in files {
            if stop.load(Ordering::Relaxed) {
                queue(&changed)?;
                self.db.set_kv(KEY, &progress.encode())?;
                return Ok(Checked::Stopped);
            }
            // The file may have been deleted or replaced meanwhile: then whatever happened
            // to it queued the path itself.
            match hash_file(&self.cache_path(ino), |n| self.count_read(n)) {
                Ok(hash) if self.db.record(&path)?.base.and_then(|b| b.hash) == Some(hash) => {}
                Ok(_) => changed.push(path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(%path, "checking the cache after an unclean stop: {e}"),
            }
            progress.checked += 1;
            if changed.len() >= QUEUE_BATCH || last_note.elapsed() >= PROGRESS_EVERY {
                queue(&changed)?;
                queued += changed.len();
                changed.clear();
                self.db.set_kv(KEY, &progress.encode())?;
                last_note = Instant::now();
            }
        }
        queue(&changed)?;
        queued += changed.len();
        self.db.delete_kv(KEY)?;
        Ok(Checked::Finished { queued })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_rows_round_trip_and_a_malformed_one_reads_as_nothing_checked() {
        let cases: &[(&str, Option<CacheCheck>)] = &[
            ("0/12", Some(CacheCheck { checked: 0, total: 12 })),
            ("7/12", Some(CacheCheck { checked: 7, total: 12 })),
            ("7", None),
            ("x/12", None),
            ("", None),
        ];
        for (value, want) in cases {
            assert_eq!(CacheCheck::decode(value), *want, "{value:?}");
        }
        let c = CacheCheck { checked: 3, total: 9 };
        assert_eq!(CacheCheck::decode(&c.encode()), Some(c));
    }
}
