//! Per-device state (untracked saves, last synced rev), sync sessions (opened by negotiate,
//! completed by the device's report, pruned by age) and the audit log.

use super::rows::{path_at, sql_u64, u64_at};
use crate::meta::{Actor, DeviceId, MetaError, SessionRecord, SessionStart, UserId};
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
        "UPDATE sync_sessions SET completed_at = ?4, uploaded = ?5, downloaded = ?6, deleted = ?7,
                                  conflicts = ?8, errors = ?9
         WHERE id = ?1 AND user_id = ?2 AND device_id IS ?3 AND completed_at IS NULL",
        params![
            session,
            actor.user_id,
            actor.device_id,
            now,
            sql_u64(r.uploaded),
            sql_u64(r.downloaded),
            sql_u64(r.deleted),
            sql_u64(r.conflicts),
            sql_u64(r.errors)
        ],
    )?;
    if changed == 0 {
        // Either not this device's session, or already completed (a retried report).
        let exists = conn
            .prepare_cached(
                "SELECT 1 FROM sync_sessions WHERE id = ?1 AND user_id = ?2 AND device_id IS ?3",
            )?
            .exists(params![session, actor.user_id, actor.device_id])?;
        return Ok(exists);
    }
    let detail = format!(
        "session {session}: uploaded {}, downloaded {}, deleted {}, conflicts {}, errors {}",
        r.uploaded, r.downloaded, r.deleted, r.conflicts, r.errors
    );
    append_audit(conn, actor.user_id, actor.device_id, now, "session_complete", None, &detail)?;
    Ok(true)
}

pub fn sessions(conn: &Connection, user: UserId) -> Result<Vec<SessionRecord>, MetaError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, device_id, started_at, manifest_entries, planned_actions, completed_at,
                uploaded, downloaded, deleted, conflicts, errors
         FROM sync_sessions WHERE user_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([user], |r| {
        let completed_at: Option<i64> = r.get(5)?;
        let completed = match completed_at {
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
            id: r.get(0)?,
            device_id: r.get(1)?,
            started_at: r.get(2)?,
            manifest_entries: u64_at(r, 3)?,
            planned_actions: u64_at(r, 4)?,
            completed,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Sessions are a record of what devices did, kept for a while; see
/// `config.session_keep` and `config.open_session_keep`.
pub fn prune_sessions(
    conn: &Connection,
    completed_before: i64,
    open_before: i64,
) -> Result<u64, MetaError> {
    let removed = conn.execute(
        "DELETE FROM sync_sessions
         WHERE (completed_at IS NOT NULL AND completed_at < ?1)
            OR (completed_at IS NULL AND started_at < ?2)",
        params![completed_before, open_before],
    )?;
    Ok(removed as u64)
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

#[cfg(test)]
mod tests {
    use crate::meta::sqlite::SqliteDb;
    use crate::meta::{Actor, SessionStart};
    use savesync_core::Seq;
    use savesync_core::wire::SessionReport;

    /// Sessions started at `started` and completed at `completed` (if any), then pruned with
    /// completed ones kept 100 s and open ones 10 s, at time 1000.
    #[test]
    fn pruning_keeps_completed_sessions_longer_than_open_ones() {
        let dir = tempfile::tempdir().unwrap();
        let meta = SqliteDb::open(dir.path().join("db")).unwrap();
        let user = meta.ensure_user("alice", 0).unwrap();
        let actor = Actor { user_id: user, device_id: None };
        // (started_at, completed_at, kept)
        let table = [
            (995, None, true),       // open, 5 s old
            (989, None, false),      // open, 11 s old
            (100, Some(950), true),  // completed 50 s ago
            (100, Some(899), false), // completed 101 s ago
            (980, Some(985), true),  // completed recently, started long enough ago for an open one
        ];
        let mut kept = Vec::new();
        for (started, completed, keep) in table {
            let start = SessionStart {
                actor,
                manifest_entries: 1,
                planned_actions: 0,
                cursor: Seq(0),
                now: started,
            };
            let id = meta.start_session(&start).unwrap();
            if let Some(at) = completed {
                assert!(meta.complete_session(actor, id, &SessionReport::default(), at).unwrap());
            }
            if keep {
                kept.push(id);
            }
        }
        assert_eq!(meta.prune_sessions(1000 - 100, 1000 - 10).unwrap(), 2);
        let left: Vec<i64> = meta.sessions(user).unwrap().iter().map(|s| s.id).collect();
        assert_eq!(left, kept);
    }
}
