//! [`SqliteDb`]: the blocking SQLite metadata store on one file in WAL mode; [`SqliteMeta`]
//! (in `store`) is the async [`MetaStore`](super::MetaStore) over it.
//!
//! Concurrency: one writer connection behind a mutex (SQLite allows one writer anyway, and
//! queueing in-process is cheaper than `SQLITE_BUSY` retries) plus a small pool of reader
//! connections, which WAL lets run alongside the writer. Other processes (the `pair` CLI
//! while `serve` runs) are covered by `busy_timeout`. Every write transaction is
//! `BEGIN IMMEDIATE`, so it takes the write lock up front instead of failing to upgrade a
//! read lock half way through a compare-and-swap. Writes that arrive together share one
//! transaction and one WAL fsync, each in its own savepoint (group commit, see
//! `group_commit`); none is acknowledged before that transaction is committed.

mod accounts;
mod activity;
mod commit;
pub(crate) mod conflict_versions;
mod dav;
mod errors;
mod group_commit;
mod names;
mod quota;
mod remotes;
mod rows;
mod saves;
mod schema;
mod store;
mod tables;
mod web;

pub use store::SqliteMeta;

use super::{
    Actor, AdminDevice, CommitOutcome, CommitRequest, DeviceAuth, DeviceId, Head, MetaError,
    NewDavDevice, NewDevice, NewDeviceInfo, OpenConflict, Retention, SessionRecord, SessionStart,
    StoredBytes, StoredVersion, UserId, UserPassword, UserSummary, WebSession,
};
use group_commit::GroupWriter;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use savesync_core::wire::{AuditEntry, DeviceInfo, History, SaveMeta, SessionReport};
use savesync_core::{ContentHash, Rev, SavePath, Seq};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Idle reader connections kept open; more are opened on demand under load.
const MAX_IDLE_READERS: usize = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements kept per connection: more than one commit uses (the default is 16).
const STATEMENT_CACHE: usize = 64;

/// The blocking core of the SQLite store: every method runs on the calling thread. Tests
/// and [`SqliteMeta`] (which moves each call onto a blocking thread) use it.
#[derive(Debug)]
pub struct SqliteDb {
    path: PathBuf,
    writer: GroupWriter,
    readers: Mutex<Vec<Connection>>,
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL, not NORMAL: a commit the server acknowledged becomes a device's base. If a power
    // loss rolled it back, the per-user Seq and per-save Rev would be handed out again for
    // different content, and devices could take two different saves for "the same" rev.
    // In WAL mode FULL costs one fsync of the log per commit, small next to the blob fsync.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Statement journals in memory. Each group-commit member runs in a savepoint, whose
    // journal past 64 KiB otherwise spills to a temp file that is created, written, and
    // deleted per write: 5% of the server's CPU per upload in a profile. They never need to
    // survive a crash; they only roll one member back inside the open transaction.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Plan each statement once (the query planner stability guarantee). Without it a cached
    // statement whose plan looked at a bound value (any `LIMIT ?`) is compiled again every
    // time it is bound: the retention prune did that on every commit, and the changes feed
    // on every page.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

impl SqliteDb {
    /// Open (creating) the database at `path` and bring its schema up to date.
    pub fn open(path: impl Into<PathBuf>) -> Result<SqliteDb, MetaError> {
        let path = path.into();
        let mut writer = Connection::open(&path)?;
        configure(&writer)?;
        schema::MIGRATIONS.to_latest(&mut writer)?;
        names::fill_missing_fold_keys(&writer)?;
        Ok(SqliteDb { path, writer: GroupWriter::new(writer), readers: Mutex::new(Vec::new()) })
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, MetaError>) -> Result<T, MetaError> {
        let pooled = self.readers.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                configure(&c)?;
                c
            }
        };
        let result = f(&conn);
        let mut idle = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        result
    }

    /// Run `f` in an IMMEDIATE transaction, possibly shared with writes that arrive at the
    /// same time (group commit, see `group_commit`): `f`'s changes are kept only if it
    /// returns `Ok`, and this returns only once they are committed.
    fn write<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        self.writer.write(f)
    }

    /// Run `f` in an IMMEDIATE transaction of its own (bulk imports).
    fn write_alone<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        self.writer.write_alone(f)
    }

    /// A read snapshot: several queries that must agree (heads and cursor).
    fn snapshot<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
    }
}

