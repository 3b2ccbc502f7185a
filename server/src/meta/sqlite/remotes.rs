//! SQLite side of [`RemoteStore`]: the `remotes`, `remote_maps` and `remote_files` tables
//! (schema migration `REMOTES`). Plain SQL a Postgres store can repeat statement for
//! statement; the run lease is one conditional `UPDATE`.

use super::SqliteDb;
use super::activity::append_audit;
use super::rows::{hash_at, path_at, sql_u64, u64_at};
use super::store::SqliteMeta;
use crate::meta::remotes::{
    DeviceStat, NewRemote, RemoteFile, RemoteId, RemoteMap, RemoteRecord, RemoteStore, RunRecord,
};
use crate::meta::{MetaError, UserId};
use rusqlite::{Connection, OptionalExtension, Row, params};
use savesync_core::{Rev, SavePath, Version};

const REMOTE_COLUMNS: &str = "r.id, r.name, r.user_id, u.name, r.device_id, r.ssh_user, r.host, \
     r.port, r.key_path, r.every_secs, r.host_key, r.offered_host_key, r.created_at, \
     r.next_run, r.last_run_at, r.last_ok, r.last_error";

fn record(row: &Row<'_>) -> rusqlite::Result<RemoteRecord> {
    let port: i64 = row.get(7)?;
    Ok(RemoteRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        user_id: row.get(2)?,
        user_name: row.get(3)?,
        device_id: row.get(4)?,
        ssh_user: row.get(5)?,
        host: row.get(6)?,
        port: u16::try_from(port).unwrap_or(0),
        key_path: row.get(8)?,
        maps: Vec::new(),
        every_secs: u64_at(row, 9)?,
        host_key: row.get(10)?,
        offered_host_key: row.get(11)?,
        created_at: row.get(12)?,
        next_run: row.get(13)?,
        last_run_at: row.get(14)?,
        last_ok: row.get(15)?,
        last_error: row.get(16)?,
    })
}

