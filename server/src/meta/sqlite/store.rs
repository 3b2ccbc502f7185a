//! [`SqliteMeta`]: the async [`MetaStore`] over the blocking [`SqliteDb`]. Each call takes
//! owned copies of its arguments and runs on tokio's blocking pool, so SQLite I/O never
//! holds an async worker. Outside a tokio runtime (the admin CLI) it runs inline.

use super::SqliteDb;
use crate::meta::{
    Actor, AdminDevice, CommitOutcome, CommitRequest, DeviceAuth, DeviceId, Head, MetaError,
    MetaStore, NewDavDevice, NewDevice, NewDeviceInfo, OpenConflict, Retention, SessionRecord,
    SessionStart, StoredBytes, StoredVersion, UserId, UserPassword, UserSummary, WebSession,
};
use savesync_core::wire::{AuditEntry, DeviceInfo, History, SaveMeta, SessionReport};
use savesync_core::{ContentHash, Rev, SavePath, Seq};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

/// The SQLite metadata store (WAL, `BEGIN IMMEDIATE` writes, `synchronous=FULL`, one
/// writer connection plus a reader pool: see [`SqliteDb`]).
#[derive(Debug, Clone)]
pub struct SqliteMeta {
    db: Arc<SqliteDb>,
}

impl SqliteMeta {
    /// Open (creating) the database at `path` and bring its schema up to date. Blocking.
    pub fn open(path: impl Into<PathBuf>) -> Result<SqliteMeta, MetaError> {
        Ok(SqliteMeta { db: Arc::new(SqliteDb::open(path)?) })
    }

    /// The blocking core, for callers that are on a blocking thread already.
    #[must_use]
    pub fn blocking(&self) -> &SqliteDb {
        &self.db
    }

    pub(super) async fn run<T, F>(&self, f: F) -> Result<T, MetaError>
    where
        T: Send + 'static,
        F: FnOnce(&SqliteDb) -> Result<T, MetaError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn_blocking(move || f(&db))
                .await
                .map_err(|e| MetaError::Unavailable(format!("blocking task failed: {e}")))?,
            Err(_) => f(&db),
        }
    }
}

#[async_trait::async_trait]
impl MetaStore for SqliteMeta {
    async fn ensure_user(&self, name: &str, now: i64) -> Result<UserId, MetaError> {
        let name = name.to_owned();
        self.run(move |db| db.ensure_user(&name, now)).await
    }

    async fn add_pairing_code(
        &self,
        user: UserId,
        code_hash: &str,
        expires_at: i64,
        by_device: Option<DeviceId>,
        now: i64,
    ) -> Result<(), MetaError> {
        let code_hash = code_hash.to_owned();
        self.run(move |db| db.add_pairing_code(user, &code_hash, expires_at, by_device, now)).await
    }

    async fn redeem_pairing_code(
        &self,
        code_hash: &str,
        device: &NewDeviceInfo<'_>,
        token_hash: &str,
        max_wrong_guesses: u32,
        now: i64,
    ) -> Result<NewDevice, MetaError> {
        let (code_hash, token_hash) = (code_hash.to_owned(), token_hash.to_owned());
        let (name, kind) = (device.name.to_owned(), device.kind.to_owned());
        self.run(move |db| {
            let device = NewDeviceInfo { name: &name, kind: &kind };
            db.redeem_pairing_code(&code_hash, &device, &token_hash, max_wrong_guesses, now)
        })
        .await
    }

    async fn device_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<DeviceAuth>, MetaError> {
        let token_hash = token_hash.to_owned();
        self.run(move |db| db.device_by_token_hash(&token_hash)).await
    }

    async fn device_revoked(&self, device: DeviceId) -> Result<bool, MetaError> {
        self.run(move |db| db.device_revoked(device)).await
    }

    async fn touch_device(&self, device: DeviceId, now: i64) -> Result<(), MetaError> {
        self.run(move |db| db.touch_device(device, now)).await
    }

    async fn list_devices(&self, user: UserId) -> Result<Vec<DeviceInfo>, MetaError> {
        self.run(move |db| db.list_devices(user)).await
    }

    async fn revoke_device(
        &self,
        user: Option<UserId>,
        device: DeviceId,
        now: i64,
    ) -> Result<bool, MetaError> {
        self.run(move |db| db.revoke_device(user, device, now)).await
    }

