//! Postgres side of [`RemoteStore`]: the `remotes`, `remote_maps` and `remote_files`
//! tables, statement for statement as `sqlite::remotes`; the run lease is one conditional
//! `UPDATE`, so of several processes exactly one takes it.

use super::activity::append_audit;
use super::rows::{get, hash_at, path_at, sql_u64, u64_at};
use super::{PgMetaStore, begin, conn, finish};
use crate::meta::remotes::{
    DeviceStat, NewRemote, RemoteFile, RemoteId, RemoteMap, RemoteRecord, RemoteStore, RunRecord,
};
use crate::meta::{MetaError, UserId};
use savesync_core::{Rev, SavePath, Version};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection};

const REMOTE_COLUMNS: &str = "r.id, r.name, r.user_id, u.name, r.device_id, r.ssh_user, r.host, \
     r.port, r.key_path, r.every_secs, r.host_key, r.offered_host_key, r.created_at, \
     r.next_run, r.last_run_at, r.last_ok, r.last_error";

fn record(row: &PgRow) -> Result<RemoteRecord, MetaError> {
    let port: i64 = get(row, 7)?;
    Ok(RemoteRecord {
        id: get(row, 0)?,
        name: get(row, 1)?,
        user_id: get(row, 2)?,
        user_name: get(row, 3)?,
        device_id: get(row, 4)?,
        ssh_user: get(row, 5)?,
        host: get(row, 6)?,
        port: u16::try_from(port).unwrap_or(0),
        key_path: get(row, 8)?,
        maps: Vec::new(),
        every_secs: u64_at(row, 9)?,
        host_key: get(row, 10)?,
        offered_host_key: get(row, 11)?,
        created_at: get(row, 12)?,
        next_run: get(row, 13)?,
        last_run_at: get(row, 14)?,
        last_ok: get(row, 15)?,
        last_error: get(row, 16)?,
    })
}

/// Remotes matching `filter` (a `WHERE` clause on `r`, with `$1` bound to `arg`), by name,
/// with their maps.
async fn select<A>(
    conn: &mut PgConnection,
    filter: &str,
    arg: A,
) -> Result<Vec<RemoteRecord>, MetaError>
where
    A: for<'t> sqlx::Encode<'t, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
{
    let sql = format!(
        "SELECT {REMOTE_COLUMNS} FROM remotes r JOIN users u ON u.id = r.user_id {filter} \
         ORDER BY r.name"
    );
    let rows = sqlx::query(AssertSqlSafe(sql)).bind(arg).fetch_all(&mut *conn).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut remote = record(row)?;
        let maps = sqlx::query(
            "SELECT remote_dir, prefix FROM remote_maps WHERE remote_id = $1 ORDER BY position",
        )
        .bind(remote.id)
        .fetch_all(&mut *conn)
        .await?;
        remote.maps = maps
            .iter()
            .map(|r| Ok(RemoteMap { remote_dir: get(r, 0)?, prefix: path_at(r, 1)? }))
            .collect::<Result<_, MetaError>>()?;
        out.push(remote);
    }
    Ok(out)
}

fn file(row: &PgRow) -> Result<RemoteFile, MetaError> {
    let base = match get::<Option<i64>>(row, 1)? {
        Some(rev) => {
            Some(Version { rev: Rev(u64::try_from(rev).unwrap_or(0)), hash: hash_at(row, 2)? })
        }
        None => None,
    };
    let device = match hash_at(row, 5)? {
        Some(hash) => Some(DeviceStat { size: u64_at(row, 3)?, mtime: get(row, 4)?, hash }),
        None => None,
    };
    Ok(RemoteFile { path: path_at(row, 0)?, base, device, conflict: hash_at(row, 6)? })
}

