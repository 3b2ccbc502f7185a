//! The feed follower: negotiate a manifest with the server (on start and after every
//! reconnect, so nothing missed while offline stays missed), then follow `/events`; each
//! announced cursor beyond ours pulls `/changes` and queues every save the server changed
//! (due at once, so a save closed on another device shows here within a second).
//!
//! Liveness: any byte on the event stream (an event or the server's keep-alive comment)
//! proves the connection alive; only `event_silence` without a single byte counts as lost.
//!
//! Offline: every attempt starts with a cheap probe (`GET /health`: a TCP connect and a
//! tiny answer, no disk reads here or on the server); only a reachable server gets a
//! negotiation, whose hashes come from the hash cache for unchanged files. While the
//! server stays unreachable the wait between probes doubles up to `offline_backoff_max`
//! (minutes by default), and a local change probes at once. The uploader pauses while
//! offline and is woken when the server is back.

use super::policy::{FIRST_OFFLINE_WAIT, next_offline_wait};
use crate::inode_table::ROOT_INO;
use crate::remote::{FeedItem, RemoteError};
use crate::savefs::{SaveFs, lock, now_ms};
use crate::state::InodeKind;
use futures::StreamExt;
use savesync_core::wire::{ActionKind, ManifestEntry, PlannedAction, SaveMeta, SessionReport};
use savesync_core::{ContentHash, SavePath, is_local_only_name};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub(super) async fn run(fs: Arc<SaveFs>) {
    let mut wait = Duration::ZERO;
    loop {
        match follow_once(&fs).await {
            Ok(()) => wait = Duration::ZERO,
            Err(e) => {
                // Only an unanswered probe or request means the server is gone. A local
                // failure (a full state DB) must not pause the uploader: closed saves can
                // still reach the server. The next round's probe tells if it left.
                if !matches!(e, RemoteError::Offline(_)) {
                    tracing::debug!("sync round failed, server reachable: {e}");
                } else if fs.online.swap(false, Ordering::Relaxed) {
                    tracing::warn!("server connection lost: {e}");
                } else {
                    tracing::debug!("server still unreachable: {e}");
                }
                super::note_error(&fs, &e);
                wait = next_offline_wait(wait, fs.cfg.offline_backoff_max);
            }
        }
        // A local change (or the uploader finding the server gone) cuts the wait short.
        let pause = if wait.is_zero() { FIRST_OFFLINE_WAIT } else { wait };
        let _ = tokio::time::timeout(pause, fs.feed_wake.notified()).await;
    }
}

/// The server answered again: mark the mount online and let queued work go.
fn now_online(fs: &SaveFs) {
    if !fs.online.swap(true, Ordering::Relaxed) {
        tracing::info!("server reachable: syncing");
    }
    let _ = fs.db.wake_all_pending(now_ms());
    fs.wake.notify_one();
}

async fn follow_once(fs: &SaveFs) -> Result<(), RemoteError> {
    // Nothing is read from the cache before the server has answered.
    fs.remote.probe().await?;
    // The server answered: queued uploads may go even if negotiating fails locally.
    now_online(fs);
    negotiate(fs).await?;
    // The server answered: queued work may go while the stream connects.
    now_online(fs);
    let silence = fs.cfg.event_silence;
    let mut events = fs.remote.events(silence).await?;
    let mut deadline = tokio::time::Instant::now() + silence;
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout_at(deadline, events.next()) => next,
            () = fs.feed_wake.notified() => {
                if !fs.is_online() {
                    // The uploader could not reach the server while the stream looked
                    // fine: ask the server directly.
                    fs.remote.probe().await?;
                    now_online(fs);
                }
                continue;
            }
        };
        let next = next.map_err(|_| RemoteError::Transient("event stream went silent".into()))?;
        let Some(item) = next else { return Ok(()) };
        // Any item, keep-alive or event, proves the stream alive.
        deadline = tokio::time::Instant::now() + silence;
        let FeedItem::Cursor(announced) = item? else { continue };
        let ours = fs.db.cursor().unwrap_or_default();
        if announced > ours {
            pull_changes(fs).await?;
        }
    }
}

/// Hash of what the device has for a synced file (its base if never downloaded).
fn local_hash(
    fs: &SaveFs,
    ino: u64,
    cached: bool,
    base: Option<ContentHash>,
) -> Option<ContentHash> {
    if !cached {
        return base;
    }
    super::hash_cache::hash_of(fs, ino).ok()
}

