//! Conflict versions on Postgres: the bytes of an upload that lost its compare-and-swap,
//! kept in the save's history. The rules (when a conflict version is open, the per-save
//! cap and which ones thinning drops) are those of `sqlite::conflict_versions`, whose pure
//! [`to_thin`] policy is shared.

use super::activity::append_audit;
use super::rows::sql_u64;
use crate::meta::sqlite::conflict_versions::to_thin;
use crate::meta::{CommitRequest, MetaError};
use savesync_core::ContentHash;
use sqlx::PgConnection;

/// SQL condition on a row of `versions` (unaliased): true while it is an open conflict
/// version (no later commit of the same save by the same device).
pub const OPEN: &str = "(versions.kind = 'conflict' AND NOT EXISTS (
    SELECT 1 FROM versions AS closer
    WHERE closer.user_id = versions.user_id AND closer.path = versions.path
      AND closer.kind = 'commit'
      AND closer.device_id IS NOT DISTINCT FROM versions.device_id
      AND closer.id > versions.id))";

/// Keep the rejected upload `req` as a conflict version, unless the newest conflict
/// version this device stored for the save already holds the same bytes; then thin.
pub async fn keep(
    conn: &mut PgConnection,
    req: &CommitRequest,
    hash: ContentHash,
    size: u64,
    head_rev: savesync_core::Rev,
    cap: u32,
) -> Result<(), MetaError> {
    let (user, device, path) = (req.actor.user_id, req.actor.device_id, req.path.as_str());
    let newest_of_device: Option<Option<String>> = sqlx::query_scalar(
        "SELECT hash FROM versions
         WHERE user_id = $1 AND path = $2 AND kind = 'conflict'
           AND device_id IS NOT DISTINCT FROM $3
         ORDER BY id DESC LIMIT 1",
    )
    .bind(user)
    .bind(path)
    .bind(device)
    .fetch_optional(&mut *conn)
    .await?;
    if newest_of_device.flatten().as_deref() == Some(hash.to_hex().as_str()) {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO versions (user_id, path, kind, rev, seq, hash, size, device_id, created_at)
         VALUES ($1, $2, 'conflict', $3, NULL, $4, $5, $6, $7)",
    )
    .bind(user)
    .bind(path)
    .bind(sql_u64(req.base_rev.0))
    .bind(hash.to_hex())
    .bind(sql_u64(size))
    .bind(device)
    .bind(req.now)
    .execute(&mut *conn)
    .await?;
    let detail = format!("base rev {} is not head rev {head_rev}; kept as conflict", req.base_rev);
    append_audit(conn, user, device, req.now, "conflict", Some(path), &detail).await?;
    thin(conn, req, cap).await
}

async fn thin(conn: &mut PgConnection, req: &CommitRequest, cap: u32) -> Result<(), MetaError> {
    let (user, path) = (req.actor.user_id, req.path.as_str());
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM versions WHERE user_id = $1 AND path = $2 AND kind = 'conflict'
         ORDER BY id",
    )
    .bind(user)
    .bind(path)
    .fetch_all(&mut *conn)
    .await?;
    let drop = &ids[to_thin(ids.len(), cap as usize)];
    if drop.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM versions WHERE id = ANY($1)").bind(drop).execute(&mut *conn).await?;
    let detail = format!("{} oldest conflict versions dropped (cap {cap})", drop.len());
    append_audit(conn, user, req.actor.device_id, req.now, "conflict_cap", Some(path), &detail)
        .await
}
