//! [`Remote`]: the narrow view of the sync server the engine needs, so the engine runs
//! against the real HTTP client in the daemon and against [`crate::fake_remote::FakeRemote`]
//! (same compare-and-swap rules, failure injection) in tests.
//!
//! Arguments are owned so the boxed futures carry no borrows; errors are classified once
//! here into the few cases the engine branches on.

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use savesync_client::{BulkItem, Client, ClientError, EventItem};
use savesync_core::wire::{
    ChangesPage, History, ManifestEntry, NegotiateResponse, SaveList, SaveMeta, SessionReport,
};
use savesync_core::{ErrorCode, Rev, SavePath, Seq, Version};
use std::path::PathBuf;
use std::time::Duration;

/// Result of a remote call.
pub type RemoteResult<T> = Result<T, RemoteError>;

/// Why a remote call failed, in the terms the engine acts on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteError {
    /// The server could not be reached: work offline, retry later.
    #[error("server unreachable: {0}")]
    Offline(String),
    /// Compare-and-swap lost; carries the current head (None: no save at all).
    #[error("conflict with the server head")]
    Conflict(Option<Box<SaveMeta>>),
    /// No such save or revision.
    #[error("not found on the server")]
    NotFound,
    /// The server answered but failed (5xx, timeout): retry later.
    #[error("transient server failure: {0}")]
    Transient(String),
    /// A refusal that retrying will not fix (bad path, revoked device ...).
    #[error("server refused: {0}")]
    Refused(String),
    /// The path adds a name that differs only in case from the existing save `existing`
    /// (`409 name_collision`). Not retryable as such: the engine retries only once it has
    /// removed `existing` itself (a case-only rename), and reports a refusal otherwise.
    #[error("server refused: {message}")]
    NameCollision { existing: Option<SavePath>, message: String },
}

/// One item of the server's event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedItem {
    /// The user's feed is at this cursor.
    Cursor(Seq),
    /// A keep-alive arrived: the stream is idle but alive.
    Alive,
}

impl RemoteError {
    /// True when a later retry can succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, RemoteError::Offline(_) | RemoteError::Transient(_))
    }
}

impl From<ClientError> for RemoteError {
    fn from(e: ClientError) -> RemoteError {
        if let Some(head) = e.conflict_head() {
            return RemoteError::Conflict(Some(Box::new(head.clone())));
        }
        if e.code() == Some(ErrorCode::NameCollision) {
            let existing = e.name_collision_with().map(|h| h.path.clone());
            return RemoteError::NameCollision { existing, message: e.to_string() };
        }
        match e.code() {
            Some(ErrorCode::Conflict) => return RemoteError::Conflict(None),
            Some(ErrorCode::NotFound) => return RemoteError::NotFound,
            _ => {}
        }
        if e.is_offline() {
            RemoteError::Offline(e.to_string())
        } else if matches!(
            e,
            ClientError::Io { .. } | ClientError::HashMismatch { .. } | ClientError::Decode(_)
        ) {
            // A local file could not be read or written (disk full, ...), or the bytes or
            // answer got mangled on the way: a later try can succeed, and the server never
            // refused anything.
            RemoteError::Transient(e.to_string())
        } else if e.is_transient() || e.code() == Some(ErrorCode::HashMismatch) {
            // A hash mismatch on upload means the file changed while it was sent: retry.
            RemoteError::Transient(e.to_string())
        } else {
            RemoteError::Refused(e.to_string())
        }
    }
}

/// What a download wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    pub version: Version,
    pub size: u64,
}

