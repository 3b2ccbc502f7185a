//! Per-device state (untracked saves, last synced rev), sync sessions and the audit log.

use super::rows::{path_at, sql_u64};
use crate::meta::{Actor, DeviceId, MetaError, SessionStart, UserId};
use crate::timestamps::rfc3339;
use rusqlite::{Connection, params};
use savesync_core::wire::{AuditEntry, SessionReport};
use savesync_core::{Rev, SavePath};

/// Append one audit line. Called inside the transaction of the operation it describes, so
/// the log never claims something that was rolled back.
pub fn append_audit(
    conn: &Connection,
    user: UserId,
    device: Option<DeviceId>,
    now: i64,
    operation: &str,
    path: Option<&str>,
    detail: &str,
) -> Result<(), MetaError> {
    conn.prepare_cached(
        "INSERT INTO audit_log (user_id, device_id, at, operation, path, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![user, device, now, operation, path, detail])?;
    Ok(())
}

pub fn record_synced(
    conn: &Connection,
    actor: Actor,
    path: &SavePath,
    rev: Rev,
) -> Result<(), MetaError> {
    let Some(device) = actor.device_id else { return Ok(()) };
    conn.prepare_cached(
        "INSERT INTO device_saves (device_id, path, last_synced_rev, updated_at)
         VALUES (?1, ?2, ?3, strftime('%s','now'))
         ON CONFLICT(device_id, path) DO UPDATE
         SET last_synced_rev = excluded.last_synced_rev, updated_at = excluded.updated_at",
    )?
    .execute(params![device, path.as_str(), sql_u64(rev.0)])?;
    Ok(())
}

pub fn untracked(conn: &Connection, device: DeviceId) -> Result<Vec<SavePath>, MetaError> {
    let mut stmt = conn.prepare_cached(
        "SELECT path FROM device_saves WHERE device_id = ?1 AND untracked = 1 ORDER BY path",
    )?;
    let rows = stmt.query_map([device], |r| path_at(r, 0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn set_untracked(
    conn: &Connection,
    actor: Actor,
    path: &SavePath,
    untracked: bool,
    now: i64,
) -> Result<(), MetaError> {
    let Some(device) = actor.device_id else { return Ok(()) };
    conn.execute(
        "INSERT INTO device_saves (device_id, path, untracked, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(device_id, path) DO UPDATE
         SET untracked = excluded.untracked, updated_at = excluded.updated_at",
        params![device, path.as_str(), untracked, now],
    )?;
    let (operation, detail) =
        if untracked { ("untrack", "device opted out") } else { ("track", "device opted back in") };
    append_audit(conn, actor.user_id, Some(device), now, operation, Some(path.as_str()), detail)
}

pub fn start_session(conn: &Connection, s: &SessionStart) -> Result<i64, MetaError> {
    conn.execute(
        "INSERT INTO sync_sessions (user_id, device_id, started_at, cursor, manifest_entries,
                                    planned_actions)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            s.actor.user_id,
            s.actor.device_id,
            s.now,
            sql_u64(s.cursor.0),
            sql_u64(s.manifest_entries),
            sql_u64(s.planned_actions)
        ],
    )?;
    let id = conn.last_insert_rowid();
    let detail = format!(
        "session {id}: {} manifest entries, {} actions planned",
        s.manifest_entries, s.planned_actions
    );
    append_audit(conn, s.actor.user_id, s.actor.device_id, s.now, "negotiate", None, &detail)?;
    Ok(id)
}

pub fn complete_session(
    conn: &Connection,
    actor: Actor,
    session: i64,
    r: &SessionReport,
    now: i64,
) -> Result<bool, MetaError> {
    let changed = conn.execute(
        "UPDATE sync_sessions SET completed_at = ?3, uploaded = ?4, downloaded = ?5, deleted = ?6,
                                  conflicts = ?7, errors = ?8
         WHERE id = ?1 AND user_id = ?2",
        params![
            session,
            actor.user_id,
            now,
            sql_u64(r.uploaded),
            sql_u64(r.downloaded),
            sql_u64(r.deleted),
            sql_u64(r.conflicts),
            sql_u64(r.errors)
        ],
    )?;
    if changed == 0 {
        return Ok(false);
    }
    let detail = format!(
        "session {session}: uploaded {}, downloaded {}, deleted {}, conflicts {}, errors {}",
        r.uploaded, r.downloaded, r.deleted, r.conflicts, r.errors
    );
    append_audit(conn, actor.user_id, actor.device_id, now, "session_complete", None, &detail)?;
    Ok(true)
}

pub fn audit(conn: &Connection, user: UserId, limit: u32) -> Result<Vec<AuditEntry>, MetaError> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.id, a.at, d.name, a.operation, a.path, a.detail
         FROM audit_log a LEFT JOIN devices d ON d.id = a.device_id
         WHERE a.user_id = ?1 ORDER BY a.id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![user, limit], |r| {
        Ok(AuditEntry {
            id: r.get(0)?,
            at: rfc3339(r.get(1)?),
            device: r.get(2)?,
            operation: r.get(3)?,
            path: r.get(4)?,
            detail: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
