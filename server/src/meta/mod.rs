//! Metadata storage behind the narrow [`MetaStore`] trait: users, devices, pairing codes,
//! save heads, versions, per-device state, sync sessions and the audit log.
//!
//! The trait is async and backend-neutral: handlers await it directly, and an
//! implementation that does blocking I/O (SQLite) moves that work off the async workers
//! itself. Errors are [`MetaError`], never a driver's type. Every write that must be atomic (the
//! compare-and-swap of a commit, redeeming a pairing code) is ONE method, so a Postgres
//! implementation can give it one transaction without the handlers knowing.

pub mod database_url;
mod open;
pub mod postgres;
pub mod remotes;
pub mod sqlite;
pub mod tables;

pub use open::{open_from_config, pg_settings};

use crate::timestamps::rfc3339;
use savesync_core::wire::{AuditEntry, DeviceInfo, History, SaveMeta, SessionReport};
use savesync_core::{ContentHash, Rev, SavePath, Seq};

/// Database row ids.
pub type UserId = i64;
pub type DeviceId = i64;

/// Why a metadata operation failed. Backend-neutral: an implementation maps its own
/// errors into these (see `sqlite::errors`), so the HTTP layer never sees a driver type.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("pairing code is unknown, used or expired")]
    PairingCodeInvalid,
    /// The acting device was revoked (checked inside the write's transaction).
    #[error("the device has been revoked")]
    DeviceRevoked,
    /// A row the operation needs does not exist (where "absent" is not an `Option`).
    #[error("not found")]
    NotFound,
    /// A uniqueness or concurrency constraint refused the write; nothing was written.
    #[error("conflicting write: {0}")]
    Conflict(String),
    /// The volume or database is out of space; nothing was written.
    #[error("the metadata store is out of space")]
    StorageFull,
    /// The store is busy, locked or unreachable right now; retrying may succeed.
    #[error("the metadata store is unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// Any other failure of the backend (driver, I/O, migration).
    #[error("metadata backend: {0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

impl MetaError {
    /// Wrap any backend error.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> MetaError {
        MetaError::Backend(Box::new(e))
    }
}

/// The device a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuth {
    pub device_id: DeviceId,
    pub device_name: String,
    pub user_id: UserId,
    pub user_name: String,
    pub revoked: bool,
    /// The stored token hash, for the constant-time confirmation.
    pub token_hash: String,
}

/// The validated name and kind a pairing device gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewDeviceInfo<'a> {
    pub name: &'a str,
    pub kind: &'a str,
}

/// A WebDAV (RetroArch) device the admin creates directly: it has no pairing code to
/// redeem, since RetroArch can only be told a URL, a user name and a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewDavDevice<'a> {
    /// The owner (created if missing).
    pub user: &'a str,
    pub name: &'a str,
    pub kind: &'a str,
    pub token_hash: &'a str,
    /// The library folder its WebDAV root maps to.
    pub prefix: &'a SavePath,
    pub now: i64,
}

/// A device created by redeeming a pairing code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    pub device_id: DeviceId,
    pub user_name: String,
}

/// Who is committing, for attribution and per-device state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub user_id: UserId,
    pub device_id: Option<DeviceId>,
}

/// What a commit writes: new content, or a tombstone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewContent {
    Bytes { hash: ContentHash, size: u64 },
    Tombstone,
}

impl NewContent {
    /// The head hash this content would produce.
    #[must_use]
    pub fn hash(&self) -> Option<ContentHash> {
        match self {
            NewContent::Bytes { hash, .. } => Some(*hash),
            NewContent::Tombstone => None,
        }
    }
}

/// A compare-and-swap write on one save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRequest {
    pub actor: Actor,
    pub path: SavePath,
    /// The head revision the writer believes in (`Rev::NONE`: no save exists).
    pub base_rev: Rev,
    pub content: NewContent,
    /// Audit operation name: `upload`, `delete`, `restore`.
    pub operation: &'static str,
    pub now: i64,
}

/// How a compare-and-swap ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// A new head was committed.
    Committed(SaveMeta),
    /// The head already had this content: nothing written (idempotent retry).
    Unchanged(SaveMeta),
    /// `base_rev` is not the head. For uploads the bytes were kept as a conflict version.
    Conflict(Option<SaveMeta>),
    /// Delete or restore of a save that does not exist.
    NotFound,
    /// The path adds a name that case-folds onto the name (or a directory) of this existing
    /// live save, whose head this is: refused, nothing written.
    NameCollision(SaveMeta),
}

/// One stored version's content, for download and restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredVersion {
    pub rev: Rev,
    pub hash: Option<ContentHash>,
    pub size: u64,
}

