//! Bulk prefetch: when a negotiation or a page of remote changes queues many downloads,
//! fetch their bytes in one `POST /saves/bulk` stream instead of one request each.
//!
//! The prefetch only delivers bytes; it never decides or installs. Each save wanted gets a
//! slot (registered before its queue entry exists, so no worker can start a single download
//! first); a delivered save is written to a temp file beside the store's other downloads,
//! synced, and parked in its slot (the install that takes it syncs it again, as it does
//! every download, at no cost then). The save is then synced by the ordinary path (`sync_path`: `decide`, `plan`, conflicts, "a locally changed save is
//! never overwritten"), whose download step takes the parked file instead of fetching, when
//! it is the version it decided on, and waits for the slot when it is still on its way (so
//! opening a save being prefetched neither fetches it twice nor sees half-written bytes:
//! only a complete, verified temp file is ever installed, by the same `install`). When a
//! sync of the path ends, its slot goes (a parked file nobody wanted is deleted); a round
//! that fails or ends clears its slots still on their way, and their waiters fall back to
//! a single download.
//!
//! Bounded: only saves up to `max_save_bytes`, and per round only up to `budget_bytes` in
//! all ([`select`], a pure function); the rest is downloaded one by one as before. At most
//! [`WRITERS`] saves are held in memory at once while their temp files are written.

use super::SyncEngine;
use crate::local::LocalStore;
use savesync_client::BulkItem;
use savesync_core::bulk::MAX_BULK_PATHS;
use savesync_core::{SavePath, Version};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::task::JoinSet;

/// Temp files written (and synced) at once.
const WRITERS: usize = 8;
/// Longest a sync waits for a save still on its way before fetching it itself.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// The bulk prefetch's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkLimits {
    /// Only saves up to this size are fetched in bulk.
    pub max_save_bytes: u64,
    /// Most bytes one round fetches (and can hold in temp files before they are installed).
    pub budget_bytes: u64,
}

impl Default for BulkLimits {
    fn default() -> BulkLimits {
        BulkLimits { max_save_bytes: 1024 * 1024, budget_bytes: 128 * 1024 * 1024 }
    }
}

/// The saves worth a bulk fetch, in the order given: content (not a tombstone), at most
/// `max_save_bytes` each, and, in order, as long as the total stays within `budget_bytes`.
/// Fewer than two is not worth a bulk request.
#[must_use]
pub fn select(
    candidates: Vec<(SavePath, Version, u64)>,
    limits: BulkLimits,
) -> Vec<(SavePath, Version, u64)> {
    let mut total = 0u64;
    let mut out = Vec::new();
    for (path, v, size) in candidates {
        if v.hash.is_none() || size > limits.max_save_bytes {
            continue;
        }
        if total.saturating_add(size) > limits.budget_bytes {
            break;
        }
        total += size;
        out.push((path, v, size));
    }
    if out.len() < 2 { Vec::new() } else { out }
}

#[derive(Debug)]
enum Slot {
    /// Asked for in round `round`, not here yet.
    Pending { round: u64 },
    /// Here: `size` verified bytes of `version` in `tmp`.
    Ready { version: Version, size: u64, tmp: PathBuf },
}

/// What a sync finds for a path.
#[derive(Debug)]
pub(super) enum Parked {
    /// No bulk copy: download it.
    None,
    /// The bulk copy of the version asked for.
    File { tmp: PathBuf, size: u64 },
}

/// The slots of saves being prefetched.
#[derive(Debug, Default)]
pub(super) struct Prefetch {
    slots: Mutex<HashMap<SavePath, Slot>>,
    changed: tokio::sync::Notify,
    rounds: std::sync::atomic::AtomicU64,
    /// Saves installed from a bulk fetch (for `status` and tests).
    used: std::sync::atomic::AtomicU64,
}