    async fn admin_devices(&self, user_name: Option<&str>) -> Result<Vec<AdminDevice>, MetaError> {
        let user_name = user_name.map(str::to_owned);
        self.run(move |db| db.admin_devices(user_name.as_deref())).await
    }

    async fn admin_users(&self) -> Result<Vec<UserSummary>, MetaError> {
        self.run(SqliteDb::admin_users).await
    }

    async fn list_saves(
        &self,
        user: UserId,
        prefix: Option<&SavePath>,
        include_deleted: bool,
    ) -> Result<(Vec<SaveMeta>, Seq), MetaError> {
        let prefix = prefix.cloned();
        self.run(move |db| db.list_saves(user, prefix.as_ref(), include_deleted)).await
    }

    async fn head(&self, user: UserId, path: &SavePath) -> Result<Option<SaveMeta>, MetaError> {
        let path = path.clone();
        self.run(move |db| db.head(user, &path)).await
    }

    async fn committed_version(
        &self,
        user: UserId,
        path: &SavePath,
        rev: Option<Rev>,
    ) -> Result<Option<StoredVersion>, MetaError> {
        let path = path.clone();
        self.run(move |db| db.committed_version(user, &path, rev)).await
    }

    async fn commit(
        &self,
        request: &CommitRequest,
        retention: Retention,
    ) -> Result<CommitOutcome, MetaError> {
        let request = request.clone();
        self.run(move |db| db.commit(&request, retention)).await
    }

    async fn commit_with_md5(
        &self,
        request: &CommitRequest,
        retention: Retention,
        md5: Option<[u8; 16]>,
    ) -> Result<CommitOutcome, MetaError> {
        let request = request.clone();
        self.run(move |db| db.commit_with_md5(&request, retention, md5)).await
    }

    async fn version_by_id(
        &self,
        user: UserId,
        path: &SavePath,
        version_id: i64,
    ) -> Result<Option<StoredVersion>, MetaError> {
        let path = path.clone();
        self.run(move |db| db.version_by_id(user, &path, version_id)).await
    }

    async fn history(&self, user: UserId, path: &SavePath) -> Result<Option<History>, MetaError> {
        let path = path.clone();
        self.run(move |db| db.history(user, &path)).await
    }

    async fn record_synced(
        &self,
        actor: Actor,
        path: &SavePath,
        rev: Rev,
    ) -> Result<(), MetaError> {
        let path = path.clone();
        self.run(move |db| db.record_synced(actor, &path, rev)).await
    }

    async fn current_seq(&self, user: UserId) -> Result<Seq, MetaError> {
        self.run(move |db| db.current_seq(user)).await
    }

    async fn changes(
        &self,
        user: UserId,
        since: Seq,
        limit: u32,
    ) -> Result<(Vec<SaveMeta>, bool), MetaError> {
        self.run(move |db| db.changes(user, since, limit)).await
    }

    async fn all_heads(&self, user: UserId) -> Result<(Vec<Head>, Seq), MetaError> {
        self.run(move |db| db.all_heads(user)).await
    }

    async fn untracked(&self, device: DeviceId) -> Result<Vec<SavePath>, MetaError> {
        self.run(move |db| db.untracked(device)).await
    }

    async fn set_untracked(
        &self,
        actor: Actor,
        path: &SavePath,
        untracked: bool,
        now: i64,
    ) -> Result<(), MetaError> {
        let path = path.clone();
        self.run(move |db| db.set_untracked(actor, &path, untracked, now)).await
    }

    async fn start_session(&self, start: &SessionStart) -> Result<i64, MetaError> {
        let start = start.clone();
        self.run(move |db| db.start_session(&start)).await
    }

    async fn complete_session(
        &self,
        actor: Actor,
        session: i64,
        report: &SessionReport,
        now: i64,
    ) -> Result<bool, MetaError> {
        let report = *report;
        self.run(move |db| db.complete_session(actor, session, &report, now)).await
    }

    async fn audit(&self, user: UserId, limit: u32) -> Result<Vec<AuditEntry>, MetaError> {
        self.run(move |db| db.audit(user, limit)).await
    }

    async fn referenced_hashes(&self) -> Result<HashSet<ContentHash>, MetaError> {
        self.run(SqliteDb::referenced_hashes).await
    }

    async fn stored_bytes(
        &self,
        user: UserId,
        content: &ContentHash,
    ) -> Result<StoredBytes, MetaError> {
        let content = *content;
        self.run(move |db| db.stored_bytes(user, &content)).await
    }