/// A save's head as negotiate plans with it: its wire form ([`SaveMeta`], through `Deref`)
/// with the commit time still Unix seconds. A plan formats it (RFC 3339) only for the heads
/// its actions carry; for every head read, that formatting cost negotiate 1.4 ms per
/// 10,000 saves in a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The head with `committed_at` left empty until [`Head::into_wire`].
    meta: SaveMeta,
    /// Unix seconds.
    committed_at: i64,
}

impl Head {
    /// `meta` (whose `committed_at` is ignored) committed at `committed_at`, Unix seconds.
    #[must_use]
    pub fn new(meta: SaveMeta, committed_at: i64) -> Head {
        Head { meta: SaveMeta { committed_at: String::new(), ..meta }, committed_at }
    }

    /// The wire form, with the commit time as RFC 3339.
    #[must_use]
    pub fn into_wire(self) -> SaveMeta {
        SaveMeta { committed_at: rfc3339(self.committed_at), ..self.meta }
    }
}

impl std::ops::Deref for Head {
    type Target = SaveMeta;

    fn deref(&self) -> &SaveMeta {
        &self.meta
    }
}

/// A sync session being opened by negotiate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStart {
    pub actor: Actor,
    pub manifest_entries: u64,
    pub planned_actions: u64,
    pub cursor: Seq,
    pub now: i64,
}

/// What a user stores, for the byte quota: each distinct content counted once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoredBytes {
    /// Bytes of the distinct contents of the user's versions (heads, history, conflicts).
    pub used: u64,
    /// Whether the content asked about is already among them (storing it again is free).
    pub has_content: bool,
    /// How many version rows the user has (every commit and conflict version).
    pub versions: u64,
}

/// A stored sync session (for pruning checks and the admin view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: i64,
    pub device_id: Option<DeviceId>,
    pub started_at: i64,
    pub manifest_entries: u64,
    pub planned_actions: u64,
    /// Set once the device reported (with the counts it reported).
    pub completed: Option<(i64, SessionReport)>,
}

/// A device row with its owner, for the admin CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminDevice {
    pub user_name: String,
    pub info: DeviceInfo,
}

/// A user row for the admin CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub name: String,
    pub devices: u64,
    pub saves: u64,
    pub seq: Seq,
}

/// Retention settings as the store applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub keep_versions: u32,
    pub keep_seconds: i64,
    /// Most `conflict` versions kept per save (see `sqlite::conflict_versions`).
    pub max_conflict_versions: u32,
}

/// A signed-in dashboard session (`web_sessions`), found by the hash of its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    /// The stored hash, for the caller's constant-time confirmation.
    pub id_hash: String,
    pub user_id: UserId,
    pub user_name: String,
    pub expires_at: i64,
}

/// A user's stored password, for the dashboard login.
#[derive(Clone, PartialEq, Eq)]
pub struct UserPassword {
    pub user_id: UserId,
    /// The argon2 PHC string (`$argon2id$...`); `None` when no password was ever set.
    pub phc: Option<String>,
}

impl std::fmt::Debug for UserPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserPassword")
            .field("user_id", &self.user_id)
            .field("phc", &self.phc.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// One open conflict version of a save, with the head it competes with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenConflict {
    pub path: SavePath,
    pub version: savesync_core::wire::HistoryEntry,
    /// The save's head now (`None` when the save never committed).
    pub head: Option<SaveMeta>,
}

/// The metadata store. See the module docs for the threading contract.
#[async_trait::async_trait]
pub trait MetaStore: Send + Sync + std::fmt::Debug {
    // --- users, pairing, devices ---
    /// Create the user if missing.
    async fn ensure_user(&self, name: &str, now: i64) -> Result<UserId, MetaError>;
    /// Store a pairing code hash for `user` until `expires_at`. Fails with `DeviceRevoked`
    /// when `by_device` is revoked.
    async fn add_pairing_code(
        &self,
        user: UserId,
        code_hash: &str,
        expires_at: i64,
        by_device: Option<DeviceId>,
        now: i64,
    ) -> Result<(), MetaError>;
    /// Atomically use up a pairing code and create the device holding `token_hash`.
    ///
    /// A code is refused once `max_wrong_guesses` wrong codes were presented (anywhere on
    /// the server) during its life, and when the device that minted it was revoked. A
    /// refused attempt counts as a wrong guess against every live code, and that count is
    /// committed even though the call fails with `PairingCodeInvalid`.
    async fn redeem_pairing_code(
        &self,
        code_hash: &str,
        device: &NewDeviceInfo<'_>,
        token_hash: &str,
        max_wrong_guesses: u32,
        now: i64,
    ) -> Result<NewDevice, MetaError>;
    async fn device_by_token_hash(&self, token_hash: &str)
    -> Result<Option<DeviceAuth>, MetaError>;
    /// True when `device` is revoked or no longer exists.
    async fn device_revoked(&self, device: DeviceId) -> Result<bool, MetaError>;
    async fn touch_device(&self, device: DeviceId, now: i64) -> Result<(), MetaError>;
    async fn list_devices(&self, user: UserId) -> Result<Vec<DeviceInfo>, MetaError>;
    /// Revoke a device of `user` (`None`: any user, for the admin CLI) and drop the unused
    /// pairing codes it minted. False if no such device.
    async fn revoke_device(
        &self,
        user: Option<UserId>,
        device: DeviceId,
        now: i64,
    ) -> Result<bool, MetaError>;
    async fn admin_devices(&self, user_name: Option<&str>) -> Result<Vec<AdminDevice>, MetaError>;
    async fn admin_users(&self) -> Result<Vec<UserSummary>, MetaError>;

