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
//! (minutes by default), and a local change probes at once (or, in a burst of them, once
//! the last probe is [`FIRST_OFFLINE_WAIT`] old). The uploader pauses while
//! offline and is woken when the server is back.

use super::SyncEngine;
use super::policy::{FIRST_OFFLINE_WAIT, local_change_probe_delay, next_offline_wait};
use super::prefetch::{BulkLimits, Prefetch, select};
use crate::clock::now_ms;
use crate::local::{Entry, EntryKind, LocalError, LocalStore};
use crate::remote::{FeedItem, RemoteError};
use crate::state::DbError;
use crate::state::Record;
use futures::StreamExt;
use savesync_core::wire::{ActionKind, ManifestEntry, PlannedAction, SaveMeta, SessionReport};
use savesync_core::{SavePath, Version, is_local_only_name};
use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;
use std::time::Duration;

/// A local failure met while following the feed (the server itself was fine).
fn local_fault(e: impl std::fmt::Display) -> RemoteError {
    RemoteError::Transient(e.to_string())
}

pub(super) async fn run(fs: Arc<SyncEngine>) {
    let mut wait = Duration::ZERO;
    loop {
        let started = tokio::time::Instant::now();
        match follow_once(&fs).await {
            Ok(()) => wait = Duration::ZERO,
            Err(e) => {
                // Only an unanswered probe or request means the server is gone. A local
                // failure (a full state DB) must not pause the uploader: closed saves can
                // still reach the server. The next round's probe tells if it left.
                if !matches!(e, RemoteError::Offline(_)) {
                    tracing::debug!("sync round failed, server reachable: {e}");
                } else if fs.status.set_online(false) {
                    tracing::warn!("server connection lost: {e}");
                } else {
                    tracing::debug!("server still unreachable: {e}");
                }
                fs.status.note_error(&e);
                wait = next_offline_wait(wait, fs.cfg.offline_backoff_max);
            }
        }
        // A local change (or the uploader finding the server gone) cuts the wait short,
        // though not to less than a few probes a second while offline: a burst of closed
        // saves would otherwise try a connection for every one of them.
        let pause = if wait.is_zero() { FIRST_OFFLINE_WAIT } else { wait };
        let woken = tokio::time::timeout(pause, fs.feed_wake.notified()).await.is_ok();
        if woken && !wait.is_zero() {
            tokio::time::sleep(local_change_probe_delay(started.elapsed())).await;
        }
    }
}

/// The server answered again: mark the mount online and let queued work go.
async fn now_online(fs: &SyncEngine) {
    if !fs.status.set_online(true) {
        tracing::info!("server reachable: syncing");
    }
    let now = now_ms();
    let _ = fs.bookkeeping(|l| l.db().wake_all_pending(now));
    fs.wake.notify_one();
}

/// Free what a negotiation read and built: the state DB's page caches (it read every
/// record) and the freed heap.
fn give_back_memory(local: &dyn LocalStore) {
    local.db().release_memory();
    crate::heap::release_free_memory();
}

async fn follow_once(fs: &SyncEngine) -> Result<(), RemoteError> {
    // Nothing is read from the cache before the server has answered.
    fs.remote.probe().await?;
    // The server answered: queued uploads may go even if negotiating fails locally.
    now_online(fs).await;
    if let Err(e) = negotiate(fs).await {
        // The manifest (about a kilobyte per save at its peak) is freed by now.
        fs.local(give_back_memory).await;
        return Err(e);
    }
    // The server answered: queued work may go while the stream connects.
    now_online(fs).await;
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
                    now_online(fs).await;
                }
                continue;
            }
        };
        let next = next.map_err(|_| RemoteError::Transient("event stream went silent".into()))?;
        let Some(item) = next else { return Ok(()) };
        // Any item, keep-alive or event, proves the stream alive.
        deadline = tokio::time::Instant::now() + silence;
        let FeedItem::Cursor(announced) = item? else { continue };
        let ours = fs.bookkeeping(|l| l.db().cursor()).unwrap_or_default();
        if announced > ours {
            pull_changes(fs).await?;
        }
    }
}

