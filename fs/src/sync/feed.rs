//! The feed follower: negotiate a manifest with the server (on start and after every
//! reconnect, so nothing missed while offline stays missed), then follow `/events`; each
//! announced cursor beyond ours pulls `/changes` and queues every save the server changed
//! (due at once, so a save closed on another device shows here within a second).
//! Connection loss marks the mount offline and reconnects with capped backoff.

use crate::inode_table::ROOT_INO;
use crate::remote::RemoteError;
use crate::savefs::{SaveFs, lock, now_ms};
use crate::state::InodeKind;
use futures::StreamExt;
use savesync_core::wire::{ActionKind, ManifestEntry, SaveMeta};
use savesync_core::{ContentHash, SavePath, is_local_only_name};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A live event stream is considered dead after this long without any event (the server
/// sends keep-alives every 15 s).
const EVENT_IDLE: Duration = Duration::from_secs(45);
/// Reconnect attempts are cheap (one refused connect), so a returning server is found fast.
const MAX_BACKOFF: Duration = Duration::from_secs(3);

pub(super) async fn run(fs: Arc<SaveFs>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match follow_once(&fs).await {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(e) => {
                if fs.online.swap(false, Ordering::Relaxed) {
                    tracing::warn!("server connection lost: {e}");
                }
                super::note_error(&fs, &e);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

async fn follow_once(fs: &SaveFs) -> Result<(), RemoteError> {
    negotiate(fs).await?;
    let mut events = fs.remote.events().await?;
    if !fs.online.swap(true, Ordering::Relaxed) {
        tracing::info!("server reachable: syncing");
    }
    // Work queued while offline may go now.
    let _ = fs.db.wake_all_pending(now_ms());
    fs.wake.notify_one();
    loop {
        let next = tokio::time::timeout(EVENT_IDLE, events.next())
            .await
            .map_err(|_| RemoteError::Transient("event stream went silent".into()))?;
        let Some(item) = next else { return Ok(()) };
        let announced = item?;
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
    super::reconcile::hash_file(&fs.cache_path(ino)).ok()
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
    // Hashing every cached save is disk-bound: tell the runtime this worker is busy.
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
    Ok(())
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
