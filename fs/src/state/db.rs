//! [`StateDb`]: typed access to the state DB. One connection behind a mutex: every call is
//! a short local transaction and callers never hold it across network I/O.

use super::rows::{
    ConflictRow, GivenUpRow, InodeKind, InodeRow, PendingRow, Record, StatKey, StatusRow,
};
use super::schema::migrations;
use rusqlite::{Connection, OptionalExtension, params};
use savesync_core::{ContentHash, Rev, SavePath, Seq, Version};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// A state DB failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("migrating the state db: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("corrupt value in state db: {0}")]
    Corrupt(String),
    #[error("state db busy: {0}")]
    Busy(&'static str),
}

impl DbError {
    /// True when the state DB failed because the disk (or quota) is full.
    #[must_use]
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self,
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DiskFull
        )
    }
}

pub type DbResult<T> = Result<T, DbError>;

/// Run one statement through the connection's statement cache. The mount repeats a small
/// fixed set of statements on every open, close and upload; parsing them each time was the
/// largest user-space cost of a warm open in `perf`.
fn exec<P: rusqlite::Params>(conn: &Connection, sql: &str, params: P) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// [`exec`] for a query that returns one row.
fn query_one<T, P, F>(conn: &Connection, sql: &str, params: P, f: F) -> rusqlite::Result<T>
where
    P: rusqlite::Params,
    F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
{
    conn.prepare_cached(sql)?.query_row(params, f)
}

/// How a transaction takes its lock: at its first write (`Deferred`) or at once.
#[derive(Debug, Clone, Copy)]
pub(super) enum Begin {
    Deferred,
    Immediate,
}

/// Rolls back the transaction still open on a connection when dropped: after an error, or
/// while unwinding from a panic, so the next call does not find one open.
struct RollbackUnlessCommitted<'c>(&'c Connection);

impl Drop for RollbackUnlessCommitted<'_> {
    fn drop(&mut self) {
        if !self.0.is_autocommit() {
            let _ = exec(self.0, "ROLLBACK", []);
        }
    }
}

/// Run `f` in one transaction on `conn`, committed when it returns `Ok`. BEGIN and COMMIT
/// come from the statement cache: rusqlite's `Transaction` parses them on every use, and
/// the mount runs four transactions per closed save (about 2.5% of its CPU while writing
/// small saves went to parsing them).
pub(super) fn in_transaction<T>(
    conn: &Connection,
    begin: Begin,
    f: impl FnOnce(&Connection) -> DbResult<T>,
) -> DbResult<T> {
    let sql = match begin {
        Begin::Deferred => "BEGIN",
        Begin::Immediate => "BEGIN IMMEDIATE",
    };
    exec(conn, sql, [])?;
    let _rollback = RollbackUnlessCommitted(conn);
    let value = f(conn)?;
    exec(conn, "COMMIT", [])?;
    Ok(value)
}

/// Room for every distinct statement of this module (about 30), so none is evicted.
const STATEMENT_CACHE: usize = 64;

/// The mount's state DB.
///
/// Two connections to the same file: `conn` commits with `synchronous=FULL` and carries
/// tree changes a power cut must not lose (renames, deletes, new directories); `lazy`
/// commits with `synchronous=NORMAL` and carries closes and creates, which a power cut may
/// take back because the bytes are synced and the next start finds them again
/// (`tree::power_cut`), and the engine's bookkeeping (bases, heads, queue removals,
/// cursor, status), which a power cut may roll back harmlessly: the next decision redoes
/// the work (uploads are idempotent).
#[derive(Debug)]
pub struct StateDb {
    conn: Mutex<Connection>,
    lazy: Mutex<Connection>,
}

fn version_to_db(v: Option<Version>) -> (Option<i64>, Option<String>) {
    match v {
        Some(v) => (Some(v.rev.0 as i64), v.hash.map(|h| h.to_hex())),
        None => (None, None),
    }
}

fn version_from_db(rev: Option<i64>, hash: Option<String>) -> DbResult<Option<Version>> {
    let Some(rev) = rev else { return Ok(None) };
    let hash = match hash {
        Some(h) => Some(h.parse::<ContentHash>().map_err(|e| DbError::Corrupt(e.to_string()))?),
        None => None,
    };
    Ok(Some(Version { rev: Rev(rev as u64), hash }))
}

/// A stored content hash (hex); anything else is a damaged row.
pub(super) fn parse_hash(h: &str) -> DbResult<ContentHash> {
    h.parse().map_err(|e: savesync_core::ParseHashError| DbError::Corrupt(e.to_string()))
}

fn parse_path(s: &str) -> DbResult<SavePath> {
    SavePath::parse(s).map_err(|e| DbError::Corrupt(format!("{s:?}: {e}")))
}

