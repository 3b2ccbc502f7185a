//! [`MetaStore`] for [`PgMetaStore`]: each method copies its arguments, runs on the
//! driver runtime (see `driver`), and does its work in one transaction (writes), one
//! snapshot (reads that must agree) or on one pooled connection (single reads).

use super::{
    PgMetaStore, accounts, activity, begin, begin_snapshot, commit, conn, dav, finish, quota,
    saves, web,
};
use crate::meta::{
    Actor, AdminDevice, CommitOutcome, CommitRequest, DeviceAuth, DeviceId, Head, MetaError,
    MetaStore, NewDavDevice, NewDevice, NewDeviceInfo, OpenConflict, Retention, SessionRecord,
    SessionStart, StoredBytes, StoredVersion, UserId, UserPassword, UserSummary, WebSession,
};
use savesync_core::wire::{AuditEntry, DeviceInfo, History, SaveMeta, SessionReport};
use savesync_core::{ContentHash, Rev, SavePath, Seq};
use sqlx::PgConnection;
use std::collections::{HashMap, HashSet};

/// Run `$body` (an expression awaiting on `$c: &mut PgConnection`) in one read-write
/// transaction on `$store`'s pool, committed when it returns `Ok`.
macro_rules! write {
    ($store:expr, |$c:ident| $body:expr) => {
        $store
            .run(|pool| async move {
                let mut tx = begin(&pool).await?;
                let out = {
                    let $c: &mut PgConnection = &mut tx;
                    $body.await?
                };
                finish(tx).await?;
                Ok(out)
            })
            .await
    };
}

/// Run `$body` on one pooled connection, outside any explicit transaction.
macro_rules! read {
    ($store:expr, |$c:ident| $body:expr) => {
        $store
            .run(|pool| async move {
                let mut pooled = conn(&pool).await?;
                let $c: &mut PgConnection = &mut pooled;
                $body.await
            })
            .await
    };
}

/// Run `$body` in one read-only REPEATABLE READ snapshot.
macro_rules! snapshot {
    ($store:expr, |$c:ident| $body:expr) => {
        $store
            .run(|pool| async move {
                let mut tx = begin_snapshot(&pool).await?;
                let out = {
                    let $c: &mut PgConnection = &mut tx;
                    $body.await?
                };
                finish(tx).await?;
                Ok(out)
            })
            .await
    };
}

#[async_trait::async_trait]
impl MetaStore for PgMetaStore {
    async fn ensure_user(&self, name: &str, now: i64) -> Result<UserId, MetaError> {
        let name = name.to_owned();
        write!(self, |c| accounts::ensure_user(c, &name, now))
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
        write!(self, |c| accounts::add_pairing_code(
            c, user, &code_hash, expires_at, by_device, now
        ))
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
        // A refusal is committed (it counts a wrong guess), then reported.
        let redeemed: Option<NewDevice> = write!(self, |c| async {
            let device = NewDeviceInfo { name: &name, kind: &kind };
            let attempt = accounts::Redeem {
                code_hash: &code_hash,
                device: &device,
                token_hash: &token_hash,
                max_wrong_guesses,
                now,
            };
            accounts::redeem_pairing_code(c, &attempt).await
        })?;
        redeemed.ok_or(MetaError::PairingCodeInvalid)
    }

    async fn device_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<DeviceAuth>, MetaError> {
        let token_hash = token_hash.to_owned();
        read!(self, |c| accounts::device_by_token_hash(c, &token_hash))
    }

    async fn device_revoked(&self, device: DeviceId) -> Result<bool, MetaError> {
        read!(self, |c| accounts::device_revoked(c, device))
    }

    async fn touch_device(&self, device: DeviceId, now: i64) -> Result<(), MetaError> {
        read!(self, |c| accounts::touch_device(c, device, now))
    }

    async fn list_devices(&self, user: UserId) -> Result<Vec<DeviceInfo>, MetaError> {
        read!(self, |c| accounts::list_devices(c, user))
    }

    async fn revoke_device(
        &self,
        user: Option<UserId>,
        device: DeviceId,
        now: i64,
    ) -> Result<bool, MetaError> {
        write!(self, |c| accounts::revoke_device(c, user, device, now))
    }

    async fn admin_devices(&self, user_name: Option<&str>) -> Result<Vec<AdminDevice>, MetaError> {
        let user_name = user_name.map(str::to_owned);
        read!(self, |c| accounts::admin_devices(c, user_name.as_deref()))
    }

