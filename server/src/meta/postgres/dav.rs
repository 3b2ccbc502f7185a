//! The WebDAV face's rows on Postgres (see `sqlite::dav`): a RetroArch device created with
//! its library root in one transaction, the rev each device last saw of a save, and the
//! MD5 of each stored content.

use super::accounts::{ensure_user, user_name};
use super::activity::{append_audit, record_synced};
use crate::meta::{Actor, DeviceId, MetaError, NewDavDevice, NewDevice};
use savesync_core::{ContentHash, Rev, SavePath};
use sqlx::PgConnection;
use std::collections::HashMap;

pub async fn create_dav_device(
    conn: &mut PgConnection,
    d: &NewDavDevice<'_>,
) -> Result<NewDevice, MetaError> {
    let user = ensure_user(conn, d.user, d.now).await?;
    let device_id: DeviceId = sqlx::query_scalar(
        "INSERT INTO devices (user_id, name, kind, token_hash, created_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(user)
    .bind(d.name)
    .bind(d.kind)
    .bind(d.token_hash)
    .bind(d.now)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO dav_roots (device_id, prefix) VALUES ($1, $2)")
        .bind(device_id)
        .bind(d.prefix.as_str())
        .execute(&mut *conn)
        .await?;
    let detail = format!("paired {:?} for WebDAV under {:?}", d.name, d.prefix.as_str());
    append_audit(conn, user, Some(device_id), d.now, "pair", None, &detail).await?;
    let user_name = user_name(conn, user).await?;
    Ok(NewDevice { device_id, user_name })
}

pub async fn dav_root(
    conn: &mut PgConnection,
    device: DeviceId,
) -> Result<Option<SavePath>, MetaError> {
    let stored: Option<String> =
        sqlx::query_scalar("SELECT prefix FROM dav_roots WHERE device_id = $1")
            .bind(device)
            .fetch_optional(conn)
            .await?;
    stored
        .map(|p| {
            SavePath::from_stored(&p)
                .map_err(|e| MetaError::Corrupt(format!("WebDAV root {p:?}: {e}")))
        })
        .transpose()
}

pub async fn last_synced_rev(
    conn: &mut PgConnection,
    device: DeviceId,
    path: &SavePath,
) -> Result<Option<Rev>, MetaError> {
    let rev: Option<Option<i64>> = sqlx::query_scalar(
        "SELECT last_synced_rev FROM device_saves WHERE device_id = $1 AND path = $2",
    )
    .bind(device)
    .bind(path.as_str())
    .fetch_optional(conn)
    .await?;
    Ok(rev.flatten().map(|r| Rev(u64::try_from(r).unwrap_or(0))))
}

pub async fn record_synced_many(
    conn: &mut PgConnection,
    actor: Actor,
    entries: &[(SavePath, Rev)],
) -> Result<(), MetaError> {
    for (path, rev) in entries {
        record_synced(conn, actor, path, *rev).await?;
    }
    Ok(())
}

pub async fn content_md5s(
    conn: &mut PgConnection,
    hashes: &[ContentHash],
) -> Result<HashMap<ContentHash, [u8; 16]>, MetaError> {
    let keys: Vec<String> = hashes.iter().map(ContentHash::to_hex).collect();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT hash, md5 FROM content_md5 WHERE hash = ANY($1)")
            .bind(&keys)
            .fetch_all(conn)
            .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for (hash, md5) in rows {
        let hash: ContentHash =
            hash.parse().map_err(|e| MetaError::Corrupt(format!("content_md5 {hash:?}: {e}")))?;
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(&md5, &mut bytes)
            .map_err(|e| MetaError::Corrupt(format!("MD5 of {hash}: {e}")))?;
        out.insert(hash, bytes);
    }
    Ok(out)
}

pub async fn record_content_md5(
    conn: &mut PgConnection,
    hash: &ContentHash,
    md5: &[u8; 16],
) -> Result<(), MetaError> {
    sqlx::query(
        "INSERT INTO content_md5 (hash, md5) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING",
    )
    .bind(hash.to_hex())
    .bind(hex::encode(md5))
    .execute(conn)
    .await?;
    Ok(())
}

/// Drop the MD5 of contents no version references any more.
pub async fn prune_content_md5(conn: &mut PgConnection) -> Result<u64, MetaError> {
    Ok(sqlx::query(
        "DELETE FROM content_md5 WHERE NOT EXISTS (
             SELECT 1 FROM versions WHERE versions.hash = content_md5.hash)",
    )
    .execute(conn)
    .await?
    .rows_affected())
}