async fn add_remote(conn: &mut PgConnection, new: &NewRemote) -> Result<RemoteRecord, MetaError> {
    let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM remotes WHERE name = $1")
        .bind(&new.name)
        .fetch_optional(&mut *conn)
        .await?;
    if taken.is_some() {
        return Err(MetaError::Conflict(format!("a remote named {:?} exists", new.name)));
    }
    let device_id: i64 = sqlx::query_scalar(
        "INSERT INTO devices (user_id, name, kind, token_hash, created_at)
         VALUES ($1, $2, 'ssh', $3, $4) RETURNING id",
    )
    .bind(new.user_id)
    .bind(&new.name)
    .bind(&new.token_hash)
    .bind(new.now)
    .fetch_one(&mut *conn)
    .await?;
    let id: RemoteId = sqlx::query_scalar(
        "INSERT INTO remotes (name, user_id, device_id, ssh_user, host, port, key_path,
             every_secs, host_key, created_at, next_run)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
    )
    .bind(&new.name)
    .bind(new.user_id)
    .bind(device_id)
    .bind(&new.ssh_user)
    .bind(&new.host)
    .bind(i64::from(new.port))
    .bind(&new.key_path)
    .bind(sql_u64(new.every_secs))
    .bind(&new.host_key)
    .bind(new.now)
    .fetch_one(&mut *conn)
    .await?;
    for (position, map) in new.maps.iter().enumerate() {
        sqlx::query(
            "INSERT INTO remote_maps (remote_id, position, remote_dir, prefix)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(sql_u64(position as u64))
        .bind(&map.remote_dir)
        .bind(map.prefix.as_str())
        .execute(&mut *conn)
        .await?;
    }
    let detail = format!("added SSH remote {:?} (host key {})", new.name, new.host_key);
    append_audit(conn, new.user_id, Some(device_id), new.now, "remote_add", None, &detail).await?;
    select(conn, "WHERE r.id = $1", id).await?.pop().ok_or(MetaError::NotFound)
}