/// The server operations the mount uses.
pub trait Remote: Send + Sync + std::fmt::Debug + 'static {
    /// Every live save and the cursor the listing reflects.
    fn list(&self) -> BoxFuture<'_, RemoteResult<SaveList>>;
    /// Download the head (or `rev`) of `path` atomically into `dest` (hash verified).
    fn download_to_file(
        &self,
        path: SavePath,
        rev: Option<Rev>,
        dest: PathBuf,
    ) -> BoxFuture<'_, RemoteResult<Fetched>>;
    /// Upload conditional on `base` being the head.
    fn upload(
        &self,
        path: SavePath,
        base: Rev,
        bytes: Bytes,
    ) -> BoxFuture<'_, RemoteResult<SaveMeta>>;
    /// Upload a (large) file by streaming it, conditional on `base` being the head. The
    /// server refuses it (transient) if the file changed while it was sent.
    fn upload_file(
        &self,
        path: SavePath,
        base: Rev,
        file: PathBuf,
    ) -> BoxFuture<'_, RemoteResult<SaveMeta>>;
    /// Commit a tombstone conditional on `base` being the head.
    fn delete(&self, path: SavePath, base: Rev) -> BoxFuture<'_, RemoteResult<SaveMeta>>;
    /// Commits after `since` (no waiting).
    fn changes(&self, since: Seq, limit: u32) -> BoxFuture<'_, RemoteResult<ChangesPage>>;
    /// The server's "cursor advanced" stream, with keep-alives; ends or errs when the
    /// connection drops or nothing at all arrived for `silence`.
    fn events(
        &self,
        silence: Duration,
    ) -> BoxFuture<'_, RemoteResult<BoxStream<'static, RemoteResult<FeedItem>>>>;
    /// Cheap reachability check (one small GET, no disk I/O on either side).
    fn probe(&self) -> BoxFuture<'_, RemoteResult<()>>;
    /// Report what became of the plan of negotiate session `id`.
    fn complete_session(&self, id: i64, report: SessionReport) -> BoxFuture<'_, RemoteResult<()>>;
    /// Decide every manifest entry (plus server-only saves) on the server.
    fn negotiate(
        &self,
        entries: Vec<ManifestEntry>,
    ) -> BoxFuture<'_, RemoteResult<NegotiateResponse>>;
    /// Every version the server keeps of `path`, newest first (the mount's `.history`).
    fn history(&self, path: SavePath) -> BoxFuture<'_, RemoteResult<History>>;
    /// Download history entry `version_id` of `path` (a commit or a conflict version) into
    /// `dest` (hash verified).
    fn download_version_to_file(
        &self,
        path: SavePath,
        version_id: i64,
        dest: PathBuf,
    ) -> BoxFuture<'_, RemoteResult<Fetched>>;
    /// The heads of `paths` (at most `MAX_BULK_PATHS`) in one stream, each hash verified
    /// and at most `max_save_bytes` (bigger ones come as `TooLarge`). A remote without it
    /// refuses, and the engine downloads one by one.
    fn bulk_download(
        &self,
        _paths: Vec<SavePath>,
        _max_save_bytes: u64,
    ) -> BoxFuture<'_, RemoteResult<BoxStream<'static, RemoteResult<BulkItem>>>> {
        Box::pin(async { Err(RemoteError::Refused("no bulk download here".into())) })
    }
}

/// [`Remote`] over the real HTTP client.
#[derive(Debug, Clone)]
pub struct ClientRemote {
    client: Client,
    /// The same client with a short deadline and no retries, for [`Remote::probe`].
    prober: Client,
}

/// Deadline of one reachability probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

impl ClientRemote {
    /// Wrap a client. Retries are the engine's job (its queue backs off and survives
    /// restarts), so the client only retries briefly.
    #[must_use]
    pub fn new(client: Client) -> ClientRemote {
        let policy = savesync_client::RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            max_elapsed: Duration::from_secs(2),
        };
        let prober = client
            .clone()
            .with_retry(savesync_client::RetryPolicy::none())
            .with_timeout(PROBE_TIMEOUT);
        ClientRemote {
            client: client.with_retry(policy).with_timeout(Duration::from_secs(60)),
            prober,
        }
    }
}