fn inode_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<InodeRow> {
    Ok(InodeRow {
        ino: r.get::<_, i64>(0)? as u64,
        parent: r.get::<_, i64>(1)? as u64,
        name: r.get(2)?,
        kind: InodeKind::from_db(r.get(3)?),
        mode: r.get::<_, i64>(4)? as u32,
        uid: r.get::<_, i64>(5)? as u32,
        gid: r.get::<_, i64>(6)? as u32,
        size: r.get::<_, i64>(7)? as u64,
        atime_ns: r.get(8)?,
        mtime_ns: r.get(9)?,
        ctime_ns: r.get(10)?,
        cached: r.get::<_, i64>(11)? != 0,
        cache_size: r.get::<_, i64>(12)? as u64,
        cache_mtime_ns: r.get(13)?,
    })
}

fn upsert_inode(conn: &Connection, row: &InodeRow) -> rusqlite::Result<()> {
    exec(
        conn,
        "INSERT INTO inodes (ino, parent, name, kind, mode, uid, gid, size, atime_ns, mtime_ns,
            ctime_ns, cached, cache_size, cache_mtime_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT(ino) DO UPDATE SET parent = ?2, name = ?3, kind = ?4, mode = ?5, uid = ?6,
            gid = ?7, size = ?8, atime_ns = ?9, mtime_ns = ?10, ctime_ns = ?11, cached = ?12,
            cache_size = ?13, cache_mtime_ns = ?14",
        params![
            row.ino as i64,
            row.parent as i64,
            row.name,
            row.kind.to_db(),
            i64::from(row.mode),
            i64::from(row.uid),
            i64::from(row.gid),
            row.size as i64,
            row.atime_ns,
            row.mtime_ns,
            row.ctime_ns,
            i64::from(row.cached),
            row.cache_size as i64,
            row.cache_mtime_ns,
        ],
    )?;
    Ok(())
}

/// Remove `removed` and write `rows`, inside the caller's transaction.
fn replace_inodes_in(
    conn: &Connection,
    rows: &[InodeRow],
    removed: &[u64],
) -> rusqlite::Result<()> {
    for ino in removed {
        exec(conn, "DELETE FROM inodes WHERE ino = ?1", [*ino as i64])?;
    }
    for row in rows {
        upsert_inode(conn, row)?;
    }
    Ok(())
}

fn enqueue_in(conn: &Connection, path: &SavePath, due_ms: i64) -> rusqlite::Result<()> {
    exec(
        conn,
        "INSERT INTO pending (path, due_ms, generation, attempts) VALUES (?1, ?2, 1, 0)
         ON CONFLICT(path) DO UPDATE SET due_ms = ?2, generation = generation + 1, attempts = 0",
        params![path.as_str(), due_ms],
    )?;
    Ok(())
}

fn agree_in(conn: &Connection, path: &SavePath, v: Version, size: u64) -> rusqlite::Result<()> {
    let (rev, hash) = version_to_db(Some(v));
    exec(
        conn,
        "INSERT INTO records (path, base_rev, base_hash, head_rev, head_hash, head_size)
         VALUES (?1, ?2, ?3, ?2, ?3, ?4)
         ON CONFLICT(path) DO UPDATE SET base_rev = ?2, base_hash = ?3,
            head_rev = CASE WHEN head_rev IS NULL OR head_rev <= ?2 THEN ?2 ELSE head_rev END,
            head_hash = CASE WHEN head_rev IS NULL OR head_rev <= ?2 THEN ?3 ELSE head_hash END,
            head_size = CASE WHEN head_rev IS NULL OR head_rev <= ?2 THEN ?4 ELSE head_size END",
        params![path.as_str(), rev, hash, size as i64],
    )?;
    // The server answered: no upload of this path is in doubt any more (`in_flight.rs`).
    exec(conn, "DELETE FROM uploads_in_flight WHERE path = ?1", params![path.as_str()])?;
    Ok(())
}

/// The uploader's question, asked whenever a slot frees: what is due, oldest first.
const DUE_PENDING: &str = "SELECT path, generation, attempts FROM pending WHERE due_ms <= ?1
     ORDER BY due_ms LIMIT ?2";
const NEXT_DUE: &str = "SELECT MIN(due_ms) FROM pending";
const NEXT_DUE_AFTER: &str = "SELECT MIN(due_ms) FROM pending WHERE due_ms > ?1";

/// Plan each statement once (SQLite's query planner stability guarantee). Without it a
/// cached statement whose plan looked at a bound value (any `LIMIT ?`) is compiled again
/// every time it is bound: the queue's `due_pending` and the in-flight note were, on every
/// save, about a tenth of the daemon's CPU while writing.
fn keep_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