/// The manifest of everything the device knows, in path order: every record with its
/// base, and every save file with the hash of what it has (its base if never downloaded).
/// Blocking: unchanged saves come from the hash cache, changed ones are read. Records and
/// files are merged as two sorted lists, so nothing but the entries themselves is held.
fn manifest(l: &dyn LocalStore) -> Result<(Vec<ManifestEntry>, RecordsSent), LocalError> {
    let mut records = l.db().all_records()?;
    records.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut files: Vec<(SavePath, Entry)> =
        l.saves()?.into_iter().filter(|(_, e)| e.kind == EntryKind::File).collect();
    files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut sent = RecordsSent::default();
    let mut entries = Vec::with_capacity(records.len().max(files.len()));
    let mut files = files.into_iter().peekable();
    for (path, record) in records {
        while let Some((file, entry)) = files.next_if(|(file, _)| *file < path) {
            entries.push(file_entry(l, file, &entry, None));
        }
        sent.note(&path, &record);
        entries.push(match files.next_if(|(file, _)| *file == path) {
            Some((file, entry)) => file_entry(l, file, &entry, record.base),
            None => ManifestEntry { path, local: None, base: record.base },
        });
    }
    entries.extend(files.map(|(file, entry)| file_entry(l, file, &entry, None)));
    Ok((entries, sent))
}

/// The manifest entry of a save file: the hash of its bytes when they are here (left out
/// of this round when they cannot be read now), else the hash of its base.
fn file_entry(
    l: &dyn LocalStore,
    path: SavePath,
    entry: &Entry,
    base: Option<Version>,
) -> ManifestEntry {
    let local = if entry.cached { l.hash(&path).ok().flatten() } else { base.and_then(|b| b.hash) };
    ManifestEntry { path, local, base }
}

/// The sync records as the manifest was built, by fingerprint: a plan is made against
/// them, and the engine goes on syncing while the answer travels. A record changed since
/// (an upload agreed on, a head heard from the feed) is newer than what the plan says.
#[derive(Debug, Default)]
struct RecordsSent(HashSet<u64>);

impl RecordsSent {
    fn fingerprint(path: &SavePath, record: &Record) -> u64 {
        BuildHasherDefault::<DefaultHasher>::default().hash_one((path, record))
    }

    fn note(&mut self, path: &SavePath, record: &Record) {
        self.0.insert(Self::fingerprint(path, record));
    }

    /// True when `path`'s record is still what the manifest was built from.
    fn unchanged(&self, path: &SavePath, record: &Record) -> bool {
        self.0.contains(&Self::fingerprint(path, record))
    }
}

/// Record the negotiated plan: heads noted, unseen saves shown (stores that can), the
/// saves to act on queued, the cursor moved. One blocking step.
///
/// A head is only ever moved forward (`note_head`). "The server has no such save" clears
/// the known head only where the record is unchanged since the manifest: cleared after
/// this device's own upload of a new save agreed meanwhile, it made the save look never
/// synced, so deleting it here never reached the server.
fn record_plan(
    l: &dyn LocalStore,
    actions: &[PlannedAction],
    cursor: savesync_core::Seq,
    sent: &RecordsSent,
) -> Result<usize, LocalError> {
    let mut queue = Vec::new();
    let mut unseen: Vec<(SavePath, Version, u64)> = Vec::new();
    for action in actions {
        if action.action == ActionKind::Untracked || action.action == ActionKind::NoOp {
            continue;
        }
        if action.action == ActionKind::Download
            && l.shows_uncached()
            && let Some(h) = action.head.as_ref().filter(|h| !h.deleted)
            && l.entry(&action.path)?.kind == EntryKind::Absent
        {
            // Not on this device at all: list it now, bytes come by prefetch.
            unseen.push((action.path.clone(), h.version(), h.size));
        }
        match &action.head {
            Some(h) => l.db().note_head(&action.path, h.version(), h.size)?,
            None => {
                if sent.unchanged(&action.path, &l.db().record(&action.path)?) {
                    l.db().clear_head(&action.path)?;
                }
            }
        }
        queue.push(action.path.clone());
    }
    if !unseen.is_empty() {
        l.show_uncached(&unseen)?;
    }
    l.db().enqueue_many(&queue, now_ms())?;
    l.db().set_cursor(cursor)?;
    Ok(queue.len())
}

async fn negotiate(fs: &SyncEngine) -> Result<(), RemoteError> {
    let (manifest, sent) = fs.local(manifest).await.map_err(local_fault)?;
    let resp = fs.remote.negotiate(manifest).await?;
    let report = session_report(&resp.actions);
    let cursor = resp.cursor;
    let actions = resp.actions;
    // Slots for the bulk prefetch exist before the queue entries, so no worker starts a
    // single download of a save the bulk stream brings.
    let wanted = select(download_candidates(&actions), fs.bulk_limits());
    let (round, taken) = fs.prefetch.register(&wanted);
    let queued = match fs.local(move |l| record_plan(l, &actions, cursor, &sent)).await {
        Ok(queued) => queued,
        Err(e) => {
            fs.prefetch.end_round(round);
            return Err(local_fault(e));
        }
    };
    fs.wake.notify_one();
    // The manifest and the plan (about a kilobyte per save at their peak) are freed now:
    // give the heap back before the session is reported complete.
    fs.local(give_back_memory).await;
    tracing::info!(actions = queued, bulk = taken.len(), cursor = %cursor, "negotiated with the server");
    // The plan is in the durable queue, which carries it out: close the session with
    // what was queued. A lost report only leaves the session open on the server.
    if let Err(e) = fs.remote.complete_session(resp.session_id, report).await {
        tracing::debug!(session = resp.session_id, "completing the sync session: {e}");
    }
    fs.prefetch_round(round, taken).await;
    fs.status.clear_error();
    Ok(())
}