async fn negotiate(fs: &SaveFs) -> Result<(), RemoteError> {
    let records = fs.db.all_records().map_err(|e| RemoteError::Transient(e.to_string()))?;
    let mut manifest: BTreeMap<SavePath, ManifestEntry> = records
        .into_iter()
        .map(|(path, rec)| (path.clone(), ManifestEntry { path, local: None, base: rec.base }))
        .collect();
    let files: Vec<(u64, bool, SavePath)> = {
        let t = lock(&fs.table);
        t.save_paths_below(ROOT_INO)
            .into_iter()
            .filter_map(|(ino, p)| {
                let i = t.get(ino)?;
                (i.row.kind == InodeKind::File).then_some((ino, i.row.cached, p))
            })
            .collect()
    };
    // Hashing changed saves is disk-bound: tell the runtime this worker is busy.
    tokio::task::block_in_place(|| {
        for (ino, cached, path) in files {
            let entry = manifest.entry(path.clone()).or_insert(ManifestEntry {
                path,
                local: None,
                base: None,
            });
            entry.local = local_hash(fs, ino, cached, entry.base.and_then(|b| b.hash));
        }
    });
    let resp = fs.remote.negotiate(manifest.into_values().collect()).await?;
    let report = session_report(&resp.actions);
    let mut queue = Vec::new();
    let mut unseen = Vec::new();
    for action in resp.actions {
        if action.action == ActionKind::Untracked || action.action == ActionKind::NoOp {
            continue;
        }
        if action.action == ActionKind::Download {
            if let Some(h) = action.head.as_ref().filter(|h| !h.deleted) {
                let known = lock(&fs.table).lookup_path(&action.path).is_some();
                if !known {
                    // Not on this device at all: list it now, bytes come by prefetch.
                    unseen.push((action.path.clone(), h.version(), h.size));
                }
            }
        }
        let noted = match &action.head {
            Some(h) => fs.db.note_head(&action.path, h.version(), h.size),
            None => fs.db.clear_head(&action.path),
        };
        noted.map_err(|e| RemoteError::Transient(e.to_string()))?;
        queue.push(action.path);
    }
    super::install::show_many_uncached(fs, &unseen)
        .map_err(|e| RemoteError::Transient(e.to_string()))?;
    fs.db.enqueue_many(&queue, now_ms()).map_err(|e| RemoteError::Transient(e.to_string()))?;
    fs.db.set_cursor(resp.cursor).map_err(|e| RemoteError::Transient(e.to_string()))?;
    fs.wake.notify_one();
    tracing::info!(actions = queue.len(), cursor = %resp.cursor, "negotiated with the server");
    // The plan is in the durable queue, which carries it out: close the session with
    // what was queued. A lost report only leaves the session open on the server.
    if let Err(e) = fs.remote.complete_session(resp.session_id, report).await {
        tracing::debug!(session = resp.session_id, "completing the sync session: {e}");
    }
    super::clear_error(fs);
    Ok(())
}

/// The counts of a negotiated plan, by what the queue will do with each save.
fn session_report(actions: &[PlannedAction]) -> SessionReport {
    let mut r = SessionReport::default();
    for a in actions {
        match a.action {
            ActionKind::Upload => r.uploaded += 1,
            ActionKind::Download => r.downloaded += 1,
            ActionKind::DeleteRemote | ActionKind::DeleteLocal => r.deleted += 1,
            ActionKind::Conflict => r.conflicts += 1,
            _ => {}
        }
    }
    r
}

/// Pull every change after our cursor and queue the saves that need a decision.
async fn pull_changes(fs: &SaveFs) -> Result<(), RemoteError> {
    // Bounded: 1000 pages of 1000 changes per announcement.
    for _ in 0..1000 {
        let since = fs.db.cursor().unwrap_or_default();
        let page = fs.remote.changes(since, 1000).await?;
        let mut queue = Vec::new();
        for meta in &page.changes {
            if let Some(path) = note_change(fs, meta) {
                queue.push(path);
            }
        }
        queue.sort();
        queue.dedup();
        fs.db.enqueue_many(&queue, now_ms()).map_err(|e| RemoteError::Transient(e.to_string()))?;
        if !queue.is_empty() {
            fs.wake.notify_one();
        }
        fs.db.set_cursor(page.cursor).map_err(|e| RemoteError::Transient(e.to_string()))?;
        if !page.more {
            break;
        }
    }
    Ok(())
}

/// Record a new head; returns the path if it needs a decision (not our own commit).
fn note_change(fs: &SaveFs, meta: &SaveMeta) -> Option<SavePath> {
    if meta.path.components().any(is_local_only_name) {
        return None;
    }
    let rec = fs.db.record(&meta.path).ok()?;
    if rec.base == Some(meta.version()) {
        return None;
    }
    fs.db.note_head(&meta.path, meta.version(), meta.size).ok()?;
    Some(meta.path.clone())
}