impl StateDb {
    /// Open (creating if needed) and migrate the state DB at `path`.
    pub fn open(path: &Path) -> DbResult<StateDb> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Bounded WAL (checkpoint every 128 pages): the file is reused, not grown, so on a
        // full disk the DB can still record uploads and deletes.
        conn.pragma_update(None, "wal_autocheckpoint", 128)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrations().to_latest(&mut conn)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        keep_plans(&conn)?;
        let lazy = Connection::open(path)?;
        lazy.pragma_update(None, "synchronous", "NORMAL")?;
        lazy.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        keep_plans(&lazy)?;
        lazy.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(StateDb { conn: Mutex::new(conn), lazy: Mutex::new(lazy) })
    }

    /// Make every commit durable, the lazy ones too (a clean stop): a full checkpoint syncs
    /// the WAL before copying it into the DB file and syncs the DB file after.
    pub fn checkpoint(&self) -> DbResult<()> {
        let conn = self.conn();
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(FULL)", [], |r| r.get(0))?;
        if busy != 0 {
            return Err(DbError::Busy("a reader kept the checkpoint from finishing"));
        }
        Ok(())
    }

    /// Open an existing DB for reading from another process (the status CLI).
    pub fn open_existing(path: &Path) -> DbResult<StateDb> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let lazy = Connection::open(path)?;
        lazy.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(StateDb { conn: Mutex::new(conn), lazy: Mutex::new(lazy) })
    }

    /// Free the page caches of both connections (`PRAGMA shrink_memory`), after a phase
    /// that read the whole DB: loading the inode table or building a manifest. A failure
    /// only keeps the caches, so it is logged, not returned.
    pub fn release_memory(&self) {
        for conn in [self.conn(), self.lazy()] {
            if let Err(e) = conn.execute_batch("PRAGMA shrink_memory") {
                tracing::debug!("state db kept its page cache: {e}");
            }
        }
    }

    pub(super) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite itself consistent (transactions roll
        // back), so a poisoned mutex is safe to reuse.
        self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn lazy(&self) -> MutexGuard<'_, Connection> {
        self.lazy.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    // ---- inodes ----

    pub fn load_inodes(&self) -> DbResult<Vec<InodeRow>> {
        let mut rows = Vec::new();
        self.for_each_inode(|row| rows.push(row))?;
        Ok(rows)
    }

    /// Hand every inode row to `f` in inode order, one at a time: the mount builds its
    /// table from them at start without holding all rows in memory besides it.
    pub fn for_each_inode(&self, mut f: impl FnMut(InodeRow)) -> DbResult<()> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT ino, parent, name, kind, mode, uid, gid, size, atime_ns, mtime_ns, ctime_ns,
                    cached, cache_size, cache_mtime_ns FROM inodes ORDER BY ino",
        )?;
        for row in stmt.query_map([], inode_from_row)? {
            f(row?);
        }
        Ok(())
    }

    pub fn put_inode(&self, row: &InodeRow) -> DbResult<()> {
        upsert_inode(&self.conn(), row)?;
        Ok(())
    }

    /// Persist several inode rows and removals in one transaction (rename, create with
    /// parents).
    pub fn put_inodes(&self, rows: &[InodeRow], removed: &[u64]) -> DbResult<()> {
        in_transaction(&self.conn(), Begin::Immediate, |tx| {
            replace_inodes_in(tx, rows, removed)?;
            Ok(())
        })
    }

    /// Persist a newly created file (and its parent's new times) on the lazy connection.
    ///
    /// Why not durable: a process crash cannot lose it (WAL commits survive a kill -9 at any
    /// `synchronous` level), and after a power cut the next start puts a created file that
    /// lost its row back by the origin tag on its cache file (`tree::power_cut`). Where the
    /// file system cannot keep that tag, the caller uses [`StateDb::put_inodes`] instead.
    /// Only an empty file created and never closed can vanish on power loss, which POSIX
    /// allows without an fsync of the directory.
    pub fn put_created(&self, rows: &[InodeRow]) -> DbResult<()> {
        in_transaction(&self.lazy(), Begin::Immediate, |tx| {
            for row in rows {
                upsert_inode(tx, row)?;
            }
            Ok(())
        })
    }

    /// Bookkeeping variant of [`StateDb::put_inodes`] for entries the engine installs from
    /// the server (a power cut may roll it back; the next sync redoes it), with the
    /// versions this device now agrees on, in one transaction.
    pub fn install(&self, rows: &[InodeRow], agreed: &[(SavePath, Version, u64)]) -> DbResult<()> {
        in_transaction(&self.lazy(), Begin::Immediate, |tx| {
            for row in rows {
                upsert_inode(tx, row)?;
            }
            for (path, v, size) in agreed {
                agree_in(tx, path, *v, *size)?;
            }
            Ok(())
        })
    }

    pub fn delete_inode(&self, ino: u64) -> DbResult<()> {
        exec(&self.conn(), "DELETE FROM inodes WHERE ino = ?1", [ino as i64])?;
        Ok(())
    }

    /// Close/fsync of a written save: the inode row (size, times, cache stat) and the queue
    /// entry land in one transaction, on the lazy connection. The caller has fdatasynced the
    /// cache file: that is the one disk sync a closed save costs. A kill -9 cannot lose
    /// this commit; a power cut can, and the next start finds the bytes again
    /// (`tree::power_cut`).
    pub fn flush_file(&self, row: &InodeRow, enqueue: Option<(&SavePath, i64)>) -> DbResult<()> {
        in_transaction(&self.lazy(), Begin::Immediate, |tx| {
            upsert_inode(tx, row)?;
            if let Some((path, due_ms)) = enqueue {
                enqueue_in(tx, path, due_ms)?;
            }
            Ok(())
        })
    }

    // ---- kv ----

    pub fn get_kv(&self, key: &str) -> DbResult<Option<String>> {
        Ok(query_one(&self.conn(), "SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub fn delete_kv(&self, key: &str) -> DbResult<()> {
        exec(&self.lazy(), "DELETE FROM kv WHERE key = ?1", [key])?;
        Ok(())
    }

    /// Remove every `kv` row whose key starts with `prefix`.
    pub fn delete_kv_prefix(&self, prefix: &str) -> DbResult<()> {
        exec(&self.lazy(), "DELETE FROM kv WHERE substr(key, 1, length(?1)) = ?1", [prefix])?;
        Ok(())
    }

    pub fn set_kv(&self, key: &str, value: &str) -> DbResult<()> {
        exec(
            &self.lazy(),
            "INSERT INTO kv (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = ?2",
            [key, value],
        )?;
        Ok(())
    }

    /// The lowest inode number never handed out (kept by a trigger on `inodes`).
    pub fn next_ino(&self) -> DbResult<u64> {
        Ok(self.get_kv("next_ino")?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    pub fn cursor(&self) -> DbResult<Seq> {
        Ok(Seq(self.get_kv("cursor")?.and_then(|v| v.parse().ok()).unwrap_or(0)))
    }

    pub fn set_cursor(&self, cursor: Seq) -> DbResult<()> {
        self.set_kv("cursor", &cursor.0.to_string())
    }

    // ---- records ----

    pub fn record(&self, path: &SavePath) -> DbResult<Record> {
        let conn = self.conn();
        let row = query_one(
            &conn,
            "SELECT base_rev, base_hash, head_rev, head_hash, head_size FROM records
                 WHERE path = ?1",
            [path.as_str()],
            |r| {
                Ok((
                    r.get::<_, Option<i64>>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            },
        )
        .optional()?;
        let Some((br, bh, hr, hh, hs)) = row else { return Ok(Record::default()) };
        Ok(Record {
            base: version_from_db(br, bh)?,
            head: version_from_db(hr, hh)?,
            head_size: hs as u64,
        })
    }

    /// Every sync record. Rows are parsed as they are read, so the DB's text form of
    /// 100,000 records is never held at once.
    pub fn all_records(&self) -> DbResult<Vec<(SavePath, Record)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT path, base_rev, base_hash, head_rev, head_hash, head_size FROM records",
        )?;
        let rows = stmt.query_and_then([], |r| -> DbResult<(SavePath, Record)> {
            Ok((
                parse_path(&r.get::<_, String>(0)?)?,
                Record {
                    base: version_from_db(r.get(1)?, r.get(2)?)?,
                    head: version_from_db(r.get(3)?, r.get(4)?)?,
                    head_size: r.get::<_, i64>(5)? as u64,
                },
            ))
        })?;
        rows.collect()
    }

    pub fn set_base(&self, path: &SavePath, base: Option<Version>) -> DbResult<()> {
        let (rev, hash) = version_to_db(base);
        exec(
            &self.lazy(),
            "INSERT INTO records (path, base_rev, base_hash) VALUES (?1, ?2, ?3)
             ON CONFLICT(path) DO UPDATE SET base_rev = ?2, base_hash = ?3",
            params![path.as_str(), rev, hash],
        )?;
        Ok(())
    }

    /// Remember a server head, unless an equal or newer one is already known.
    pub fn note_head(&self, path: &SavePath, head: Version, size: u64) -> DbResult<()> {
        let (rev, hash) = version_to_db(Some(head));
        exec(
            &self.lazy(),
            "INSERT INTO records (path, head_rev, head_hash, head_size) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(path) DO UPDATE SET head_rev = ?2, head_hash = ?3, head_size = ?4
             WHERE head_rev IS NULL OR head_rev <= ?2",
            params![path.as_str(), rev, hash, size as i64],
        )?;
        Ok(())
    }

    /// Forget what is known of the head (the server no longer has the save at all).
    pub fn clear_head(&self, path: &SavePath) -> DbResult<()> {
        exec(
            &self.lazy(),
            "UPDATE records SET head_rev = NULL, head_hash = NULL, head_size = 0 WHERE path = ?1",
            [path.as_str()],
        )?;
        Ok(())
    }

    /// Agree on `v`: it becomes both base and known head. One transaction for the record
    /// and the in-flight note: this runs for every save uploaded.
    pub fn agree(&self, path: &SavePath, v: Version, size: u64) -> DbResult<()> {
        in_transaction(&self.lazy(), Begin::Deferred, |tx| {
            agree_in(tx, path, v, size)?;
            Ok(())
        })
    }

    // ---- pending queue ----

    pub fn enqueue(&self, path: &SavePath, due_ms: i64) -> DbResult<()> {
        enqueue_in(&self.conn(), path, due_ms)?;
        Ok(())
    }

    pub fn enqueue_many(&self, paths: &[SavePath], due_ms: i64) -> DbResult<()> {
        in_transaction(&self.conn(), Begin::Immediate, |tx| {
            for p in paths {
                enqueue_in(tx, p, due_ms)?;
            }
            Ok(())
        })
    }

    /// Entries due at `now_ms`, oldest first.
    pub fn due_pending(&self, now_ms: i64, limit: usize) -> DbResult<Vec<PendingRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(DUE_PENDING)?;
        let raw = stmt
            .query_map(params![now_ms, limit as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        raw.into_iter()
            .map(|(p, generation, attempts)| {
                Ok(PendingRow { path: parse_path(&p)?, generation, attempts })
            })
            .collect()
    }

    /// The earliest due time in the queue.
    pub fn next_due(&self) -> DbResult<Option<i64>> {
        Ok(query_one(&self.conn(), NEXT_DUE, [], |r| r.get(0))?)
    }

    /// The earliest due time in the queue later than `now_ms` (entries already due are
    /// being synced or waiting for a free slot).
    pub fn next_due_after(&self, now_ms: i64) -> DbResult<Option<i64>> {
        Ok(query_one(&self.conn(), NEXT_DUE_AFTER, [now_ms], |r| r.get(0))?)
    }

    /// Remove a queue entry if nobody re-enqueued it since it was picked up.
    pub fn finish_pending(&self, path: &SavePath, generation: i64) -> DbResult<()> {
        exec(
            &self.lazy(),
            "DELETE FROM pending WHERE path = ?1 AND generation = ?2",
            params![path.as_str(), generation],
        )?;
        Ok(())
    }

    /// `path` synced: it leaves the given-up list, and its queue entry goes unless it was
    /// re-enqueued since it was picked up. One transaction: this runs for every save.
    pub fn finish_synced(&self, path: &SavePath, generation: i64) -> DbResult<()> {
        in_transaction(&self.lazy(), Begin::Deferred, |tx| {
            exec(tx, "DELETE FROM given_up WHERE path = ?1", [path.as_str()])?;
            exec(
                tx,
                "DELETE FROM pending WHERE path = ?1 AND generation = ?2",
                params![path.as_str(), generation],
            )?;
            Ok(())
        })
    }

    /// Try again later (offline, transient error, busy file).
    pub fn retry_pending(&self, path: &SavePath, generation: i64, due_ms: i64) -> DbResult<()> {
        exec(
            &self.lazy(),
            "UPDATE pending SET due_ms = ?3, attempts = attempts + 1
             WHERE path = ?1 AND generation = ?2",
            params![path.as_str(), generation, due_ms],
        )?;
        Ok(())
    }

    /// Make everything in the queue due now (the server came back).
    pub fn wake_all_pending(&self, now_ms: i64) -> DbResult<()> {
        exec(&self.lazy(), "UPDATE pending SET due_ms = ?1 WHERE due_ms > ?1", [now_ms])?;
        Ok(())
    }

    pub fn pending_count(&self) -> DbResult<u64> {
        Ok(query_one(&self.conn(), "SELECT COUNT(*) FROM pending", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    // ---- conflicts ----

    pub fn conflicts(&self) -> DbResult<Vec<ConflictRow>> {
        self.query_conflicts(
            "SELECT path, ino, rev, hash, size, backed_up_hash FROM conflicts ORDER BY path",
            &[],
        )
    }

    fn query_conflicts(
        &self,
        sql: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> DbResult<Vec<ConflictRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql)?;
        let raw = stmt
            .query_map(args, |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let parse_hash =
            |h: &str| h.parse::<ContentHash>().map_err(|e| DbError::Corrupt(e.to_string()));
        raw.into_iter()
            .map(|(p, ino, rev, hash, size, backed_up)| {
                Ok(ConflictRow {
                    path: parse_path(&p)?,
                    ino: ino as u64,
                    rev: Rev(rev as u64),
                    hash: hash.parse().map_err(|e: savesync_core::ParseHashError| {
                        DbError::Corrupt(e.to_string())
                    })?,
                    size: size as u64,
                    backed_up: backed_up.as_deref().map(parse_hash).transpose()?,
                })
            })
            .collect()
    }

    pub fn conflict(&self, path: &SavePath) -> DbResult<Option<ConflictRow>> {
        let rows = self.query_conflicts(
            "SELECT path, ino, rev, hash, size, backed_up_hash FROM conflicts WHERE path = ?1",
            &[&path.as_str()],
        )?;
        Ok(rows.into_iter().next())
    }

    /// Record a conflict copy and its inode in one transaction.
    pub fn put_conflict(&self, c: &ConflictRow, inode: &InodeRow) -> DbResult<()> {
        in_transaction(&self.lazy(), Begin::Immediate, |tx| {
            upsert_inode(tx, inode)?;
            exec(
                tx,
                "INSERT INTO conflicts (path, ino, rev, hash, size, backed_up_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(path) DO UPDATE SET ino = ?2, rev = ?3, hash = ?4, size = ?5,
                    backed_up_hash = ?6",
                params![
                    c.path.as_str(),
                    c.ino as i64,
                    c.rev.0 as i64,
                    c.hash.to_hex(),
                    c.size as i64,
                    c.backed_up.map(|h| h.to_hex())
                ],
            )?;
            Ok(())
        })
    }

    /// Remember that this device's bytes `hash` are kept on the server while the conflict
    /// of `path` is open (no-op without a conflict row).
    pub fn set_conflict_backed_up(&self, path: &SavePath, hash: ContentHash) -> DbResult<()> {
        exec(
            &self.lazy(),
            "UPDATE conflicts SET backed_up_hash = ?2 WHERE path = ?1",
            params![path.as_str(), hash.to_hex()],
        )?;
        Ok(())
    }

    pub fn delete_conflict(&self, path: &SavePath) -> DbResult<()> {
        exec(&self.lazy(), "DELETE FROM conflicts WHERE path = ?1", [path.as_str()])?;
        Ok(())
    }

    // ---- hash cache ----

    /// The content hash of `ino`'s cache file, if it was hashed at exactly this stat.
    pub fn cached_hash(&self, ino: u64, key: StatKey) -> DbResult<Option<ContentHash>> {
        let hex: Option<String> = query_one(
            &self.lazy(),
            "SELECT hash FROM hashes WHERE ino = ?1 AND size = ?2 AND mtime_ns = ?3
                AND file_ino = ?4",
            params![ino as i64, key.size as i64, key.mtime_ns, key.file_ino as i64],
            |r| r.get(0),
        )
        .optional()?;
        hex.map(|h| {
            h.parse().map_err(|e: savesync_core::ParseHashError| DbError::Corrupt(e.to_string()))
        })
        .transpose()
    }

    /// Remember that `ino`'s cache file at stat `key` hashes to `hash`.
    pub fn remember_hash(&self, ino: u64, key: StatKey, hash: ContentHash) -> DbResult<()> {
        exec(
            &self.lazy(),
            "INSERT INTO hashes (ino, size, mtime_ns, file_ino, hash) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(ino) DO UPDATE SET size = ?2, mtime_ns = ?3, file_ino = ?4, hash = ?5",
            params![ino as i64, key.size as i64, key.mtime_ns, key.file_ino as i64, hash.to_hex()],
        )?;
        Ok(())
    }

    // ---- origins of moved, never-downloaded saves ----

    /// Persist a rename (rows, removed inodes) together with the origins of moved
    /// never-downloaded inodes (kept if an inode already has one), in one transaction.
    pub fn put_moved(
        &self,
        rows: &[InodeRow],
        removed: &[u64],
        origins: &[(u64, SavePath, Version)],
    ) -> DbResult<()> {
        in_transaction(&self.conn(), Begin::Immediate, |tx| {
            replace_inodes_in(tx, rows, removed)?;
            for (ino, path, v) in origins {
                let (rev, hash) = version_to_db(Some(*v));
                exec(
                    tx,
                    "INSERT OR IGNORE INTO origins (ino, path, rev, hash) VALUES (?1, ?2, ?3, ?4)",
                    params![*ino as i64, path.as_str(), rev, hash],
                )?;
            }
            Ok(())
        })
    }

    /// Where the bytes of a moved, never-downloaded inode are on the server.
    pub fn origin(&self, ino: u64) -> DbResult<Option<(SavePath, Version)>> {
        let row = query_one(
            &self.conn(),
            "SELECT path, rev, hash FROM origins WHERE ino = ?1",
            [ino as i64],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)),
        )
        .optional()?;
        let Some((p, rev, hash)) = row else { return Ok(None) };
        let v = version_from_db(Some(rev), Some(hash))?
            .ok_or_else(|| DbError::Corrupt("origin without version".into()))?;
        Ok(Some((parse_path(&p)?, v)))
    }

    /// The inodes moved away from `path` whose bytes are still only at their origin there.
    pub fn moved_from(&self, path: &SavePath) -> DbResult<Vec<u64>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT ino FROM origins WHERE path = ?1")?;
        let inos = stmt
            .query_map([path.as_str()], |r| r.get::<_, i64>(0))?
            .map(|ino| ino.map(|i| i as u64))
            .collect::<rusqlite::Result<Vec<u64>>>()?;
        Ok(inos)
    }

    pub fn delete_origin(&self, ino: u64) -> DbResult<()> {
        exec(&self.conn(), "DELETE FROM origins WHERE ino = ?1", [ino as i64])?;
        Ok(())
    }

    // ---- saves given up ----

    /// Record that the server refused `path` for good (the queue entry is dropped).
    pub fn give_up(&self, path: &SavePath, error: &str, at_ms: i64) -> DbResult<()> {
        exec(
            &self.lazy(),
            "INSERT INTO given_up (path, error, at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(path) DO UPDATE SET error = ?2, at_ms = ?3",
            params![path.as_str(), error, at_ms],
        )?;
        Ok(())
    }

    /// Saves the uploader gave up on, by path.
    pub fn given_up(&self) -> DbResult<Vec<GivenUpRow>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT path, error, at_ms FROM given_up ORDER BY path")?;
        let raw = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        raw.into_iter()
            .map(|(p, error, at_ms)| Ok(GivenUpRow { path: parse_path(&p)?, error, at_ms }))
            .collect()
    }

    // ---- status ----

    pub fn write_status(&self, s: &StatusRow) -> DbResult<()> {
        exec(
            &self.lazy(),
            "INSERT INTO status (id, online, last_error, mountpoint, pid, updated_ms,
                save_bytes_read)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(id) DO UPDATE SET online = ?1, last_error = ?2, mountpoint = ?3,
                pid = ?4, updated_ms = ?5, save_bytes_read = ?6",
            params![
                i64::from(s.online),
                s.last_error,
                s.mountpoint,
                s.pid.map(i64::from),
                s.updated_ms,
                s.save_bytes_read as i64
            ],
        )?;
        Ok(())
    }

    pub fn read_status(&self) -> DbResult<Option<StatusRow>> {
        Ok(query_one(
            &self.conn(),
            "SELECT online, last_error, mountpoint, pid, updated_ms, save_bytes_read
             FROM status WHERE id = 1",
            [],
            |r| {
                Ok(StatusRow {
                    online: r.get::<_, i64>(0)? != 0,
                    last_error: r.get(1)?,
                    mountpoint: r.get(2)?,
                    pid: r.get::<_, Option<i64>>(3)?.map(|p| p as u32),
                    updated_ms: r.get(4)?,
                    save_bytes_read: r.get::<_, i64>(5)? as u64,
                })
            },
        )
        .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::StateDb;
    use rusqlite::StatementStatus;
    use savesync_core::{ContentHash, SavePath, Version};

    /// The queue's `LIMIT ?` query, asked with a new limit each time, is planned once
    /// (`keep_plans`); it used to be compiled again on every call, for every save written.
    #[test]
    fn the_due_queue_query_is_planned_once_however_its_limit_changes() {
        let (_dir, db) = db();
        db.enqueue(&SavePath::parse("snes/a.srm").unwrap(), 0).unwrap();
        for limit in 1..=5 {
            assert_eq!(db.due_pending(10, limit).unwrap().len(), 1);
        }
        let conn = db.conn();
        let stmt = conn.prepare_cached(super::DUE_PENDING).unwrap();
        assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
    }

    /// The queue worker asks these after every finished sync. Without the `pending_due`
    /// index each read the whole queue (and sorted it): draining 10,000 saves queued while
    /// offline cost the daemon 1.19 ms of CPU per save instead of 0.70.
    #[test]
    fn the_queue_worker_reads_the_queue_through_its_due_index() {
        let (_dir, db) = db();
        let conn = db.conn();
        for sql in [super::DUE_PENDING, super::NEXT_DUE, super::NEXT_DUE_AFTER] {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let plan: Vec<String> = stmt
                .query_map(
                    rusqlite::params_from_iter(&[1i64, 8][..sql.matches('?').count()]),
                    |r| r.get(3),
                )
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let plan = plan.join(" / ");
            assert!(plan.contains("INDEX pending_due"), "{sql}: {plan}");
            assert!(!plan.contains("SCAN") && !plan.contains("TEMP B-TREE"), "{sql}: {plan}");
        }
    }

    /// A failed or panicking transaction is rolled back and leaves the connection ready for
    /// the next; every transaction runs the same cached BEGIN and COMMIT statements.
    #[test]
    fn transactions_roll_back_on_error_and_panic_and_reuse_their_statements() {
        use super::{Begin, DbError, DbResult, exec, in_transaction};
        let (_dir, db) = db();
        let set = |conn: &rusqlite::Connection, key: &str| {
            exec(conn, "INSERT INTO kv (key, value) VALUES (?1, 'x')", [key])
        };
        let failed = in_transaction(&db.lazy(), Begin::Immediate, |tx| {
            set(tx, "failed")?;
            Err::<(), _>(DbError::Corrupt("refused".into()))
        });
        assert!(failed.is_err());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            in_transaction(&db.lazy(), Begin::Deferred, |tx| -> DbResult<()> {
                set(tx, "panicked")?;
                panic!("a bug inside a transaction")
            })
        }));
        assert!(panicked.is_err());
        for key in ["a", "b", "c"] {
            in_transaction(&db.lazy(), Begin::Immediate, |tx| Ok(set(tx, key)?)).unwrap();
        }
        let kept: Vec<String> = ["failed", "panicked", "a", "b", "c"]
            .into_iter()
            .filter(|k| db.get_kv(k).unwrap().is_some())
            .map(str::to_owned)
            .collect();
        assert_eq!(kept, ["a", "b", "c"]);
        let conn = db.lazy();
        let runs = |sql: &str| conn.prepare_cached(sql).unwrap().get_status(StatementStatus::Run);
        assert_eq!((runs("BEGIN IMMEDIATE"), runs("BEGIN"), runs("COMMIT")), (4, 1, 3));
    }

    fn db() -> (tempfile::TempDir, StateDb) {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(&dir.path().join("state.db")).unwrap();
        (dir, db)
    }

    #[test]
    fn a_save_requeued_while_syncing_is_not_dropped_by_the_finished_sync() {
        let (_dir, db) = db();
        let p = SavePath::parse("snes/a.srm").unwrap();
        db.enqueue(&p, 0).unwrap();
        let picked = db.due_pending(10, 10).unwrap().remove(0);
        db.enqueue(&p, 5).unwrap(); // written again while the upload ran
        db.finish_pending(&p, picked.generation).unwrap();
        assert_eq!(db.pending_count().unwrap(), 1);
        let again = db.due_pending(10, 10).unwrap().remove(0);
        db.finish_pending(&p, again.generation).unwrap();
        assert_eq!(db.pending_count().unwrap(), 0);
    }

    #[test]
    fn a_finished_sync_leaves_the_given_up_list_and_keeps_a_newer_queue_entry() {
        let (_dir, db) = db();
        let p = SavePath::parse("snes/a.srm").unwrap();
        db.give_up(&p, "refused: too large", 1).unwrap();
        db.enqueue(&p, 0).unwrap();
        let picked = db.due_pending(10, 10).unwrap().remove(0);
        db.enqueue(&p, 5).unwrap(); // written again while the upload ran
        db.finish_synced(&p, picked.generation).unwrap();
        assert!(db.given_up().unwrap().is_empty());
        assert_eq!(db.pending_count().unwrap(), 1, "the newer entry stays queued");
        let again = db.due_pending(10, 10).unwrap().remove(0);
        db.finish_synced(&p, again.generation).unwrap();
        assert_eq!(db.pending_count().unwrap(), 0);
    }

    #[test]
    fn a_head_never_moves_backwards_and_agree_sets_base_and_head() {
        let (_dir, db) = db();
        let p = SavePath::parse("a.srm").unwrap();
        let h = ContentHash::of(b"x");
        db.note_head(&p, Version::live(3, h), 1).unwrap();
        db.note_head(&p, Version::live(2, h), 1).unwrap();
        assert_eq!(db.record(&p).unwrap().head, Some(Version::live(3, h)));
        db.agree(&p, Version::live(4, h), 1).unwrap();
        let rec = db.record(&p).unwrap();
        assert_eq!((rec.base, rec.head), (Some(Version::live(4, h)), Some(Version::live(4, h))));
        db.agree(&p, Version::tombstone(5), 0).unwrap();
        assert_eq!(db.record(&p).unwrap().base, Some(Version::tombstone(5)));
    }
}
