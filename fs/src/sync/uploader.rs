//! The queue worker: takes due entries of the durable pending queue, runs [`sync_path`] on
//! each (a few at a time), and removes an entry only if nobody re-queued it meanwhile (its
//! generation is unchanged), so a save changed again while it was uploading is uploaded
//! again. Failures back off exponentially per entry; the queue survives restarts.

use super::reconcile::{Outcome, SyncError, SyncMode, sync_path};
use crate::remote::RemoteError;
use crate::savefs::{SaveFs, now_ms};
use crate::state::PendingRow;
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How many saves sync at once.
const PARALLEL: usize = 8;
/// Longest wait between queue scans when nothing wakes the worker.
const IDLE_SCAN: Duration = Duration::from_secs(5);

fn backoff_ms(attempts: i64) -> i64 {
    let exp = attempts.clamp(0, 7) as u32;
    (250i64 << exp).min(30_000)
}

pub(super) async fn run(fs: Arc<SaveFs>) {
    loop {
        let due = match fs.db.due_pending(now_ms(), 256) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("reading the pending queue: {e}");
                super::note_error(&fs, &e);
                Vec::new()
            }
        };
        if due.is_empty() {
            let wait = match fs.db.next_due() {
                Ok(Some(t)) => Duration::from_millis((t - now_ms()).clamp(1, 5_000) as u64),
                _ => IDLE_SCAN,
            };
            let _ = tokio::time::timeout(wait, fs.wake.notified()).await;
            continue;
        }
        futures::stream::iter(due)
            .for_each_concurrent(PARALLEL, |row| {
                let fs = Arc::clone(&fs);
                async move { process(&fs, row).await }
            })
            .await;
    }
}

async fn process(fs: &SaveFs, row: PendingRow) {
    let result = sync_path(fs, &row.path, SyncMode::Background).await;
    let db = &fs.db;
    let done = match result {
        Ok(Outcome::Done) => db.finish_pending(&row.path, row.generation),
        Ok(Outcome::Busy) => db.retry_pending(
            &row.path,
            row.generation,
            now_ms() + (fs.cfg.debounce.as_millis() as i64).max(200),
        ),
        Err(SyncError::Remote(e)) if e.is_retryable() => {
            if matches!(e, RemoteError::Offline(_)) {
                fs.online.store(false, Ordering::Relaxed);
            }
            tracing::debug!(path = %row.path, "sync deferred: {e}");
            super::note_error(fs, &e);
            db.retry_pending(&row.path, row.generation, now_ms() + backoff_ms(row.attempts))
        }
        Err(e) => {
            // Retrying will not help (refused by the server, or a local fault): keep the
            // bytes, report it, and stop retrying this entry until the save changes again.
            tracing::error!(path = %row.path, "sync failed: {e}");
            super::note_error(fs, &format!("{}: {e}", row.path));
            if row.attempts >= 5 {
                db.finish_pending(&row.path, row.generation)
            } else {
                db.retry_pending(&row.path, row.generation, now_ms() + backoff_ms(row.attempts))
            }
        }
    };
    if let Err(e) = done {
        tracing::error!(path = %row.path, "updating the pending queue: {e}");
    }
}