    // --- saves ---
    /// Live (and optionally deleted) heads at or below `prefix`, sorted by path, with the
    /// user's current cursor read in the same snapshot.
    async fn list_saves(
        &self,
        user: UserId,
        prefix: Option<&SavePath>,
        include_deleted: bool,
    ) -> Result<(Vec<SaveMeta>, Seq), MetaError>;
    async fn head(&self, user: UserId, path: &SavePath) -> Result<Option<SaveMeta>, MetaError>;
    /// The committed version at `rev` (or the head) if still retained.
    async fn committed_version(
        &self,
        user: UserId,
        path: &SavePath,
        rev: Option<Rev>,
    ) -> Result<Option<StoredVersion>, MetaError>;
    /// The compare-and-swap. See [`CommitOutcome`].
    async fn commit(
        &self,
        request: &CommitRequest,
        retention: Retention,
    ) -> Result<CommitOutcome, MetaError>;
    /// The content of history entry `version_id` of this save.
    async fn version_by_id(
        &self,
        user: UserId,
        path: &SavePath,
        version_id: i64,
    ) -> Result<Option<StoredVersion>, MetaError>;
    /// `None` when the save has neither a head nor any version.
    async fn history(&self, user: UserId, path: &SavePath) -> Result<Option<History>, MetaError>;
    /// Remember that `device` now has `rev` of this save (after a download).
    async fn record_synced(&self, actor: Actor, path: &SavePath, rev: Rev)
    -> Result<(), MetaError>;

    // --- feed ---
    async fn current_seq(&self, user: UserId) -> Result<Seq, MetaError>;
    /// Commits after `since`, oldest first, at most `limit` (+ whether more exist).
    async fn changes(
        &self,
        user: UserId,
        since: Seq,
        limit: u32,
    ) -> Result<(Vec<SaveMeta>, bool), MetaError>;
    /// Every head of the user (including tombstones) and the cursor, in one snapshot.
    async fn all_heads(&self, user: UserId) -> Result<(Vec<Head>, Seq), MetaError>;

    // --- per-device state ---
    async fn untracked(&self, device: DeviceId) -> Result<Vec<SavePath>, MetaError>;
    async fn set_untracked(
        &self,
        actor: Actor,
        path: &SavePath,
        untracked: bool,
        now: i64,
    ) -> Result<(), MetaError>;

    // --- sessions and audit ---
    async fn start_session(&self, start: &SessionStart) -> Result<i64, MetaError>;
    /// Record the device's report and the completion time. The first report wins: a
    /// repeated one (a retry) changes nothing and is still `true`. False when the session
    /// is not one this device of this user opened.
    async fn complete_session(
        &self,
        actor: Actor,
        session: i64,
        report: &SessionReport,
        now: i64,
    ) -> Result<bool, MetaError>;
    async fn audit(&self, user: UserId, limit: u32) -> Result<Vec<AuditEntry>, MetaError>;

    // --- retention ---
    /// Every blob hash any version still references.
    async fn referenced_hashes(&self) -> Result<std::collections::HashSet<ContentHash>, MetaError>;

    // --- quota ---
    /// The user's stored bytes, and whether `content` is already stored for them.
    async fn stored_bytes(
        &self,
        user: UserId,
        content: &ContentHash,
    ) -> Result<StoredBytes, MetaError>;

    // --- session retention ---
    /// The user's sync sessions, oldest first.
    async fn sessions(&self, user: UserId) -> Result<Vec<SessionRecord>, MetaError>;
    /// Delete sessions completed before `completed_before` and sessions never completed
    /// that started before `open_before`; returns how many went.
    async fn prune_sessions(
        &self,
        completed_before: i64,
        open_before: i64,
    ) -> Result<u64, MetaError>;