    async fn sessions(&self, user: UserId) -> Result<Vec<SessionRecord>, MetaError> {
        self.run(move |db| db.sessions(user)).await
    }

    async fn prune_sessions(
        &self,
        completed_before: i64,
        open_before: i64,
    ) -> Result<u64, MetaError> {
        self.run(move |db| db.prune_sessions(completed_before, open_before)).await
    }

    async fn set_password(&self, user: UserId, phc: &str, now: i64) -> Result<(), MetaError> {
        let phc = phc.to_owned();
        self.run(move |db| db.set_password(user, &phc, now)).await
    }

    async fn user_password(&self, name: &str) -> Result<Option<UserPassword>, MetaError> {
        let name = name.to_owned();
        self.run(move |db| db.user_password(&name)).await
    }

    async fn add_login_link(
        &self,
        user: UserId,
        token_hash: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), MetaError> {
        let token_hash = token_hash.to_owned();
        self.run(move |db| db.add_login_link(user, &token_hash, expires_at, now)).await
    }

    async fn redeem_login_link(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<UserId>, MetaError> {
        let token_hash = token_hash.to_owned();
        self.run(move |db| db.redeem_login_link(&token_hash, now)).await
    }

    async fn add_web_session(
        &self,
        user: UserId,
        id_hash: &str,
        expires_at: i64,
        max_per_user: u32,
        now: i64,
    ) -> Result<(), MetaError> {
        let id_hash = id_hash.to_owned();
        self.run(move |db| db.add_web_session(user, &id_hash, expires_at, max_per_user, now)).await
    }

    async fn web_session(&self, id_hash: &str, now: i64) -> Result<Option<WebSession>, MetaError> {
        let id_hash = id_hash.to_owned();
        self.run(move |db| db.web_session(&id_hash, now)).await
    }

    async fn end_web_session(&self, id_hash: &str) -> Result<(), MetaError> {
        let id_hash = id_hash.to_owned();
        self.run(move |db| db.end_web_session(&id_hash)).await
    }

    async fn open_conflicts(
        &self,
        user: UserId,
        limit: u32,
    ) -> Result<Vec<OpenConflict>, MetaError> {
        self.run(move |db| db.open_conflicts(user, limit)).await
    }

    fn tables(&self) -> &dyn crate::meta::tables::TableAccess {
        self
    }

    fn remote_store(&self) -> &dyn crate::meta::remotes::RemoteStore {
        self
    }

    async fn ping(&self) -> Result<(), MetaError> {
        self.run(SqliteDb::ping).await
    }

    async fn create_dav_device(&self, device: &NewDavDevice<'_>) -> Result<NewDevice, MetaError> {
        let (user, name, kind) =
            (device.user.to_owned(), device.name.to_owned(), device.kind.to_owned());
        let (token_hash, prefix, now) =
            (device.token_hash.to_owned(), device.prefix.clone(), device.now);
        self.run(move |db| {
            db.create_dav_device(&NewDavDevice {
                user: &user,
                name: &name,
                kind: &kind,
                token_hash: &token_hash,
                prefix: &prefix,
                now,
            })
        })
        .await
    }

    async fn dav_root(&self, device: DeviceId) -> Result<Option<SavePath>, MetaError> {
        self.run(move |db| db.dav_root(device)).await
    }

    async fn last_synced_rev(
        &self,
        device: DeviceId,
        path: &SavePath,
    ) -> Result<Option<Rev>, MetaError> {
        let path = path.clone();
        self.run(move |db| db.last_synced_rev(device, &path)).await
    }

    async fn record_synced_many(
        &self,
        actor: Actor,
        entries: &[(SavePath, Rev)],
    ) -> Result<(), MetaError> {
        let entries = entries.to_vec();
        self.run(move |db| db.record_synced_many(actor, &entries)).await
    }

    async fn content_md5s(
        &self,
        hashes: &[ContentHash],
    ) -> Result<HashMap<ContentHash, [u8; 16]>, MetaError> {
        let hashes = hashes.to_vec();
        self.run(move |db| db.content_md5s(&hashes)).await
    }

    async fn record_content_md5(
        &self,
        hash: &ContentHash,
        md5: &[u8; 16],
    ) -> Result<(), MetaError> {
        let (hash, md5) = (*hash, *md5);
        self.run(move |db| db.record_content_md5(&hash, &md5)).await
    }

    async fn prune_content_md5(&self) -> Result<u64, MetaError> {
        self.run(SqliteDb::prune_content_md5).await
    }
}