/// The synchronous operations, one per [`MetaStore`](super::MetaStore) method (see there for their contracts).
impl SqliteDb {
    pub fn ensure_user(&self, name: &str, now: i64) -> Result<UserId, MetaError> {
        self.write(|tx| accounts::ensure_user(tx, name, now))
    }

    pub fn add_pairing_code(
        &self,
        user: UserId,
        code_hash: &str,
        expires_at: i64,
        by_device: Option<DeviceId>,
        now: i64,
    ) -> Result<(), MetaError> {
        self.write(|tx| accounts::add_pairing_code(tx, user, code_hash, expires_at, by_device, now))
    }

    pub fn redeem_pairing_code(
        &self,
        code_hash: &str,
        device: &NewDeviceInfo<'_>,
        token_hash: &str,
        max_wrong_guesses: u32,
        now: i64,
    ) -> Result<NewDevice, MetaError> {
        // A refusal is committed (it counts a wrong guess), then reported.
        let redeem = accounts::Redeem { code_hash, device, token_hash, max_wrong_guesses, now };
        self.write(|tx| accounts::redeem_pairing_code(tx, &redeem))?
            .ok_or(MetaError::PairingCodeInvalid)
    }

    pub fn device_by_token_hash(&self, token_hash: &str) -> Result<Option<DeviceAuth>, MetaError> {
        self.read(|c| accounts::device_by_token_hash(c, token_hash))
    }

    pub fn device_revoked(&self, device: DeviceId) -> Result<bool, MetaError> {
        self.read(|c| accounts::device_revoked(c, device))
    }

    pub fn touch_device(&self, device: DeviceId, now: i64) -> Result<(), MetaError> {
        self.write(|tx| accounts::touch_device(tx, device, now))
    }

    pub fn list_devices(&self, user: UserId) -> Result<Vec<DeviceInfo>, MetaError> {
        self.read(|c| accounts::list_devices(c, user))
    }

    pub fn revoke_device(
        &self,
        user: Option<UserId>,
        device: DeviceId,
        now: i64,
    ) -> Result<bool, MetaError> {
        self.write(|tx| accounts::revoke_device(tx, user, device, now))
    }

    pub fn admin_devices(&self, user_name: Option<&str>) -> Result<Vec<AdminDevice>, MetaError> {
        self.read(|c| accounts::admin_devices(c, user_name))
    }

    pub fn admin_users(&self) -> Result<Vec<UserSummary>, MetaError> {
        self.read(accounts::admin_users)
    }

    pub fn list_saves(
        &self,
        user: UserId,
        prefix: Option<&SavePath>,
        include_deleted: bool,
    ) -> Result<(Vec<SaveMeta>, Seq), MetaError> {
        self.snapshot(|c| {
            let saves = saves::list(c, user, prefix, include_deleted)?;
            Ok((saves, saves::current_seq(c, user)?))
        })
    }

    pub fn head(&self, user: UserId, path: &SavePath) -> Result<Option<SaveMeta>, MetaError> {
        self.read(|c| saves::head(c, user, path))
    }

    pub fn committed_version(
        &self,
        user: UserId,
        path: &SavePath,
        rev: Option<Rev>,
    ) -> Result<Option<StoredVersion>, MetaError> {
        self.read(|c| saves::committed_version(c, user, path, rev))
    }

    pub fn commit(
        &self,
        request: &CommitRequest,
        retention: Retention,
    ) -> Result<CommitOutcome, MetaError> {
        self.write(|tx| commit::commit(tx, request, retention))
    }

    /// The MD5 row and the commit in one write (see `MetaStore::commit_with_md5`).
    pub fn commit_with_md5(
        &self,
        request: &CommitRequest,
        retention: Retention,
        md5: Option<[u8; 16]>,
    ) -> Result<CommitOutcome, MetaError> {
        self.write(|tx| {
            if let (Some(md5), super::NewContent::Bytes { hash, .. }) = (md5, request.content)
                && let Err(e) = dav::record_content_md5(tx, &hash, &md5)
            {
                if tx.is_autocommit() {
                    return Err(e); // SQLite rolled the transaction back: nothing to build on
                }
                tracing::debug!(error = %e, "could not record the content's MD5");
            }
            commit::commit(tx, request, retention)
        })
    }