    // --- web dashboard (see `crate::web`) ---
    /// Store `phc` as `user`'s dashboard password (replacing any), and end the user's
    /// dashboard sessions. Creates nothing: the user must exist.
    async fn set_password(&self, user: UserId, phc: &str, now: i64) -> Result<(), MetaError>;
    /// The user named `name` and their password, if the user exists.
    async fn user_password(&self, name: &str) -> Result<Option<UserPassword>, MetaError>;
    /// Store a login link's token hash for `user` until `expires_at`; expired and used
    /// links of every user are dropped on the way.
    async fn add_login_link(
        &self,
        user: UserId,
        token_hash: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), MetaError>;
    /// Atomically use up an unexpired, unused login link: its user, or `None`.
    async fn redeem_login_link(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<UserId>, MetaError>;
    /// Store a new dashboard session; expired sessions are dropped on the way, and the
    /// user keeps at most `max_per_user` sessions (the oldest go first).
    async fn add_web_session(
        &self,
        user: UserId,
        id_hash: &str,
        expires_at: i64,
        max_per_user: u32,
        now: i64,
    ) -> Result<(), MetaError>;
    /// The unexpired session with this id hash.
    async fn web_session(&self, id_hash: &str, now: i64) -> Result<Option<WebSession>, MetaError>;
    /// End one session (logout). Ending an unknown session is not an error.
    async fn end_web_session(&self, id_hash: &str) -> Result<(), MetaError>;
    /// The user's open conflict versions (see `sqlite::conflict_versions::OPEN`), newest
    /// first, at most `limit`.
    async fn open_conflicts(
        &self,
        user: UserId,
        limit: u32,
    ) -> Result<Vec<OpenConflict>, MetaError>;

    // --- health ---
    /// A trivial query that proves the store answers (for `GET /health`). The default
    /// reads a counter that needs no row to exist.
    async fn ping(&self) -> Result<(), MetaError> {
        self.current_seq(0).await.map(drop)
    }

    // --- the WebDAV face (crate::dav) ---
    /// Create the user if missing, then the device with its WebDAV library root, atomically.
    async fn create_dav_device(&self, device: &NewDavDevice<'_>) -> Result<NewDevice, MetaError>;
    /// The library folder a WebDAV device is rooted at; `None` for any other device.
    async fn dav_root(&self, device: DeviceId) -> Result<Option<SavePath>, MetaError>;
    /// The rev of this save `device` last saw (downloaded, committed, or was shown in a
    /// WebDAV manifest), if any.
    async fn last_synced_rev(
        &self,
        device: DeviceId,
        path: &SavePath,
    ) -> Result<Option<Rev>, MetaError>;
    /// [`MetaStore::record_synced`] for many saves in one write.
    async fn record_synced_many(
        &self,
        actor: Actor,
        entries: &[(SavePath, Rev)],
    ) -> Result<(), MetaError>;
    /// The stored MD5s of these contents (absent ones are left out).
    async fn content_md5s(
        &self,
        hashes: &[ContentHash],
    ) -> Result<std::collections::HashMap<ContentHash, [u8; 16]>, MetaError>;
    /// Remember the MD5 of a content (a no-op when already known).
    async fn record_content_md5(&self, hash: &ContentHash, md5: &[u8; 16])
    -> Result<(), MetaError>;
    /// [`commit`](MetaStore::commit), remembering on the way the MD5 of the bytes it stores
    /// (as [`record_content_md5`](MetaStore::record_content_md5), best effort: failing to
    /// remember it never fails the commit). A store may do both in one transaction, so an
    /// upload waits for one durable write instead of two.
    async fn commit_with_md5(
        &self,
        request: &CommitRequest,
        retention: Retention,
        md5: Option<[u8; 16]>,
    ) -> Result<CommitOutcome, MetaError> {
        if let (Some(md5), NewContent::Bytes { hash, .. }) = (md5, request.content)
            && let Err(e) = self.record_content_md5(&hash, &md5).await
        {
            tracing::debug!(error = %e, "could not record the content's MD5");
        }
        self.commit(request, retention).await
    }
    /// Forget the MD5 of contents no version references; returns how many went.
    async fn prune_content_md5(&self) -> Result<u64, MetaError>;
    // --- SSH remotes ---
    /// The tables of SSH push-pull remotes (`remotes::RemoteStore`).
    fn remote_store(&self) -> &dyn remotes::RemoteStore;

    /// Raw table access, for moving an install between backends (`crate::transfer`).
    fn tables(&self) -> &dyn tables::TableAccess;
}