impl Remote for ClientRemote {
    fn list(&self) -> BoxFuture<'_, RemoteResult<SaveList>> {
        Box::pin(async move { Ok(self.client.list(None, true).await?) })
    }

    fn download_to_file(
        &self,
        path: SavePath,
        rev: Option<Rev>,
        dest: PathBuf,
    ) -> BoxFuture<'_, RemoteResult<Fetched>> {
        Box::pin(async move {
            let got = self.client.download_to_file(&path, rev, &dest).await?;
            Ok(Fetched { version: got.version, size: got.size })
        })
    }

    fn upload(
        &self,
        path: SavePath,
        base: Rev,
        bytes: Bytes,
    ) -> BoxFuture<'_, RemoteResult<SaveMeta>> {
        Box::pin(async move { Ok(self.client.upload(&path, base, bytes).await?) })
    }

    fn upload_file(
        &self,
        path: SavePath,
        base: Rev,
        file: PathBuf,
    ) -> BoxFuture<'_, RemoteResult<SaveMeta>> {
        Box::pin(async move { Ok(self.client.upload_file(&path, base, &file).await?) })
    }

    fn delete(&self, path: SavePath, base: Rev) -> BoxFuture<'_, RemoteResult<SaveMeta>> {
        Box::pin(async move { Ok(self.client.delete(&path, base).await?) })
    }

    fn changes(&self, since: Seq, limit: u32) -> BoxFuture<'_, RemoteResult<ChangesPage>> {
        Box::pin(async move { Ok(self.client.changes(since, Duration::ZERO, Some(limit)).await?) })
    }

    fn events(
        &self,
        silence: Duration,
    ) -> BoxFuture<'_, RemoteResult<BoxStream<'static, RemoteResult<FeedItem>>>> {
        Box::pin(async move {
            let stream = self.client.event_items(silence).await?;
            Ok(stream
                .map(|item| match item {
                    Ok(EventItem::Cursor(e)) => Ok(FeedItem::Cursor(e.cursor)),
                    Ok(EventItem::KeepAlive) => Ok(FeedItem::Alive),
                    Err(e) => Err(RemoteError::from(e)),
                })
                .boxed())
        })
    }

    fn probe(&self) -> BoxFuture<'_, RemoteResult<()>> {
        Box::pin(async move {
            self.prober.health().await?;
            Ok(())
        })
    }

    fn complete_session(&self, id: i64, report: SessionReport) -> BoxFuture<'_, RemoteResult<()>> {
        Box::pin(async move { Ok(self.client.complete_session(id, report).await?) })
    }

    fn negotiate(
        &self,
        entries: Vec<ManifestEntry>,
    ) -> BoxFuture<'_, RemoteResult<NegotiateResponse>> {
        Box::pin(async move { Ok(self.client.negotiate(entries).await?) })
    }

    fn history(&self, path: SavePath) -> BoxFuture<'_, RemoteResult<History>> {
        Box::pin(async move { Ok(self.client.history(&path).await?) })
    }

    fn download_version_to_file(
        &self,
        path: SavePath,
        version_id: i64,
        dest: PathBuf,
    ) -> BoxFuture<'_, RemoteResult<Fetched>> {
        Box::pin(async move {
            // Whole in memory (the server sends a history entry in one piece); saves are small.
            let got = self.client.download_version(&path, version_id).await?;
            tokio::fs::write(&dest, &got.bytes)
                .await
                .map_err(|e| RemoteError::Transient(format!("writing {}: {e}", dest.display())))?;
            Ok(Fetched { version: got.version(), size: got.bytes.len() as u64 })
        })
    }

    fn bulk_download(
        &self,
        paths: Vec<SavePath>,
        max_save_bytes: u64,
    ) -> BoxFuture<'_, RemoteResult<BoxStream<'static, RemoteResult<BulkItem>>>> {
        Box::pin(async move {
            let items = self.client.bulk_download(&paths, max_save_bytes).await?;
            Ok(items.map(|item| item.map_err(RemoteError::from)).boxed())
        })
    }
}

/// A [`Remote`] that is never reachable: used when the CLI works on the local state only
/// (resolving a conflict while not mounted).
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineRemote;

fn offline<T>() -> RemoteResult<T> {
    Err(RemoteError::Offline("working offline".into()))
}

impl Remote for OfflineRemote {
    fn list(&self) -> BoxFuture<'_, RemoteResult<SaveList>> {
        Box::pin(async { offline() })
    }

    fn download_to_file(
        &self,
        _path: SavePath,
        _rev: Option<Rev>,
        _dest: PathBuf,
    ) -> BoxFuture<'_, RemoteResult<Fetched>> {
        Box::pin(async { offline() })
    }

    fn upload(
        &self,
        _path: SavePath,
        _base: Rev,
        _bytes: Bytes,
    ) -> BoxFuture<'_, RemoteResult<SaveMeta>> {
        Box::pin(async { offline() })
    }

    fn upload_file(
        &self,
        _path: SavePath,
        _base: Rev,
        _file: PathBuf,
    ) -> BoxFuture<'_, RemoteResult<SaveMeta>> {
        Box::pin(async { offline() })
    }

    fn delete(&self, _path: SavePath, _base: Rev) -> BoxFuture<'_, RemoteResult<SaveMeta>> {
        Box::pin(async { offline() })
    }

    fn changes(&self, _since: Seq, _limit: u32) -> BoxFuture<'_, RemoteResult<ChangesPage>> {
        Box::pin(async { offline() })
    }

    fn events(
        &self,
        _silence: Duration,
    ) -> BoxFuture<'_, RemoteResult<BoxStream<'static, RemoteResult<FeedItem>>>> {
        Box::pin(async { offline() })
    }

    fn probe(&self) -> BoxFuture<'_, RemoteResult<()>> {
        Box::pin(async { offline() })
    }

    fn complete_session(
        &self,
        _id: i64,
        _report: SessionReport,
    ) -> BoxFuture<'_, RemoteResult<()>> {
        Box::pin(async { offline() })
    }

    fn negotiate(
        &self,
        _entries: Vec<ManifestEntry>,
    ) -> BoxFuture<'_, RemoteResult<NegotiateResponse>> {
        Box::pin(async { offline() })
    }

    fn history(&self, _path: SavePath) -> BoxFuture<'_, RemoteResult<History>> {
        Box::pin(async { offline() })
    }

    fn download_version_to_file(
        &self,
        _path: SavePath,
        _version_id: i64,
        _dest: PathBuf,
    ) -> BoxFuture<'_, RemoteResult<Fetched>> {
        Box::pin(async { offline() })
    }
}