impl Prefetch {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<SavePath, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Start a round for `wanted`: a slot each (a path already in a slot is left to that
    /// one). Returns the round and the paths it took.
    pub(super) fn register(&self, wanted: &[(SavePath, Version, u64)]) -> (u64, Vec<SavePath>) {
        let round = self.rounds.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let mut slots = self.slots();
        let mut taken = Vec::new();
        for (p, _, _) in wanted {
            if !slots.contains_key(p) {
                slots.insert(p.clone(), Slot::Pending { round });
                taken.push(p.clone());
            }
        }
        (round, taken)
    }

    /// Saves installed from bulk fetches so far.
    pub(super) fn used(&self) -> u64 {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `path` arrived (in `tmp`): park it, unless nobody waits for it any more.
    fn deliver(&self, path: &SavePath, round: u64, version: Version, size: u64, tmp: PathBuf) {
        let mut slots = self.slots();
        match slots.get(path) {
            Some(Slot::Pending { round: r }) if *r == round => {
                slots.insert(path.clone(), Slot::Ready { version, size, tmp });
            }
            _ => {
                drop(slots);
                let _ = std::fs::remove_file(tmp);
                return;
            }
        }
        drop(slots);
        self.changed.notify_waiters();
    }

    /// Drop the slot of `path` if round `round` still owes it.
    fn clear_pending(&self, path: &SavePath, round: u64) {
        let mut slots = self.slots();
        if matches!(slots.get(path), Some(Slot::Pending { round: r }) if *r == round) {
            slots.remove(path);
            drop(slots);
            self.changed.notify_waiters();
        }
    }

    /// Drop every slot round `round` still owes.
    pub(super) fn end_round(&self, round: u64) {
        self.slots().retain(|_, s| !matches!(s, Slot::Pending { round: r } if *r == round));
        self.changed.notify_waiters();
    }

    /// A sync of `path` ended: its slot goes (and a parked file nobody took).
    pub(super) fn forget(&self, path: &SavePath) {
        let removed = self.slots().remove(path);
        if let Some(Slot::Ready { tmp, .. }) = removed {
            let _ = std::fs::remove_file(tmp);
        }
        self.changed.notify_waiters();
    }

    /// The parked copy of `path` if it is `want`, waiting while it is on its way.
    pub(super) async fn take(&self, path: &SavePath, want: Version) -> Parked {
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut slots = self.slots();
                match slots.get(path) {
                    None => return Parked::None,
                    Some(Slot::Pending { .. }) => {}
                    Some(Slot::Ready { version, .. }) => {
                        let fits = *version == want;
                        let Some(Slot::Ready { tmp, size, .. }) = slots.remove(path) else {
                            return Parked::None;
                        };
                        if fits {
                            return Parked::File { tmp, size };
                        }
                        let _ = std::fs::remove_file(tmp);
                        return Parked::None;
                    }
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Parked::None;
            }
        }
    }

    /// Note one save installed from a bulk copy.
    pub(super) fn note_used(&self) {
        self.used.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Clears a round's unfilled slots however the round ends (error, cancellation).
struct RoundGuard<'a> {
    prefetch: &'a Prefetch,
    round: u64,
}

impl Drop for RoundGuard<'_> {
    fn drop(&mut self) {
        self.prefetch.end_round(self.round);
    }
}

/// Write `bytes` to a fresh download temp file of `path` and sync it.
fn write_tmp(l: &dyn LocalStore, path: &SavePath, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let tmp = l.download_tmp(path);
    // Synced here, by the parallel writers: the install that takes the file syncs it
    // again (both front-ends do, before the rename), which then finds nothing left to
    // write, so an open waiting for a prefetched save does not wait for the disk.
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_data()
    });
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

impl SyncEngine {
    /// The bulk limits in force: a mount prefetches nothing above `prefetch_max_bytes`.
    pub(super) fn bulk_limits(&self) -> BulkLimits {
        let b = self.cfg.bulk;
        BulkLimits { max_save_bytes: b.max_save_bytes.min(self.cfg.prefetch_max_bytes), ..b }
    }

