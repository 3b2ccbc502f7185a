//! [`FakeRemote`]: an in-memory server for engine tests. It follows the server's contract
//! (compare-and-swap on `rev`, idempotent re-upload of the head's hash, rejected uploads
//! kept as `conflict` versions, a changes log by `Seq`, negotiate via `core::decide`) and
//! injects failures on purpose: offline (connection refused) and 5xx.

use crate::remote::{FeedItem, Fetched, Remote, RemoteError, RemoteResult};
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use savesync_client::BulkItem;
use savesync_core::wire::{
    ActionKind, ChangesPage, History, HistoryEntry, ManifestEntry, NegotiateResponse,
    PlannedAction, SaveList, SaveMeta, SessionReport, VersionKind,
};
use savesync_core::{ContentHash, Rev, SavePath, Seq, Version, decide};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

#[derive(Debug, Default)]
struct State {
    heads: BTreeMap<SavePath, SaveMeta>,
    /// Bytes by content hash.
    blobs: HashMap<ContentHash, Bytes>,
    /// (path, rev) -> hash of every commit.
    commits: HashMap<(SavePath, Rev), Option<ContentHash>>,
    /// Rejected uploads: (path, base rev, hash).
    conflict_versions: Vec<(SavePath, Rev, ContentHash)>,
    log: Vec<SaveMeta>,
    seq: u64,
    offline: bool,
    failing: bool,
    uploads: u64,
    /// Every download takes at least this long (a slow link).
    download_delay: std::time::Duration,
    /// Negotiate answers are held back after their plan was made, until released.
    negotiate_answers_held: bool,
    /// How long an upload's answer takes to arrive after its commit.
    upload_answer_delay: std::time::Duration,
    downloads_started: u64,
    /// Calls refused by injected failures.
    refused: std::sync::atomic::AtomicU64,
    /// Uploads are refused for good (a 4xx such as a bad path).
    refusing_uploads: bool,
    /// The next committed upload answers with a transient error and the server becomes
    /// unreachable, as if the link dropped right after the commit.
    drop_link_after_commit: bool,
    /// Negotiate sessions opened, and the reports of those completed.
    sessions_opened: i64,
    completed: Vec<(i64, SessionReport)>,
    probes: u64,
    /// Saves sent whole by bulk downloads.
    bulk_saves_sent: u64,
}

/// An in-memory stand-in for the sync server.
#[derive(Debug, Clone)]
pub struct FakeRemote {
    state: Arc<Mutex<State>>,
    /// (seq, epoch): bumped on every commit and every failure toggle, so event streams wake.
    notify: Arc<watch::Sender<(u64, u64)>>,
}

impl Default for FakeRemote {
    fn default() -> Self {
        FakeRemote::new()
    }
}