fn with_maps(conn: &Connection, mut remote: RemoteRecord) -> Result<RemoteRecord, MetaError> {
    let mut stmt = conn.prepare(
        "SELECT remote_dir, prefix FROM remote_maps WHERE remote_id = ?1 ORDER BY position",
    )?;
    remote.maps = stmt
        .query_map([remote.id], |r| {
            Ok(RemoteMap { remote_dir: r.get(0)?, prefix: path_at(r, 1)? })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(remote)
}

fn select(
    conn: &Connection,
    filter: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<RemoteRecord>, MetaError> {
    let sql = format!(
        "SELECT {REMOTE_COLUMNS} FROM remotes r JOIN users u ON u.id = r.user_id {filter} \
         ORDER BY r.name"
    );
    let rows: Vec<RemoteRecord> =
        conn.prepare(&sql)?.query_map(args, record)?.collect::<rusqlite::Result<_>>()?;
    rows.into_iter().map(|r| with_maps(conn, r)).collect()
}

fn file(row: &Row<'_>) -> rusqlite::Result<RemoteFile> {
    let base_rev: Option<i64> = row.get(1)?;
    let base = match base_rev {
        Some(rev) => {
            Some(Version { rev: Rev(u64::try_from(rev).unwrap_or(0)), hash: hash_at(row, 2)? })
        }
        None => None,
    };
    let device = match hash_at(row, 5)? {
        Some(hash) => Some(DeviceStat { size: u64_at(row, 3)?, mtime: row.get(4)?, hash }),
        None => None,
    };
    Ok(RemoteFile { path: path_at(row, 0)?, base, device, conflict: hash_at(row, 6)? })
}

impl SqliteDb {
    pub fn add_remote(&self, new: &NewRemote) -> Result<RemoteRecord, MetaError> {
        self.write(|tx| {
            let taken: Option<i64> = tx
                .query_row("SELECT id FROM remotes WHERE name = ?1", [&new.name], |r| r.get(0))
                .optional()?;
            if taken.is_some() {
                return Err(MetaError::Conflict(format!("a remote named {:?} exists", new.name)));
            }
            tx.execute(
                "INSERT INTO devices (user_id, name, kind, token_hash, created_at)
                 VALUES (?1, ?2, 'ssh', ?3, ?4)",
                params![new.user_id, new.name, new.token_hash, new.now],
            )?;
            let device_id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO remotes (name, user_id, device_id, ssh_user, host, port, key_path,
                     every_secs, host_key, created_at, next_run)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
                params![
                    new.name,
                    new.user_id,
                    device_id,
                    new.ssh_user,
                    new.host,
                    i64::from(new.port),
                    new.key_path,
                    sql_u64(new.every_secs),
                    new.host_key,
                    new.now
                ],
            )?;
            let id = tx.last_insert_rowid();
            for (position, map) in new.maps.iter().enumerate() {
                tx.execute(
                    "INSERT INTO remote_maps (remote_id, position, remote_dir, prefix)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![id, sql_u64(position as u64), map.remote_dir, map.prefix.as_str()],
                )?;
            }
            append_audit(
                tx,
                new.user_id,
                Some(device_id),
                new.now,
                "remote_add",
                None,
                &format!("added SSH remote {:?} (host key {})", new.name, new.host_key),
            )?;
            select(tx, "WHERE r.id = ?1", [id])?.pop().ok_or(MetaError::NotFound)
        })
    }

    pub fn remote(&self, name: &str) -> Result<Option<RemoteRecord>, MetaError> {
        self.read(|c| Ok(select(c, "WHERE r.name = ?1", [name])?.pop()))
    }

    pub fn remotes(&self, user: Option<UserId>) -> Result<Vec<RemoteRecord>, MetaError> {
        self.read(|c| select(c, "WHERE (?1 IS NULL OR r.user_id = ?1)", [user]))
    }

    pub fn remove_remote(&self, name: &str, now: i64) -> Result<bool, MetaError> {
        self.write(|tx| {
            let found: Option<(RemoteId, UserId, i64)> = tx
                .query_row(
                    "SELECT id, user_id, device_id FROM remotes WHERE name = ?1",
                    [name],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let Some((id, user, device)) = found else { return Ok(false) };
            tx.execute("DELETE FROM remote_files WHERE remote_id = ?1", [id])?;
            tx.execute("DELETE FROM remote_maps WHERE remote_id = ?1", [id])?;
            tx.execute("DELETE FROM remotes WHERE id = ?1", [id])?;
            tx.execute(
                "UPDATE devices SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
                params![device, now],
            )?;
            append_audit(
                tx,
                user,
                Some(device),
                now,
                "remote_remove",
                None,
                &format!("removed SSH remote {name:?}"),
            )?;
            Ok(true)
        })
    }

    pub fn pin_host_key(&self, remote: RemoteId, fingerprint: &str) -> Result<(), MetaError> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE remotes SET host_key = ?2, offered_host_key = NULL WHERE id = ?1",
                params![remote, fingerprint],
            )?;
            if n == 0 { Err(MetaError::NotFound) } else { Ok(()) }
        })
    }

    pub fn offer_host_key(&self, remote: RemoteId, fingerprint: &str) -> Result<(), MetaError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE remotes SET offered_host_key = ?2 WHERE id = ?1",
                params![remote, fingerprint],
            )?;
            Ok(())
        })
    }

    pub fn claim_run(
        &self,
        remote: RemoteId,
        now: i64,
        lease_until: i64,
    ) -> Result<bool, MetaError> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE remotes SET lease_until = ?3
                 WHERE id = ?1 AND (lease_until IS NULL OR lease_until < ?2)",
                params![remote, now, lease_until],
            )?;
            Ok(n == 1)
        })
    }

    pub fn finish_run(&self, remote: RemoteId, run: &RunRecord) -> Result<(), MetaError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE remotes SET lease_until = NULL, last_run_at = ?2, next_run = ?3,
                     last_error = ?4,
                     last_ok = CASE WHEN ?4 IS NULL THEN ?2 ELSE last_ok END
                 WHERE id = ?1",
                params![remote, run.at, run.next_run, run.error],
            )?;
            Ok(())
        })
    }

    pub fn request_run(&self, remote: RemoteId) -> Result<(), MetaError> {
        self.write(|tx| {
            tx.execute("UPDATE remotes SET next_run = 0 WHERE id = ?1", [remote])?;
            Ok(())
        })
    }

    pub fn remote_files(&self, remote: RemoteId) -> Result<Vec<RemoteFile>, MetaError> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT path, base_rev, base_hash, device_size, device_mtime, device_hash,
                        conflict_hash
                 FROM remote_files WHERE remote_id = ?1 ORDER BY path",
            )?;
            let files = stmt.query_map([remote], file)?.collect::<rusqlite::Result<_>>()?;
            Ok(files)
        })
    }

    pub fn put_remote_file(&self, remote: RemoteId, f: &RemoteFile) -> Result<(), MetaError> {
        let base_rev = f.base.map(|b| sql_u64(b.rev.0));
        let base_hash = f.base.and_then(|b| b.hash).map(|h| h.to_hex());
        let (size, mtime, hash) = match f.device {
            Some(d) => (Some(sql_u64(d.size)), Some(d.mtime), Some(d.hash.to_hex())),
            None => (None, None, None),
        };
        let conflict = f.conflict.map(|h| h.to_hex());
        self.write(|tx| {
            tx.execute(
                "DELETE FROM remote_files WHERE remote_id = ?1 AND path = ?2",
                params![remote, f.path.as_str()],
            )?;
            tx.execute(
                "INSERT INTO remote_files (remote_id, path, base_rev, base_hash, device_size,
                     device_mtime, device_hash, conflict_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![remote, f.path.as_str(), base_rev, base_hash, size, mtime, hash, conflict],
            )?;
            Ok(())
        })
    }

    pub fn forget_remote_file(&self, remote: RemoteId, path: &SavePath) -> Result<(), MetaError> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM remote_files WHERE remote_id = ?1 AND path = ?2",
                params![remote, path.as_str()],
            )?;
            Ok(())
        })
    }
}