    pub fn version_by_id(
        &self,
        user: UserId,
        path: &SavePath,
        version_id: i64,
    ) -> Result<Option<StoredVersion>, MetaError> {
        self.read(|c| saves::version_by_id(c, user, path, version_id))
    }

    pub fn history(&self, user: UserId, path: &SavePath) -> Result<Option<History>, MetaError> {
        self.read(|c| saves::history(c, user, path))
    }

    pub fn record_synced(&self, actor: Actor, path: &SavePath, rev: Rev) -> Result<(), MetaError> {
        self.write(|tx| activity::record_synced(tx, actor, path, rev))
    }

    pub fn current_seq(&self, user: UserId) -> Result<Seq, MetaError> {
        self.read(|c| saves::current_seq(c, user))
    }

    pub fn changes(
        &self,
        user: UserId,
        since: Seq,
        limit: u32,
    ) -> Result<(Vec<SaveMeta>, bool), MetaError> {
        self.read(|c| saves::changes(c, user, since, limit))
    }

    pub fn all_heads(&self, user: UserId) -> Result<(Vec<Head>, Seq), MetaError> {
        self.snapshot(|c| Ok((saves::all_heads(c, user)?, saves::current_seq(c, user)?)))
    }

    pub fn untracked(&self, device: DeviceId) -> Result<Vec<SavePath>, MetaError> {
        self.read(|c| activity::untracked(c, device))
    }

    pub fn set_untracked(
        &self,
        actor: Actor,
        path: &SavePath,
        untracked: bool,
        now: i64,
    ) -> Result<(), MetaError> {
        self.write(|tx| activity::set_untracked(tx, actor, path, untracked, now))
    }

    pub fn start_session(&self, start: &SessionStart) -> Result<i64, MetaError> {
        self.write(|tx| activity::start_session(tx, start))
    }

    pub fn complete_session(
        &self,
        actor: Actor,
        session: i64,
        report: &SessionReport,
        now: i64,
    ) -> Result<bool, MetaError> {
        self.write(|tx| activity::complete_session(tx, actor, session, report, now))
    }

    pub fn audit(&self, user: UserId, limit: u32) -> Result<Vec<AuditEntry>, MetaError> {
        self.read(|c| activity::audit(c, user, limit))
    }

    pub fn referenced_hashes(&self) -> Result<HashSet<ContentHash>, MetaError> {
        self.read(saves::referenced_hashes)
    }

    pub fn stored_bytes(
        &self,
        user: UserId,
        content: &ContentHash,
    ) -> Result<StoredBytes, MetaError> {
        self.read(|c| quota::stored_bytes(c, user, content))
    }

    pub fn sessions(&self, user: UserId) -> Result<Vec<SessionRecord>, MetaError> {
        self.read(|c| activity::sessions(c, user))
    }

    pub fn prune_sessions(
        &self,
        completed_before: i64,
        open_before: i64,
    ) -> Result<u64, MetaError> {
        self.write(|tx| activity::prune_sessions(tx, completed_before, open_before))
    }

    pub fn set_password(&self, user: UserId, phc: &str, now: i64) -> Result<(), MetaError> {
        self.write(|tx| web::set_password(tx, user, phc, now))
    }

    pub fn user_password(&self, name: &str) -> Result<Option<UserPassword>, MetaError> {
        self.read(|c| web::user_password(c, name))
    }

    pub fn add_login_link(
        &self,
        user: UserId,
        token_hash: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), MetaError> {
        self.write(|tx| web::add_login_link(tx, user, token_hash, expires_at, now))
    }

