//! Per-device state (untracked saves, last synced rev), sync sessions and the audit log on
//! Postgres (see `sqlite::activity`).

use super::rows::{get, path_at, sql_u64, u64_at};
use crate::meta::{Actor, DeviceId, MetaError, SessionRecord, SessionStart, UserId};
use crate::timestamps::rfc3339;
use savesync_core::wire::{AuditEntry, SessionReport};
use savesync_core::{Rev, SavePath};
use sqlx::PgConnection;

/// Append one audit line, inside the transaction of the operation it describes.
pub async fn append_audit(
    conn: &mut PgConnection,
    user: UserId,
    device: Option<DeviceId>,
    now: i64,
    operation: &str,
    path: Option<&str>,
    detail: &str,
) -> Result<(), MetaError> {
    sqlx::query(
        "INSERT INTO audit_log (user_id, device_id, at, operation, path, detail)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(user)
    .bind(device)
    .bind(now)
    .bind(operation)
    .bind(path)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn record_synced(
    conn: &mut PgConnection,
    actor: Actor,
    path: &SavePath,
    rev: Rev,
) -> Result<(), MetaError> {
    let Some(device) = actor.device_id else { return Ok(()) };
    sqlx::query(
        "INSERT INTO device_saves (device_id, path, last_synced_rev, updated_at)
         VALUES ($1, $2, $3, EXTRACT(EPOCH FROM now())::BIGINT)
         ON CONFLICT (device_id, path) DO UPDATE
         SET last_synced_rev = excluded.last_synced_rev, updated_at = excluded.updated_at",
    )
    .bind(device)
    .bind(path.as_str())
    .bind(sql_u64(rev.0))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn untracked(
    conn: &mut PgConnection,
    device: DeviceId,
) -> Result<Vec<SavePath>, MetaError> {
    let rows = sqlx::query(
        "SELECT path FROM device_saves WHERE device_id = $1 AND untracked ORDER BY path",
    )
    .bind(device)
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| path_at(r, 0)).collect()
}

pub async fn set_untracked(
    conn: &mut PgConnection,
    actor: Actor,
    path: &SavePath,
    untracked: bool,
    now: i64,
) -> Result<(), MetaError> {
    let Some(device) = actor.device_id else { return Ok(()) };
    sqlx::query(
        "INSERT INTO device_saves (device_id, path, untracked, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (device_id, path) DO UPDATE
         SET untracked = excluded.untracked, updated_at = excluded.updated_at",
    )
    .bind(device)
    .bind(path.as_str())
    .bind(untracked)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let (operation, detail) =
        if untracked { ("untrack", "device opted out") } else { ("track", "device opted back in") };
    append_audit(conn, actor.user_id, Some(device), now, operation, Some(path.as_str()), detail)
        .await
}

pub async fn start_session(conn: &mut PgConnection, s: &SessionStart) -> Result<i64, MetaError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO sync_sessions (user_id, device_id, started_at, cursor, manifest_entries,
                                    planned_actions)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(s.actor.user_id)
    .bind(s.actor.device_id)
    .bind(s.now)
    .bind(sql_u64(s.cursor.0))
    .bind(sql_u64(s.manifest_entries))
    .bind(sql_u64(s.planned_actions))
    .fetch_one(&mut *conn)
    .await?;
    let detail = format!(
        "session {id}: {} manifest entries, {} actions planned",
        s.manifest_entries, s.planned_actions
    );
    append_audit(conn, s.actor.user_id, s.actor.device_id, s.now, "negotiate", None, &detail)
        .await?;
    Ok(id)
}

pub async fn complete_session(
    conn: &mut PgConnection,
    actor: Actor,
    session: i64,
    r: &SessionReport,
    now: i64,
) -> Result<bool, MetaError> {
    let changed = sqlx::query(
        "UPDATE sync_sessions SET completed_at = $4, uploaded = $5, downloaded = $6, deleted = $7,
                                  conflicts = $8, errors = $9
         WHERE id = $1 AND user_id = $2 AND device_id IS NOT DISTINCT FROM $3
           AND completed_at IS NULL",
    )
    .bind(session)
    .bind(actor.user_id)
    .bind(actor.device_id)
    .bind(now)
    .bind(sql_u64(r.uploaded))
    .bind(sql_u64(r.downloaded))
    .bind(sql_u64(r.deleted))
    .bind(sql_u64(r.conflicts))
    .bind(sql_u64(r.errors))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if changed == 0 {
        // Either not this device's session, or already completed (a retried report).
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sync_sessions
                            WHERE id = $1 AND user_id = $2
                              AND device_id IS NOT DISTINCT FROM $3)",
        )
        .bind(session)
        .bind(actor.user_id)
        .bind(actor.device_id)
        .fetch_one(&mut *conn)
        .await?;
        return Ok(exists);
    }
    let detail = format!(
        "session {session}: uploaded {}, downloaded {}, deleted {}, conflicts {}, errors {}",
        r.uploaded, r.downloaded, r.deleted, r.conflicts, r.errors
    );
    append_audit(conn, actor.user_id, actor.device_id, now, "session_complete", None, &detail)
        .await?;
    Ok(true)
}

pub async fn sessions(
    conn: &mut PgConnection,
    user: UserId,
) -> Result<Vec<SessionRecord>, MetaError> {
    let rows = sqlx::query(
        "SELECT id, device_id, started_at, manifest_entries, planned_actions, completed_at,
                uploaded, downloaded, deleted, conflicts, errors
         FROM sync_sessions WHERE user_id = $1 ORDER BY id",
    )
    .bind(user)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let completed = match get::<Option<i64>>(r, 5)? {
                None => None,
                Some(at) => Some((
                    at,
                    SessionReport {
                        uploaded: u64_at(r, 6)?,
                        downloaded: u64_at(r, 7)?,
                        deleted: u64_at(r, 8)?,
                        conflicts: u64_at(r, 9)?,
                        errors: u64_at(r, 10)?,
                    },
                )),
            };
            Ok(SessionRecord {
                id: get(r, 0)?,
                device_id: get(r, 1)?,
                started_at: get(r, 2)?,
                manifest_entries: u64_at(r, 3)?,
                planned_actions: u64_at(r, 4)?,
                completed,
            })
        })
        .collect()
}

pub async fn prune_sessions(
    conn: &mut PgConnection,
    completed_before: i64,
    open_before: i64,
) -> Result<u64, MetaError> {
    Ok(sqlx::query(
        "DELETE FROM sync_sessions
         WHERE (completed_at IS NOT NULL AND completed_at < $1)
            OR (completed_at IS NULL AND started_at < $2)",
    )
    .bind(completed_before)
    .bind(open_before)
    .execute(conn)
    .await?
    .rows_affected())
}

pub async fn audit(
    conn: &mut PgConnection,
    user: UserId,
    limit: u32,
) -> Result<Vec<AuditEntry>, MetaError> {
    let rows = sqlx::query(
        "SELECT a.id, a.at, d.name, a.operation, a.path, a.detail
         FROM audit_log a LEFT JOIN devices d ON d.id = a.device_id
         WHERE a.user_id = $1 ORDER BY a.id DESC LIMIT $2",
    )
    .bind(user)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditEntry {
                id: get(r, 0)?,
                at: rfc3339(get(r, 1)?),
                device: get(r, 2)?,
                operation: get(r, 3)?,
                path: get(r, 4)?,
                detail: get(r, 5)?,
            })
        })
        .collect()
}