#[async_trait::async_trait]
impl RemoteStore for SqliteMeta {
    async fn add_remote(&self, new: &NewRemote) -> Result<RemoteRecord, MetaError> {
        let new = new.clone();
        self.run(move |db| db.add_remote(&new)).await
    }

    async fn remote(&self, name: &str) -> Result<Option<RemoteRecord>, MetaError> {
        let name = name.to_owned();
        self.run(move |db| db.remote(&name)).await
    }

    async fn remotes(&self, user: Option<UserId>) -> Result<Vec<RemoteRecord>, MetaError> {
        self.run(move |db| db.remotes(user)).await
    }

    async fn remove_remote(&self, name: &str, now: i64) -> Result<bool, MetaError> {
        let name = name.to_owned();
        self.run(move |db| db.remove_remote(&name, now)).await
    }

    async fn pin_host_key(&self, remote: RemoteId, fingerprint: &str) -> Result<(), MetaError> {
        let fingerprint = fingerprint.to_owned();
        self.run(move |db| db.pin_host_key(remote, &fingerprint)).await
    }

    async fn offer_host_key(&self, remote: RemoteId, fingerprint: &str) -> Result<(), MetaError> {
        let fingerprint = fingerprint.to_owned();
        self.run(move |db| db.offer_host_key(remote, &fingerprint)).await
    }

    async fn claim_run(
        &self,
        remote: RemoteId,
        now: i64,
        lease_until: i64,
    ) -> Result<bool, MetaError> {
        self.run(move |db| db.claim_run(remote, now, lease_until)).await
    }

    async fn finish_run(&self, remote: RemoteId, run: &RunRecord) -> Result<(), MetaError> {
        let run = run.clone();
        self.run(move |db| db.finish_run(remote, &run)).await
    }

    async fn request_run(&self, remote: RemoteId) -> Result<(), MetaError> {
        self.run(move |db| db.request_run(remote)).await
    }

    async fn remote_files(&self, remote: RemoteId) -> Result<Vec<RemoteFile>, MetaError> {
        self.run(move |db| db.remote_files(remote)).await
    }

    async fn put_remote_file(&self, remote: RemoteId, file: &RemoteFile) -> Result<(), MetaError> {
        let file = file.clone();
        self.run(move |db| db.put_remote_file(remote, &file)).await
    }

    async fn forget_remote_file(&self, remote: RemoteId, path: &SavePath) -> Result<(), MetaError> {
        let path = path.clone();
        self.run(move |db| db.forget_remote_file(remote, &path)).await
    }
}
