//! The queue worker: takes due entries of the durable pending queue, runs [`sync_path`] on
//! each (a few at a time), and removes an entry only if nobody re-queued it meanwhile (its
//! generation is unchanged), so a save changed again while it was uploading is uploaded
//! again. Failures back off exponentially per entry (see `policy`) and are retried however
//! often it takes, unless the server refused the save for good: then the entry is dropped
//! and the save listed as given up in `status`. The queue survives restarts.
//! Up to [`PARALLEL`] syncs run at once, never two of the same path. While the server is
//! unreachable the worker takes no work (reading saves to upload them would be wasted);
//! the feed follower wakes it when the server is back. An entry whose queue row cannot be
//! updated (disk full) is held back in memory (`held`) so it cannot starve the rest.

use super::held::Held;
use super::policy::{Verdict, entry_backoff, verdict};
use super::{Outcome, SyncEngine, SyncError, SyncMode};
use crate::clock::now_ms;
use crate::state::{DbError, PendingRow};
use savesync_core::SavePath;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// How many saves sync at once.
const PARALLEL: usize = 8;
/// Longest wait between queue scans when nothing wakes the worker.
const IDLE_SCAN: Duration = Duration::from_secs(5);
/// First hold of an entry whose queue row could not be updated (the state DB's disk is
/// full): the row is still due, and retrying it at once would spin.
const QUEUE_FAULT_PAUSE: Duration = Duration::from_secs(1);

fn backoff_ms(fs: &SyncEngine, attempts: i64) -> i64 {
    entry_backoff(fs.cfg.retry_backoff, attempts).as_millis() as i64
}

pub(super) async fn run(fs: Arc<SyncEngine>) {
    // Pipelined rather than batch by batch: a slot that frees up takes the next due entry
    // at once, instead of waiting for the slowest upload of its batch. While a writer closes
    // saves one after another, this is what lets the server keep pace with it.
    let mut running: JoinSet<QueueUpdate> = JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, PendingRow> = HashMap::new();
    let mut held = Held::default();
    loop {
        let online = fs.is_online();
        let free = PARALLEL.saturating_sub(running.len());
        if free > 0 && online {
            let busy: HashSet<&SavePath> = in_flight.values().map(|r| &r.path).collect();
            let busy: HashSet<SavePath> = busy.into_iter().cloned().collect();
            for row in take_due(&fs, busy, &held, free).await {
                let picked = row.clone();
                let fs = Arc::clone(&fs);
                let task = running.spawn(async move { process(&fs, row).await });
                in_flight.insert(task.id(), picked);
            }
        }
        if running.is_empty() {
            let wait = if online {
                let due = until_due(&fs, fs.bookkeeping(|l| l.db().next_due()));
                let now = tokio::time::Instant::now();
                match held.next_release(now).map(|t| t - now) {
                    // Something is due yet nothing was taken: all of it is held back.
                    Some(release) if due <= Duration::from_millis(1) => release,
                    Some(release) => due.min(release),
                    None => due,
                }
                .min(IDLE_SCAN)
            } else {
                IDLE_SCAN
            };
            let _ = tokio::time::timeout(wait, fs.wake.notified()).await;
            continue;
        }
        let slot_free = running.len() < PARALLEL;
        let wait = if slot_free && online {
            let now = now_ms();
            until_due(&fs, fs.bookkeeping(|l| l.db().next_due_after(now)))
        } else {
            IDLE_SCAN
        };
        tokio::select! {
            done = running.join_next_with_id() => {
                match done {
                    Some(Ok((id, update))) => {
                        let row = in_flight.remove(&id);
                        match (update, row) {
                            (QueueUpdate::Failed, Some(row)) => {
                                held.fault(row.path, QUEUE_FAULT_PAUSE, tokio::time::Instant::now());
                            }
                            (QueueUpdate::Done, Some(row)) => held.cleared(&row.path),
                            (_, None) => {}
                        }
                    }
                    Some(Err(e)) => {
                        // A panicked sync: back the entry off like a failure, so a save
                        // that always panics cannot spin the worker.
                        tracing::error!("sync task failed: {e}");
                        if let Some(row) = in_flight.remove(&e.id()) {
                            let due = now_ms() + backoff_ms(&fs, row.attempts);
                            let retried = fs.bookkeeping(|l| {
                                l.db().retry_pending(&row.path, row.generation, due)
                            });
                            if let Err(e) = retried {
                                tracing::error!(path = %row.path, "updating the pending queue: {e}");
                                held.fault(row.path, QUEUE_FAULT_PAUSE, tokio::time::Instant::now());
                            }
                        }
                    }
                    None => {}
                }
            }
            // New work only matters when a slot is free.
            () = fs.wake.notified(), if slot_free => {}
            () = tokio::time::sleep(wait), if slot_free => {}
        }
    }
}