async fn remove_remote(conn: &mut PgConnection, name: &str, now: i64) -> Result<bool, MetaError> {
    let found: Option<(RemoteId, UserId, i64)> =
        sqlx::query_as("SELECT id, user_id, device_id FROM remotes WHERE name = $1 FOR UPDATE")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((id, user, device)) = found else { return Ok(false) };
    for sql in [
        "DELETE FROM remote_files WHERE remote_id = $1",
        "DELETE FROM remote_maps WHERE remote_id = $1",
        "DELETE FROM remotes WHERE id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *conn).await?;
    }
    sqlx::query("UPDATE devices SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
        .bind(device)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    let detail = format!("removed SSH remote {name:?}");
    append_audit(conn, user, Some(device), now, "remote_remove", None, &detail).await?;
    Ok(true)
}

#[async_trait::async_trait]
impl RemoteStore for PgMetaStore {
    async fn add_remote(&self, new: &NewRemote) -> Result<RemoteRecord, MetaError> {
        let new = new.clone();
        self.run(|pool| async move {
            let mut tx = begin(&pool).await?;
            let out = add_remote(&mut tx, &new).await?;
            finish(tx).await?;
            Ok(out)
        })
        .await
    }

    async fn remote(&self, name: &str) -> Result<Option<RemoteRecord>, MetaError> {
        let name = name.to_owned();
        self.run(|pool| async move {
            Ok(select(&mut *conn(&pool).await?, "WHERE r.name = $1", name).await?.pop())
        })
        .await
    }

    async fn remotes(&self, user: Option<UserId>) -> Result<Vec<RemoteRecord>, MetaError> {
        self.run(|pool| async move {
            let filter = "WHERE ($1::BIGINT IS NULL OR r.user_id = $1)";
            select(&mut *conn(&pool).await?, filter, user).await
        })
        .await
    }

    async fn remove_remote(&self, name: &str, now: i64) -> Result<bool, MetaError> {
        let name = name.to_owned();
        self.run(|pool| async move {
            let mut tx = begin(&pool).await?;
            let out = remove_remote(&mut tx, &name, now).await?;
            finish(tx).await?;
            Ok(out)
        })
        .await
    }

    async fn pin_host_key(&self, remote: RemoteId, fingerprint: &str) -> Result<(), MetaError> {
        let fingerprint = fingerprint.to_owned();
        self.run(|pool| async move {
            let n = sqlx::query(
                "UPDATE remotes SET host_key = $2, offered_host_key = NULL WHERE id = $1",
            )
            .bind(remote)
            .bind(fingerprint)
            .execute(&pool)
            .await?
            .rows_affected();
            if n == 0 { Err(MetaError::NotFound) } else { Ok(()) }
        })
        .await
    }

    async fn offer_host_key(&self, remote: RemoteId, fingerprint: &str) -> Result<(), MetaError> {
        let fingerprint = fingerprint.to_owned();
        self.run(|pool| async move {
            sqlx::query("UPDATE remotes SET offered_host_key = $2 WHERE id = $1")
                .bind(remote)
                .bind(fingerprint)
                .execute(&pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn claim_run(
        &self,
        remote: RemoteId,
        now: i64,
        lease_until: i64,
    ) -> Result<bool, MetaError> {
        self.run(|pool| async move {
            let n = sqlx::query(
                "UPDATE remotes SET lease_until = $3
                 WHERE id = $1 AND (lease_until IS NULL OR lease_until < $2)",
            )
            .bind(remote)
            .bind(now)
            .bind(lease_until)
            .execute(&pool)
            .await?
            .rows_affected();
            Ok(n == 1)
        })
        .await
    }

    async fn finish_run(&self, remote: RemoteId, run: &RunRecord) -> Result<(), MetaError> {
        let run = run.clone();
        self.run(|pool| async move {
            sqlx::query(
                "UPDATE remotes SET lease_until = NULL, last_run_at = $2, next_run = $3,
                     last_error = $4,
                     last_ok = CASE WHEN $4::TEXT IS NULL THEN $2 ELSE last_ok END
                 WHERE id = $1",
            )
            .bind(remote)
            .bind(run.at)
            .bind(run.next_run)
            .bind(run.error)
            .execute(&pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn request_run(&self, remote: RemoteId) -> Result<(), MetaError> {
        self.run(|pool| async move {
            sqlx::query("UPDATE remotes SET next_run = 0 WHERE id = $1")
                .bind(remote)
                .execute(&pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn remote_files(&self, remote: RemoteId) -> Result<Vec<RemoteFile>, MetaError> {
        self.run(|pool| async move {
            let rows = sqlx::query(
                "SELECT path, base_rev, base_hash, device_size, device_mtime, device_hash,
                        conflict_hash
                 FROM remote_files WHERE remote_id = $1 ORDER BY path",
            )
            .bind(remote)
            .fetch_all(&pool)
            .await?;
            rows.iter().map(file).collect()
        })
        .await
    }

    async fn put_remote_file(&self, remote: RemoteId, f: &RemoteFile) -> Result<(), MetaError> {
        let path = f.path.as_str().to_owned();
        let base_rev = f.base.map(|b| sql_u64(b.rev.0));
        let base_hash = f.base.and_then(|b| b.hash).map(|h| h.to_hex());
        let (size, mtime, hash) = match f.device {
            Some(d) => (Some(sql_u64(d.size)), Some(d.mtime), Some(d.hash.to_hex())),
            None => (None, None, None),
        };
        let conflict = f.conflict.map(|h| h.to_hex());
        self.run(|pool| async move {
            // Insert or replace, atomically (two writers of one path cannot both insert).
            sqlx::query(
                "INSERT INTO remote_files (remote_id, path, base_rev, base_hash, device_size,
                     device_mtime, device_hash, conflict_hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (remote_id, path) DO UPDATE SET
                     base_rev = excluded.base_rev, base_hash = excluded.base_hash,
                     device_size = excluded.device_size, device_mtime = excluded.device_mtime,
                     device_hash = excluded.device_hash, conflict_hash = excluded.conflict_hash",
            )
            .bind(remote)
            .bind(path)
            .bind(base_rev)
            .bind(base_hash)
            .bind(size)
            .bind(mtime)
            .bind(hash)
            .bind(conflict)
            .execute(&pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn forget_remote_file(&self, remote: RemoteId, path: &SavePath) -> Result<(), MetaError> {
        let path = path.as_str().to_owned();
        self.run(|pool| async move {
            sqlx::query("DELETE FROM remote_files WHERE remote_id = $1 AND path = $2")
                .bind(remote)
                .bind(path)
                .execute(&pool)
                .await?;
            Ok(())
        })
        .await
    }
}