    /// Fetch `wanted` (already registered as `round`) in bulk and park each save in its
    /// slot. Failures only end the round early: the saves left are downloaded one by one.
    pub(super) async fn prefetch_round(&self, round: u64, wanted: Vec<SavePath>) {
        if wanted.is_empty() {
            return;
        }
        let _guard = RoundGuard { prefetch: &self.prefetch, round };
        // The same limit the saves were selected with.
        let max = self.bulk_limits().max_save_bytes;
        for batch in wanted.chunks(MAX_BULK_PATHS) {
            if let Err(e) = self.prefetch_batch(round, batch, max).await {
                tracing::debug!("bulk prefetch ended early: {e}");
                return;
            }
        }
    }

    async fn prefetch_batch(&self, round: u64, batch: &[SavePath], max: u64) -> Result<(), String> {
        use futures::StreamExt;
        let mut items =
            self.remote.bulk_download(batch.to_vec(), max).await.map_err(|e| e.to_string())?;
        let mut writers: JoinSet<()> = JoinSet::new();
        let mut count = 0usize;
        let result = loop {
            let item = match items.next().await {
                None => break Ok(()),
                Some(Err(e)) => break Err(e.to_string()),
                Some(Ok(item)) => item,
            };
            match item {
                BulkItem::Save { path, version, bytes } => {
                    while writers.len() >= WRITERS {
                        let _ = writers.join_next().await;
                    }
                    count += 1;
                    let local = Arc::clone(&self.local);
                    let prefetch = Arc::clone(&self.prefetch);
                    writers.spawn_blocking(move || match write_tmp(&*local, &path, &bytes) {
                        Ok(tmp) => {
                            prefetch.deliver(&path, round, version, bytes.len() as u64, tmp);
                        }
                        Err(e) => {
                            tracing::debug!(%path, "writing a prefetched save: {e}");
                            prefetch.clear_pending(&path, round);
                        }
                    });
                }
                BulkItem::Missing { path } | BulkItem::TooLarge { path, .. } => {
                    self.prefetch.clear_pending(&path, round);
                }
            }
        };
        while writers.join_next().await.is_some() {}
        tracing::debug!(saves = count, "bulk prefetch batch done");
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use savesync_core::{ContentHash, Rev};

    fn c(path: &str, size: u64, deleted: bool) -> (SavePath, Version, u64) {
        let hash = (!deleted).then(|| ContentHash::of(path.as_bytes()));
        (SavePath::parse(path).unwrap(), Version { rev: Rev(1), hash }, size)
    }

    #[test]
    fn selection_table() {
        let limits = BulkLimits { max_save_bytes: 100, budget_bytes: 250 };
        type Case<'a> = (&'a str, Vec<(SavePath, Version, u64)>, Vec<&'a str>);
        let table: Vec<Case> = vec![
            ("all fit", vec![c("a", 100, false), c("b", 100, false)], vec!["a", "b"]),
            (
                "too big skipped",
                vec![c("a", 101, false), c("b", 1, false), c("c", 1, false)],
                vec!["b", "c"],
            ),
            (
                "tombstone skipped",
                vec![c("a", 0, true), c("b", 1, false), c("c", 1, false)],
                vec!["b", "c"],
            ),
            (
                "budget stops the round",
                vec![c("a", 100, false), c("b", 100, false), c("c", 100, false), c("d", 1, false)],
                vec!["a", "b"],
            ),
            ("one is not worth it", vec![c("a", 1, false)], vec![]),
            ("nothing", vec![], vec![]),
        ];
        for (name, input, want) in table {
            let got: Vec<String> =
                select(input, limits).into_iter().map(|(p, _, _)| p.to_string()).collect();
            assert_eq!(got, want, "{name}");
        }
    }
}