/// Up to `free` due entries that are neither being synced nor held back, oldest first.
async fn take_due(
    fs: &SyncEngine,
    in_flight: HashSet<SavePath>,
    held: &Held,
    free: usize,
) -> Vec<PendingRow> {
    let instant = tokio::time::Instant::now();
    let (now, limit) = (now_ms(), in_flight.len() + held.count(instant) + free);
    match fs.bookkeeping(|l| l.db().due_pending(now, limit)) {
        Ok(due) => due
            .into_iter()
            .filter(|r| !in_flight.contains(&r.path) && !held.is_held(&r.path, instant))
            .take(free)
            .collect(),
        Err(e) => {
            tracing::error!("reading the pending queue: {e}");
            fs.status.note_error(&e);
            Vec::new()
        }
    }
}

/// How long until `next` (the earliest due time of interest) comes, bounded so that a
/// missed wake-up only delays work.
fn until_due(fs: &SyncEngine, next: Result<Option<i64>, DbError>) -> Duration {
    match next {
        Ok(Some(t)) => Duration::from_millis((t - now_ms()).clamp(1, 5_000) as u64),
        Ok(None) => IDLE_SCAN,
        Err(e) => {
            fs.status.note_error(&e);
            IDLE_SCAN
        }
    }
}

/// Whether the queue entry could be updated after a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueueUpdate {
    Done,
    Failed,
}

async fn process(fs: &SyncEngine, row: PendingRow) -> QueueUpdate {
    // A moved save never downloaded is uploaded at its new path from its old bytes.
    let result = match fs.fetch_moved(&row.path).await {
        Ok(()) => fs.sync_path(&row.path, SyncMode::Background).await,
        Err(e) => Err(e),
    };
    let (path, generation) = (&row.path, row.generation);
    let done = match result {
        Ok(Outcome::Done) => {
            fs.status.clear_error();
            fs.bookkeeping(|l| l.db().finish_synced(path, generation))
        }
        Ok(Outcome::Busy) => {
            let due = now_ms() + (fs.cfg.debounce.as_millis() as i64).max(200);
            fs.bookkeeping(|l| l.db().retry_pending(path, generation, due))
        }
        Err(e) => {
            fs.status.note_error(&format!("{}: {e}", row.path));
            match verdict(&e) {
                Verdict::Offline => {
                    // Pause the queue until the feed follower finds the server again.
                    fs.status.set_online(false);
                    fs.feed_wake.notify_one();
                    tracing::debug!(path = %row.path, "sync deferred: {e}");
                    let due = now_ms() + backoff_ms(fs, 0);
                    fs.bookkeeping(|l| l.db().retry_pending(path, generation, due))
                }
                Verdict::Retry => {
                    // A local fault is said once per entry; server hiccups and the retries
                    // (up to every 30 s) stay at debug.
                    if row.attempts == 0 && matches!(e, SyncError::Local(_)) {
                        tracing::warn!(path = %row.path, "sync failed, will retry: {e}");
                    } else {
                        let attempt = row.attempts + 1;
                        tracing::debug!(path = %row.path, attempt, "sync failed again: {e}");
                    }
                    let due = now_ms() + backoff_ms(fs, row.attempts);
                    fs.bookkeeping(|l| l.db().retry_pending(path, generation, due))
                }
                Verdict::GiveUp => {
                    // The server refused these bytes for good: keep them, list the save in
                    // `status`, and try again only when it changes.
                    tracing::error!(path = %row.path, "sync refused by the server: {e}");
                    let (error, at) = (e.to_string(), now_ms());
                    fs.bookkeeping(|l| {
                        l.db()
                            .give_up(path, &error, at)
                            .and_then(|()| l.db().finish_pending(path, generation))
                    })
                }
            }
        }
    };
    match done {
        Ok(()) => QueueUpdate::Done,
        Err(e) => {
            tracing::error!(path = %row.path, "updating the pending queue: {e}");
            QueueUpdate::Failed
        }
    }
}