    async fn admin_users(&self) -> Result<Vec<UserSummary>, MetaError> {
        read!(self, |c| accounts::admin_users(c))
    }

    async fn list_saves(
        &self,
        user: UserId,
        prefix: Option<&SavePath>,
        include_deleted: bool,
    ) -> Result<(Vec<SaveMeta>, Seq), MetaError> {
        let prefix = prefix.cloned();
        snapshot!(self, |c| async {
            let saves = saves::list(c, user, prefix.as_ref(), include_deleted).await?;
            Ok::<_, MetaError>((saves, saves::current_seq(c, user).await?))
        })
    }

    async fn head(&self, user: UserId, path: &SavePath) -> Result<Option<SaveMeta>, MetaError> {
        let path = path.clone();
        read!(self, |c| saves::head(c, user, &path))
    }

    async fn committed_version(
        &self,
        user: UserId,
        path: &SavePath,
        rev: Option<Rev>,
    ) -> Result<Option<StoredVersion>, MetaError> {
        let path = path.clone();
        read!(self, |c| saves::committed_version(c, user, &path, rev))
    }

    async fn commit(
        &self,
        request: &CommitRequest,
        retention: Retention,
    ) -> Result<CommitOutcome, MetaError> {
        let request = request.clone();
        write!(self, |c| commit::commit(c, &request, retention))
    }

    async fn version_by_id(
        &self,
        user: UserId,
        path: &SavePath,
        version_id: i64,
    ) -> Result<Option<StoredVersion>, MetaError> {
        let path = path.clone();
        read!(self, |c| saves::version_by_id(c, user, &path, version_id))
    }

    async fn history(&self, user: UserId, path: &SavePath) -> Result<Option<History>, MetaError> {
        let path = path.clone();
        snapshot!(self, |c| saves::history(c, user, &path))
    }

    async fn record_synced(
        &self,
        actor: Actor,
        path: &SavePath,
        rev: Rev,
    ) -> Result<(), MetaError> {
        let path = path.clone();
        read!(self, |c| activity::record_synced(c, actor, &path, rev))
    }

    async fn current_seq(&self, user: UserId) -> Result<Seq, MetaError> {
        read!(self, |c| saves::current_seq(c, user))
    }

    async fn changes(
        &self,
        user: UserId,
        since: Seq,
        limit: u32,
    ) -> Result<(Vec<SaveMeta>, bool), MetaError> {
        read!(self, |c| saves::changes(c, user, since, limit))
    }

    async fn all_heads(&self, user: UserId) -> Result<(Vec<Head>, Seq), MetaError> {
        snapshot!(self, |c| async {
            let heads = saves::all_heads(c, user).await?;
            Ok::<_, MetaError>((heads, saves::current_seq(c, user).await?))
        })
    }

    async fn untracked(&self, device: DeviceId) -> Result<Vec<SavePath>, MetaError> {
        read!(self, |c| activity::untracked(c, device))
    }

    async fn set_untracked(
        &self,
        actor: Actor,
        path: &SavePath,
        untracked: bool,
        now: i64,
    ) -> Result<(), MetaError> {
        let path = path.clone();
        write!(self, |c| activity::set_untracked(c, actor, &path, untracked, now))
    }

    async fn start_session(&self, start: &SessionStart) -> Result<i64, MetaError> {
        let start = start.clone();
        write!(self, |c| activity::start_session(c, &start))
    }

    async fn complete_session(
        &self,
        actor: Actor,
        session: i64,
        report: &SessionReport,
        now: i64,
    ) -> Result<bool, MetaError> {
        let report = *report;
        write!(self, |c| activity::complete_session(c, actor, session, &report, now))
    }

    async fn audit(&self, user: UserId, limit: u32) -> Result<Vec<AuditEntry>, MetaError> {
        read!(self, |c| activity::audit(c, user, limit))
    }

    async fn referenced_hashes(&self) -> Result<HashSet<ContentHash>, MetaError> {
        read!(self, |c| saves::referenced_hashes(c))
    }

    async fn stored_bytes(
        &self,
        user: UserId,
        content: &ContentHash,
    ) -> Result<StoredBytes, MetaError> {
        let content = *content;
        read!(self, |c| quota::stored_bytes(c, user, &content))
    }

    async fn sessions(&self, user: UserId) -> Result<Vec<SessionRecord>, MetaError> {
        read!(self, |c| activity::sessions(c, user))
    }