/// The saves of a negotiated plan to download, in plan order.
fn download_candidates(actions: &[PlannedAction]) -> Vec<(SavePath, Version, u64)> {
    actions
        .iter()
        .filter(|a| a.action == ActionKind::Download)
        .filter_map(|a| a.head.as_ref().filter(|h| !h.deleted && h.hash.is_some()))
        .map(|h| (h.path.clone(), h.version(), h.size))
        .collect()
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
async fn pull_changes(fs: &SyncEngine) -> Result<(), RemoteError> {
    // Bounded: 1000 pages of 1000 changes per announcement.
    for _ in 0..1000 {
        let since = fs.bookkeeping(|l| l.db().cursor()).unwrap_or_default();
        let page = fs.remote.changes(since, 1000).await?;
        let more = page.more;
        let (prefetch, limits) = (Arc::clone(&fs.prefetch), fs.bulk_limits());
        let (queued, round, taken) = fs
            .local(move |l| record_changes(l, &page, &prefetch, limits))
            .await
            .map_err(local_fault)?;
        if queued > 0 {
            fs.wake.notify_one();
        }
        fs.prefetch_round(round, taken).await;
        if !more {
            break;
        }
    }
    Ok(())
}

/// Note every new head of `page`, queue the saves that need a decision (not our own
/// commits), and move the cursor. The saves worth a bulk prefetch get their slots before
/// they are queued. Returns how many were queued, and the prefetch round with its saves.
fn record_changes(
    l: &dyn LocalStore,
    page: &savesync_core::wire::ChangesPage,
    prefetch: &Prefetch,
    limits: BulkLimits,
) -> Result<(usize, u64, Vec<SavePath>), DbError> {
    let mut queue: BTreeMap<SavePath, &SaveMeta> = BTreeMap::new();
    for meta in &page.changes {
        if let Some(path) = note_change(l, meta)? {
            queue.insert(path, meta);
        }
    }
    let candidates = queue
        .values()
        .filter(|m| !m.deleted)
        .map(|m| (m.path.clone(), m.version(), m.size))
        .collect();
    let (round, taken) = prefetch.register(&select(candidates, limits));
    let paths: Vec<SavePath> = queue.into_keys().collect();
    let recorded =
        l.db().enqueue_many(&paths, now_ms()).and_then(|()| l.db().set_cursor(page.cursor));
    if let Err(e) = recorded {
        prefetch.end_round(round);
        return Err(e);
    }
    Ok((paths.len(), round, taken))
}

/// Record a new head; returns the path if it needs a decision (not our own commit).
///
/// Our own commit is either agreed on already (it is the base), or it is an upload whose
/// answer is still on the way: the feed can be faster than the answer. That one is noted
/// in flight with its bytes' hash and the rev it was made on; its answer agrees on it, or,
/// if the answer is lost, the sync that retries the queued upload adopts it
/// (`adopt_own_commit`). Queued here, it was decided a second time and, in a page with
/// other changes, bulk-downloaded back.
fn note_change(l: &dyn LocalStore, meta: &SaveMeta) -> Result<Option<SavePath>, DbError> {
    if meta.path.components().any(is_local_only_name) {
        return Ok(None);
    }
    let rec = l.db().record(&meta.path)?;
    if rec.base == Some(meta.version()) {
        return Ok(None);
    }
    l.db().note_head(&meta.path, meta.version(), meta.size)?;
    if own_upload_in_flight(l, meta)? {
        return Ok(None);
    }
    Ok(Some(meta.path.clone()))
}

/// True when `meta` is the commit of an upload of this device still waiting for its answer.
fn own_upload_in_flight(l: &dyn LocalStore, meta: &SaveMeta) -> Result<bool, DbError> {
    let Some(hash) = meta.hash else { return Ok(false) };
    let in_flight = l.db().uploads_in_flight(&meta.path)?;
    Ok(in_flight.iter().any(|(h, expected)| *h == hash && expected.next() == meta.rev))
}