impl FakeRemote {
    #[must_use]
    pub fn new() -> FakeRemote {
        let (tx, _rx) = watch::channel((0, 0));
        FakeRemote { state: Arc::default(), notify: Arc::new(tx) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn bump(&self, seq: u64) {
        self.notify.send_modify(|(s, e)| {
            *s = seq;
            *e += 1;
        });
    }

    /// Flip a switch of the fake server and wake everything that waits on it (event
    /// streams, held answers), so it sees the change.
    fn change(&self, f: impl FnOnce(&mut State)) {
        let seq = {
            let mut s = self.lock();
            f(&mut s);
            s.seq
        };
        self.bump(seq);
    }

    /// Make every call fail as "connection refused" (and end live event streams).
    pub fn set_offline(&self, offline: bool) {
        self.change(|s| s.offline = offline);
    }

    /// Make every call fail with a 5xx.
    pub fn set_failing(&self, failing: bool) {
        self.change(|s| s.failing = failing);
    }

    /// Refuse every upload permanently (like a 4xx), or stop doing so.
    pub fn set_refusing_uploads(&self, refusing: bool) {
        self.lock().refusing_uploads = refusing;
    }

    /// Commit the next upload, then lose its answer and go offline (until
    /// `set_offline(false)`).
    pub fn drop_link_after_next_commit(&self) {
        self.lock().drop_link_after_commit = true;
    }

    /// Reports of completed negotiate sessions, oldest first.
    #[must_use]
    pub fn completed_sessions(&self) -> Vec<(i64, SessionReport)> {
        self.lock().completed.clone()
    }

    /// Number of negotiate sessions opened so far.
    #[must_use]
    pub fn sessions_opened(&self) -> i64 {
        self.lock().sessions_opened
    }

    /// Number of reachability probes so far.
    #[must_use]
    pub fn probes(&self) -> u64 {
        self.lock().probes
    }

    /// Make every download take at least `delay` (a slow link).
    pub fn set_download_delay(&self, delay: std::time::Duration) {
        self.lock().download_delay = delay;
    }

    /// Hold every negotiate answer back after its plan was made, until called with
    /// `false` (a slow link, or a big manifest): what the device does meanwhile is newer
    /// than the plan.
    pub fn hold_negotiate_answers(&self, held: bool) {
        self.change(|s| s.negotiate_answers_held = held);
    }

    /// Make every upload's answer arrive `delay` after its commit (a slow link): the
    /// commit is in the feed, and the device may hear of it, before the answer is back.
    pub fn set_upload_answer_delay(&self, delay: std::time::Duration) {
        self.lock().upload_answer_delay = delay;
    }

    /// The negotiate plan for `entries` against the current heads.
    fn plan(&self, entries: &[ManifestEntry]) -> RemoteResult<NegotiateResponse> {
        let mut s = self.lock();
        Self::check_up(&s)?;
        s.sessions_opened += 1;
        let session_id = s.sessions_opened;
        let mut actions = Vec::new();
        let mut named = std::collections::HashSet::new();
        for e in entries {
            named.insert(e.path.clone());
            let head = s.heads.get(&e.path);
            let (action, expected_rev) =
                ActionKind::of(decide(e.local, e.base, head.map(SaveMeta::version)));
            if action != ActionKind::NoOp {
                actions.push(PlannedAction {
                    path: e.path.clone(),
                    action,
                    expected_rev,
                    head: head.cloned(),
                });
            }
        }
        for (path, head) in &s.heads {
            if !named.contains(path) && !head.deleted {
                actions.push(PlannedAction {
                    path: path.clone(),
                    action: ActionKind::Download,
                    expected_rev: None,
                    head: Some(head.clone()),
                });
            }
        }
        let answer = NegotiateResponse { session_id, cursor: Seq(s.seq), actions };
        Ok(answer)
    }

    /// Commit `bytes` at `path` as another device would (on top of the current head).
    pub fn put(&self, path: &str, bytes: &[u8]) -> SaveMeta {
        let path = SavePath::parse(path).expect("valid test path");
        let base = self.lock().heads.get(&path).map_or(Rev::NONE, |m| m.rev);
        self.commit(&path, base, Some(Bytes::copy_from_slice(bytes))).expect("fake put")
    }

    /// Commit a tombstone at `path` as another device would.
    pub fn remove(&self, path: &str) -> SaveMeta {
        let path = SavePath::parse(path).expect("valid test path");
        let base = self.lock().heads.get(&path).map_or(Rev::NONE, |m| m.rev);
        self.commit(&path, base, None).expect("fake remove")
    }

    /// The head of `path`, if any.
    #[must_use]
    pub fn head(&self, path: &str) -> Option<SaveMeta> {
        let path = SavePath::parse(path).ok()?;
        self.lock().heads.get(&path).cloned()
    }

    /// The bytes of the live head of `path`.
    #[must_use]
    pub fn content(&self, path: &str) -> Option<Bytes> {
        let s = self.lock();
        let path = SavePath::parse(path).ok()?;
        let hash = s.heads.get(&path)?.hash?;
        s.blobs.get(&hash).cloned()
    }

    /// Paths of every live save.
    #[must_use]
    pub fn live_paths(&self) -> Vec<String> {
        self.lock()
            .heads
            .values()
            .filter(|m| !m.deleted)
            .map(|m| m.path.as_str().to_owned())
            .collect()
    }

    /// Bytes of every commit of `path`, oldest first (`None`: a delete).
    #[must_use]
    pub fn committed_versions(&self, path: &str) -> Vec<Option<Bytes>> {
        let s = self.lock();
        let mut commits: Vec<_> =
            s.commits.iter().filter(|((p, _), _)| p.as_str() == path).collect();
        commits.sort_by_key(|((_, rev), _)| rev.0);
        commits.into_iter().map(|(_, h)| h.and_then(|h| s.blobs.get(&h).cloned())).collect()
    }

    /// Bytes of rejected uploads of `path` (the server keeps them as `conflict` versions).
    #[must_use]
    pub fn conflict_versions(&self, path: &str) -> Vec<Bytes> {
        let s = self.lock();
        s.conflict_versions
            .iter()
            .filter(|(p, _, _)| p.as_str() == path)
            .filter_map(|(_, _, h)| s.blobs.get(h).cloned())
            .collect()
    }

    /// Number of calls refused by injected failures so far.
    #[must_use]
    pub fn refused_calls(&self) -> u64 {
        self.lock().refused.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Number of downloads begun so far.
    #[must_use]
    pub fn downloads_started(&self) -> u64 {
        self.lock().downloads_started
    }

    /// Saves sent whole by bulk downloads so far.
    #[must_use]
    pub fn bulk_saves_sent(&self) -> u64 {
        self.lock().bulk_saves_sent
    }

    /// Number of accepted uploads so far.
    #[must_use]
    pub fn upload_count(&self) -> u64 {
        self.lock().uploads
    }

    fn check_up(s: &State) -> RemoteResult<()> {
        if s.offline || s.failing {
            s.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if s.offline {
            return Err(RemoteError::Offline("fake: connection refused".into()));
        }
        if s.failing {
            return Err(RemoteError::Transient("fake: 503 unavailable".into()));
        }
        Ok(())
    }

    /// After a commit: drop its answer and the link if told to.
    /// After a commit: lose its answer (`drop_link_after_next_commit`), or let it take
    /// `upload_answer_delay` to arrive.
    async fn maybe_lose_answer(&self) -> RemoteResult<()> {
        let delay = {
            let mut s = self.lock();
            if std::mem::take(&mut s.drop_link_after_commit) {
                s.offline = true;
                return Err(RemoteError::Transient("fake: connection reset after commit".into()));
            }
            s.upload_answer_delay
        };
        tokio::time::sleep(delay).await;
        Ok(())
    }

    fn commit(&self, path: &SavePath, base: Rev, bytes: Option<Bytes>) -> RemoteResult<SaveMeta> {
        let meta = {
            let mut s = self.lock();
            Self::check_up(&s)?;
            let head = s.heads.get(path).cloned();
            let hash = bytes.as_ref().map(|b| ContentHash::of(b));
            if let Some(h) = &head
                && h.hash == hash
            {
                return Ok(h.clone());
            }
            let head_rev = head.as_ref().map_or(Rev::NONE, |h| h.rev);
            if head_rev != base {
                if let (Some(b), Some(h)) = (&bytes, hash) {
                    s.blobs.insert(h, b.clone());
                    s.conflict_versions.push((path.clone(), base, h));
                }
                return Err(RemoteError::Conflict(head.map(Box::new)));
            }
            if head.is_none() && bytes.is_none() {
                return Err(RemoteError::NotFound);
            }
            if head.as_ref().is_none_or(|h| h.deleted)
                && let Some(twin) =
                    s.heads.values().find(|h| !h.deleted && case_twins(path, &h.path))
            {
                return Err(RemoteError::NameCollision {
                    existing: Some(twin.path.clone()),
                    message: format!("fake: 409 name_collision: {path} vs {}", twin.path),
                });
            }
            s.seq += 1;
            let rev = head_rev.next();
            if let (Some(b), Some(h)) = (&bytes, hash) {
                s.blobs.insert(h, b.clone());
                s.uploads += 1;
            }
            let meta = SaveMeta {
                path: path.clone(),
                rev,
                seq: Seq(s.seq),
                hash,
                size: bytes.as_ref().map_or(0, |b| b.len() as u64),
                deleted: bytes.is_none(),
                committed_at: "1970-01-01T00:00:00Z".into(),
                device: None,
            };
            s.commits.insert((path.clone(), rev), hash);
            s.heads.insert(path.clone(), meta.clone());
            s.log.push(meta.clone());
            meta
        };
        self.bump(meta.seq.0);
        Ok(meta)
    }
}

impl Remote for FakeRemote {
    fn list(&self) -> BoxFuture<'_, RemoteResult<SaveList>> {
        Box::pin(async move {
            let s = self.lock();
            Self::check_up(&s)?;
            Ok(SaveList { saves: s.heads.values().cloned().collect(), cursor: Seq(s.seq) })
        })
    }

    fn download_to_file(
        &self,
        path: SavePath,
        rev: Option<Rev>,
        dest: PathBuf,
    ) -> BoxFuture<'_, RemoteResult<Fetched>> {
        Box::pin(async move {
            let delay = {
                let mut s = self.lock();
                s.downloads_started += 1;
                s.download_delay
            };
            tokio::time::sleep(delay).await;
            let (bytes, version) = {
                let s = self.lock();
                Self::check_up(&s)?;
                let head = s.heads.get(&path).ok_or(RemoteError::NotFound)?;
                let rev = rev.unwrap_or(head.rev);
                let hash = s
                    .commits
                    .get(&(path.clone(), rev))
                    .copied()
                    .flatten()
                    .ok_or(RemoteError::NotFound)?;
                let bytes = s.blobs.get(&hash).cloned().ok_or(RemoteError::NotFound)?;
                (bytes, Version { rev, hash: Some(hash) })
            };
            let tmp = dest.with_extension("fake-download");
            std::fs::write(&tmp, &bytes)
                .and_then(|()| std::fs::rename(&tmp, &dest))
                .map_err(|e| RemoteError::Refused(format!("fake download write: {e}")))?;
            Ok(Fetched { version, size: bytes.len() as u64 })
        })
    }

    fn upload(
        &self,
        path: SavePath,
        base: Rev,
        bytes: Bytes,
    ) -> BoxFuture<'_, RemoteResult<SaveMeta>> {
        Box::pin(async move {
            if self.lock().refusing_uploads {
                return Err(RemoteError::Refused("fake: 400 refused".into()));
            }
            let meta = self.commit(&path, base, Some(bytes))?;
            self.maybe_lose_answer().await?;
            Ok(meta)
        })
    }

    fn upload_file(
        &self,
        path: SavePath,
        base: Rev,
        file: PathBuf,
    ) -> BoxFuture<'_, RemoteResult<SaveMeta>> {
        Box::pin(async move {
            let bytes = std::fs::read(&file)
                .map_err(|e| RemoteError::Refused(format!("fake upload read: {e}")))?;
            let meta = self.commit(&path, base, Some(Bytes::from(bytes)))?;
            self.maybe_lose_answer().await?;
            Ok(meta)
        })
    }