    async fn prune_sessions(
        &self,
        completed_before: i64,
        open_before: i64,
    ) -> Result<u64, MetaError> {
        read!(self, |c| activity::prune_sessions(c, completed_before, open_before))
    }

    async fn set_password(&self, user: UserId, phc: &str, now: i64) -> Result<(), MetaError> {
        let phc = phc.to_owned();
        write!(self, |c| web::set_password(c, user, &phc, now))
    }

    async fn user_password(&self, name: &str) -> Result<Option<UserPassword>, MetaError> {
        let name = name.to_owned();
        read!(self, |c| web::user_password(c, &name))
    }

    async fn add_login_link(
        &self,
        user: UserId,
        token_hash: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), MetaError> {
        let token_hash = token_hash.to_owned();
        write!(self, |c| web::add_login_link(c, user, &token_hash, expires_at, now))
    }

    async fn redeem_login_link(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<UserId>, MetaError> {
        let token_hash = token_hash.to_owned();
        read!(self, |c| web::redeem_login_link(c, &token_hash, now))
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
        write!(self, |c| web::add_web_session(c, user, &id_hash, expires_at, max_per_user, now))
    }

    async fn web_session(&self, id_hash: &str, now: i64) -> Result<Option<WebSession>, MetaError> {
        let id_hash = id_hash.to_owned();
        read!(self, |c| web::web_session(c, &id_hash, now))
    }

    async fn end_web_session(&self, id_hash: &str) -> Result<(), MetaError> {
        let id_hash = id_hash.to_owned();
        read!(self, |c| web::end_web_session(c, &id_hash))
    }

    async fn open_conflicts(
        &self,
        user: UserId,
        limit: u32,
    ) -> Result<Vec<OpenConflict>, MetaError> {
        snapshot!(self, |c| web::open_conflicts(c, user, limit))
    }

    fn tables(&self) -> &dyn crate::meta::tables::TableAccess {
        self
    }

    fn remote_store(&self) -> &dyn crate::meta::remotes::RemoteStore {
        self
    }

    /// Touches a real table, so a missing schema fails too, not just the connection.
    async fn ping(&self) -> Result<(), MetaError> {
        read!(self, |c| async {
            sqlx::query("SELECT 1 FROM users LIMIT 1").fetch_optional(c).await?;
            Ok(())
        })
    }

    async fn create_dav_device(&self, device: &NewDavDevice<'_>) -> Result<NewDevice, MetaError> {
        let (user, name, kind) =
            (device.user.to_owned(), device.name.to_owned(), device.kind.to_owned());
        let (token_hash, prefix, now) =
            (device.token_hash.to_owned(), device.prefix.clone(), device.now);
        write!(self, |c| async {
            let device = NewDavDevice {
                user: &user,
                name: &name,
                kind: &kind,
                token_hash: &token_hash,
                prefix: &prefix,
                now,
            };
            dav::create_dav_device(c, &device).await
        })
    }

    async fn dav_root(&self, device: DeviceId) -> Result<Option<SavePath>, MetaError> {
        read!(self, |c| dav::dav_root(c, device))
    }

    async fn last_synced_rev(
        &self,
        device: DeviceId,
        path: &SavePath,
    ) -> Result<Option<Rev>, MetaError> {
        let path = path.clone();
        read!(self, |c| dav::last_synced_rev(c, device, &path))
    }

    async fn record_synced_many(
        &self,
        actor: Actor,
        entries: &[(SavePath, Rev)],
    ) -> Result<(), MetaError> {
        let entries = entries.to_vec();
        write!(self, |c| dav::record_synced_many(c, actor, &entries))
    }

    async fn content_md5s(
        &self,
        hashes: &[ContentHash],
    ) -> Result<HashMap<ContentHash, [u8; 16]>, MetaError> {
        let hashes = hashes.to_vec();
        read!(self, |c| dav::content_md5s(c, &hashes))
    }

    async fn record_content_md5(
        &self,
        hash: &ContentHash,
        md5: &[u8; 16],
    ) -> Result<(), MetaError> {
        let (hash, md5) = (*hash, *md5);
        read!(self, |c| dav::record_content_md5(c, &hash, &md5))
    }

    async fn prune_content_md5(&self) -> Result<u64, MetaError> {
        read!(self, |c| dav::prune_content_md5(c))
    }
}