    pub fn redeem_login_link(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<UserId>, MetaError> {
        self.write(|tx| web::redeem_login_link(tx, token_hash, now))
    }

    pub fn add_web_session(
        &self,
        user: UserId,
        id_hash: &str,
        expires_at: i64,
        max_per_user: u32,
        now: i64,
    ) -> Result<(), MetaError> {
        self.write(|tx| web::add_web_session(tx, user, id_hash, expires_at, max_per_user, now))
    }

    pub fn web_session(&self, id_hash: &str, now: i64) -> Result<Option<WebSession>, MetaError> {
        self.read(|c| web::web_session(c, id_hash, now))
    }

    pub fn end_web_session(&self, id_hash: &str) -> Result<(), MetaError> {
        self.write(|tx| web::end_web_session(tx, id_hash))
    }

    pub fn open_conflicts(&self, user: UserId, limit: u32) -> Result<Vec<OpenConflict>, MetaError> {
        self.read(|c| web::open_conflicts(c, user, limit))
    }

    /// Touches a real table, so a missing or unreadable schema fails too, not just the
    /// connection.
    pub fn ping(&self) -> Result<(), MetaError> {
        self.read(|c| {
            c.query_row("SELECT count(*) FROM (SELECT 1 FROM users LIMIT 1)", [], |_| Ok(()))?;
            Ok(())
        })
    }
}

/// The WebDAV face's operations (see `dav.rs`).
impl SqliteDb {
    pub fn create_dav_device(&self, device: &NewDavDevice<'_>) -> Result<NewDevice, MetaError> {
        self.write(|tx| dav::create_dav_device(tx, device))
    }

    pub fn dav_root(&self, device: DeviceId) -> Result<Option<SavePath>, MetaError> {
        self.read(|c| dav::dav_root(c, device))
    }

    pub fn last_synced_rev(
        &self,
        device: DeviceId,
        path: &SavePath,
    ) -> Result<Option<Rev>, MetaError> {
        self.read(|c| dav::last_synced_rev(c, device, path))
    }

    pub fn record_synced_many(
        &self,
        actor: Actor,
        entries: &[(SavePath, Rev)],
    ) -> Result<(), MetaError> {
        self.write(|tx| dav::record_synced_many(tx, actor, entries))
    }

    pub fn content_md5s(
        &self,
        hashes: &[ContentHash],
    ) -> Result<HashMap<ContentHash, [u8; 16]>, MetaError> {
        self.read(|c| dav::content_md5s(c, hashes))
    }

    pub fn record_content_md5(&self, hash: &ContentHash, md5: &[u8; 16]) -> Result<(), MetaError> {
        self.write(|tx| dav::record_content_md5(tx, hash, md5))
    }

    pub fn prune_content_md5(&self) -> Result<u64, MetaError> {
        self.write(dav::prune_content_md5)
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, StatementStatus};

    /// How often SQLite compiled a cached `LIMIT ?` statement again over five bindings, on
    /// a connection set up by `configure` or left as opened.
    fn limit_statement_recompiles(configured: bool) -> i32 {
        const SQL: &str = "SELECT x FROM t ORDER BY x LIMIT ?1";
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("plans.db")).unwrap();
        if configured {
            super::configure(&conn).unwrap();
        }
        conn.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2), (3);")
            .unwrap();
        for limit in 1..=5_i64 {
            let mut stmt = conn.prepare_cached(SQL).unwrap();
            let rows = stmt.query_map([limit], |r| r.get::<_, i64>(0)).unwrap().count();
            assert_eq!(rows as i64, limit.min(3));
        }
        conn.prepare_cached(SQL).unwrap().get_status(StatementStatus::RePrepare)
    }

    /// The retention prune (`LIMIT ?5`) ran on every commit and was compiled again each time.
    #[test]
    fn a_cached_statement_with_a_bound_limit_is_planned_once() {
        assert!(limit_statement_recompiles(false) > 0, "the premise: each binding recompiles");
        assert_eq!(limit_statement_recompiles(true), 0);
    }

    /// Each group-commit member's savepoint journal stays in memory (2 = MEMORY): spilled,
    /// it was a temp file created and deleted per upload.
    #[test]
    fn savepoint_journals_stay_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("temp.db")).unwrap();
        let temp_store =
            |c: &Connection| c.query_row("PRAGMA temp_store", [], |r| r.get::<_, i64>(0));
        assert_eq!(temp_store(&conn).unwrap(), 0, "the premise: SQLite's default");
        super::configure(&conn).unwrap();
        assert_eq!(temp_store(&conn).unwrap(), 2);
    }
}