    fn delete(&self, path: SavePath, base: Rev) -> BoxFuture<'_, RemoteResult<SaveMeta>> {
        Box::pin(async move { self.commit(&path, base, None) })
    }

    fn changes(&self, since: Seq, limit: u32) -> BoxFuture<'_, RemoteResult<ChangesPage>> {
        Box::pin(async move {
            let s = self.lock();
            Self::check_up(&s)?;
            let after: Vec<SaveMeta> = s.log.iter().filter(|m| m.seq > since).cloned().collect();
            let more = after.len() > limit as usize;
            let changes: Vec<SaveMeta> = after.into_iter().take(limit as usize).collect();
            let cursor = changes.last().map_or(Seq(s.seq.max(since.0)), |m| m.seq);
            Ok(ChangesPage { changes, cursor, more })
        })
    }

    fn events(
        &self,
        silence: std::time::Duration,
    ) -> BoxFuture<'_, RemoteResult<BoxStream<'static, RemoteResult<FeedItem>>>> {
        Box::pin(async move {
            let first = {
                let s = self.lock();
                Self::check_up(&s)?;
                Seq(s.seq)
            };
            let rx = self.notify.subscribe();
            let state = Arc::clone(&self.state);
            // Keep-alives well within the follower's silence limit, like the real server.
            let keep_alive = silence / 4;
            let rest = futures::stream::unfold((rx, state), move |(mut rx, state)| async move {
                match tokio::time::timeout(keep_alive, rx.changed()).await {
                    Err(_) => return Some((Ok(FeedItem::Alive), (rx, state))),
                    Ok(changed) => changed.ok()?,
                }
                let (seq, up) = {
                    let s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    (s.seq, !s.offline && !s.failing)
                };
                // A server going away ends the stream, like a dropped connection.
                up.then_some((Ok(FeedItem::Cursor(Seq(seq))), (rx, state)))
            });
            Ok(futures::stream::once(async move { Ok(FeedItem::Cursor(first)) })
                .chain(rest)
                .boxed())
        })
    }

    fn probe(&self) -> BoxFuture<'_, RemoteResult<()>> {
        Box::pin(async move {
            let mut s = self.lock();
            s.probes += 1;
            Self::check_up(&s)
        })
    }

    fn complete_session(&self, id: i64, report: SessionReport) -> BoxFuture<'_, RemoteResult<()>> {
        Box::pin(async move {
            let mut s = self.lock();
            Self::check_up(&s)?;
            s.completed.push((id, report));
            Ok(())
        })
    }

    fn negotiate(
        &self,
        entries: Vec<ManifestEntry>,
    ) -> BoxFuture<'_, RemoteResult<NegotiateResponse>> {
        Box::pin(async move {
            let answer = self.plan(&entries)?;
            loop {
                // Subscribed before the check, so a release in between is not missed.
                let mut changes = self.notify.subscribe();
                if !self.lock().negotiate_answers_held {
                    break;
                }
                let _ = changes.changed().await;
            }
            Ok(answer)
        })
    }

    /// Commits (version id = rev) then conflict versions (ids from 1,000,000), newest
    /// first within each kind; every time is the epoch and no device is known.
    fn history(&self, path: SavePath) -> BoxFuture<'_, RemoteResult<History>> {
        Box::pin(async move {
            let s = self.lock();
            Self::check_up(&s)?;
            if !s.heads.contains_key(&path) {
                return Err(RemoteError::NotFound);
            }
            let size = |h: &Option<ContentHash>| {
                h.and_then(|h| s.blobs.get(&h)).map_or(0, |b| b.len() as u64)
            };
            let entry = |version_id: i64, kind, rev: Rev, hash: Option<ContentHash>| HistoryEntry {
                version_id,
                kind,
                rev,
                hash,
                size: size(&hash),
                created_at: "1970-01-01T00:00:00Z".into(),
                device: None,
            };
            let mut commits: Vec<_> = s.commits.iter().filter(|((p, _), _)| *p == path).collect();
            commits.sort_by_key(|((_, rev), _)| std::cmp::Reverse(rev.0));
            let mut versions: Vec<HistoryEntry> = commits
                .into_iter()
                .map(|((_, rev), hash)| entry(rev.0 as i64, VersionKind::Commit, *rev, *hash))
                .collect();
            for (i, (p, base, hash)) in s.conflict_versions.iter().enumerate().rev() {
                if *p == path {
                    let id = 1_000_000 + i as i64;
                    versions.push(entry(id, VersionKind::Conflict, *base, Some(*hash)));
                }
            }
            Ok(History { path, versions })
        })
    }

    fn download_version_to_file(
        &self,
        path: SavePath,
        version_id: i64,
        dest: PathBuf,
    ) -> BoxFuture<'_, RemoteResult<Fetched>> {
        Box::pin(async move {
            let (bytes, version) = {
                let s = self.lock();
                Self::check_up(&s)?;
                let (rev, hash) = match usize::try_from(version_id - 1_000_000) {
                    Ok(i) => match s.conflict_versions.get(i) {
                        Some((p, base, h)) if *p == path => (*base, Some(*h)),
                        _ => return Err(RemoteError::NotFound),
                    },
                    Err(_) => {
                        let rev =
                            Rev(u64::try_from(version_id).map_err(|_| RemoteError::NotFound)?);
                        (rev, s.commits.get(&(path.clone(), rev)).copied().flatten())
                    }
                };
                let hash = hash.ok_or(RemoteError::NotFound)?;
                let bytes = s.blobs.get(&hash).cloned().ok_or(RemoteError::NotFound)?;
                (bytes, Version { rev, hash: Some(hash) })
            };
            std::fs::write(&dest, &bytes)
                .map_err(|e| RemoteError::Refused(format!("fake download write: {e}")))?;
            Ok(Fetched { version, size: bytes.len() as u64 })
        })
    }

    fn bulk_download(
        &self,
        paths: Vec<SavePath>,
        max_save_bytes: u64,
    ) -> BoxFuture<'_, RemoteResult<BoxStream<'static, RemoteResult<BulkItem>>>> {
        Box::pin(async move {
            let mut s = self.lock();
            Self::check_up(&s)?;
            let items: Vec<RemoteResult<BulkItem>> = paths
                .into_iter()
                .map(|path| {
                    let head = s.heads.get(&path).filter(|h| !h.deleted);
                    let found = head.and_then(|h| Some((h, s.blobs.get(&h.hash?)?.clone())));
                    Ok(match found {
                        None => BulkItem::Missing { path },
                        Some((h, _)) if h.size > max_save_bytes => {
                            BulkItem::TooLarge { path, rev: h.rev, size: h.size }
                        }
                        Some((h, bytes)) => BulkItem::Save { path, version: h.version(), bytes },
                    })
                })
                .collect();
            s.bulk_saves_sent +=
                items.iter().filter(|i| matches!(i, Ok(BulkItem::Save { .. }))).count() as u64;
            Ok(futures::stream::iter(items).boxed())
        })
    }
}

/// The server's name-collision rule: at the first component where the two paths differ,
/// the names are different but case-fold to the same key.
fn case_twins(a: &SavePath, b: &SavePath) -> bool {
    a.components()
        .zip(b.components())
        .find(|(x, y)| x != y)
        .is_some_and(|(x, y)| savesync_core::fold_key(x) == savesync_core::fold_key(y))
}
