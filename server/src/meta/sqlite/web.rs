//! The dashboard's rows (`crate::web`): passwords, one-time login links, sessions, and the
//! cross-save query of open conflict versions.
//!
//! Secrets arrive here already hashed (SHA-256 of a 256-bit random value, or an argon2 PHC
//! string); this file never sees a plaintext. Every table a visitor can make grow is
//! trimmed where it grows: expired links when a link is added, expired sessions and a
//! per-user cap when a session is added.

use super::conflict_versions::OPEN;
use super::rows::{HEAD_COLUMNS, hash_at, path_at, save_meta, u64_at};
use crate::meta::{MetaError, OpenConflict, UserId, UserPassword, WebSession};
use crate::secrets::hashes_match;
use crate::timestamps::rfc3339;
use rusqlite::{Connection, OptionalExtension, params};
use savesync_core::Rev;
use savesync_core::wire::{HistoryEntry, VersionKind};

pub fn set_password(conn: &Connection, user: UserId, phc: &str, now: i64) -> Result<(), MetaError> {
    let exists: Option<i64> =
        conn.query_row("SELECT id FROM users WHERE id = ?1", [user], |r| r.get(0)).optional()?;
    if exists.is_none() {
        return Err(MetaError::NotFound);
    }
    conn.execute(
        "INSERT INTO user_passwords (user_id, phc, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(user_id) DO UPDATE SET phc = excluded.phc, updated_at = excluded.updated_at",
        params![user, phc, now],
    )?;
    // A new password ends every signed-in browser of that user.
    conn.execute("DELETE FROM web_sessions WHERE user_id = ?1", [user])?;
    Ok(())
}

pub fn user_password(conn: &Connection, name: &str) -> Result<Option<UserPassword>, MetaError> {
    Ok(conn
        .query_row(
            "SELECT u.id, p.phc FROM users u LEFT JOIN user_passwords p ON p.user_id = u.id
             WHERE u.name = ?1",
            [name],
            |r| Ok(UserPassword { user_id: r.get(0)?, phc: r.get(1)? }),
        )
        .optional()?)
}

pub fn add_login_link(
    conn: &Connection,
    user: UserId,
    token_hash: &str,
    expires_at: i64,
    now: i64,
) -> Result<(), MetaError> {
    conn.execute("DELETE FROM login_links WHERE expires_at < ?1 OR used_at IS NOT NULL", [now])?;
    conn.execute(
        "INSERT INTO login_links (token_hash, user_id, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![token_hash, user, now, expires_at],
    )?;
    Ok(())
}

pub fn redeem_login_link(
    conn: &Connection,
    token_hash: &str,
    now: i64,
) -> Result<Option<UserId>, MetaError> {
    let found: Option<(String, UserId)> = conn
        .query_row(
            "SELECT token_hash, user_id FROM login_links
             WHERE token_hash = ?1 AND used_at IS NULL AND expires_at >= ?2",
            params![token_hash, now],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((stored, user)) = found.filter(|(stored, _)| hashes_match(stored, token_hash)) else {
        return Ok(None);
    };
    conn.execute(
        "UPDATE login_links SET used_at = ?2 WHERE token_hash = ?1",
        params![stored, now],
    )?;
    Ok(Some(user))
}

pub fn add_web_session(
    conn: &Connection,
    user: UserId,
    id_hash: &str,
    expires_at: i64,
    max_per_user: u32,
    now: i64,
) -> Result<(), MetaError> {
    conn.execute("DELETE FROM web_sessions WHERE expires_at < ?1", [now])?;
    conn.execute(
        "INSERT INTO web_sessions (id_hash, user_id, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![id_hash, user, now, expires_at],
    )?;
    // Keep the newest `max_per_user` (ties broken by insertion order).
    conn.execute(
        "DELETE FROM web_sessions WHERE user_id = ?1 AND rowid NOT IN (
            SELECT rowid FROM web_sessions WHERE user_id = ?1
            ORDER BY created_at DESC, rowid DESC LIMIT ?2)",
        params![user, max_per_user.max(1)],
    )?;
    Ok(())
}

pub fn web_session(
    conn: &Connection,
    id_hash: &str,
    now: i64,
) -> Result<Option<WebSession>, MetaError> {
    Ok(conn
        .query_row(
            "SELECT s.id_hash, s.user_id, u.name, s.expires_at
             FROM web_sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id_hash = ?1 AND s.expires_at >= ?2",
            params![id_hash, now],
            |r| {
                Ok(WebSession {
                    id_hash: r.get(0)?,
                    user_id: r.get(1)?,
                    user_name: r.get(2)?,
                    expires_at: r.get(3)?,
                })
            },
        )
        .optional()?)
}

pub fn end_web_session(conn: &Connection, id_hash: &str) -> Result<(), MetaError> {
    conn.execute("DELETE FROM web_sessions WHERE id_hash = ?1", [id_hash])?;
    Ok(())
}

pub fn open_conflicts(
    conn: &Connection,
    user: UserId,
    limit: u32,
) -> Result<Vec<OpenConflict>, MetaError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT versions.path, versions.id, versions.rev, versions.hash, versions.size,
                versions.created_at, d.name
         FROM versions LEFT JOIN devices d ON d.id = versions.device_id
         WHERE versions.user_id = ?1 AND {OPEN}
         ORDER BY versions.id DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![user, limit], |r| {
        Ok((
            path_at(r, 0)?,
            HistoryEntry {
                version_id: r.get(1)?,
                kind: VersionKind::Conflict,
                rev: Rev(u64_at(r, 2)?),
                hash: hash_at(r, 3)?,
                size: u64_at(r, 4)?,
                created_at: rfc3339(r.get(5)?),
                device: r.get(6)?,
            },
        ))
    })?;
    let found: Vec<_> = rows.collect::<Result<_, _>>()?;
    let mut head_stmt = conn.prepare_cached(&format!(
        "SELECT {HEAD_COLUMNS} FROM saves s LEFT JOIN devices d ON d.id = s.device_id
         WHERE s.user_id = ?1 AND s.path = ?2"
    ))?;
    let mut out = Vec::with_capacity(found.len());
    for (path, version) in found {
        let head = head_stmt.query_row(params![user, path.as_str()], save_meta).optional()?;
        out.push(OpenConflict { path, version, head });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::meta::sqlite::SqliteDb;

    fn store() -> (tempfile::TempDir, SqliteDb) {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDb::open(dir.path().join("m.db")).unwrap();
        (dir, db)
    }

    #[test]
    fn a_login_link_works_once_and_not_after_it_expires() {
        let (_dir, db) = store();
        let alice = db.ensure_user("alice", 1).unwrap();
        db.add_login_link(alice, "h1", 100, 10).unwrap();
        db.add_login_link(alice, "h2", 100, 10).unwrap();
        assert_eq!(db.redeem_login_link("h1", 50).unwrap(), Some(alice));
        assert_eq!(db.redeem_login_link("h1", 50).unwrap(), None, "used twice");
        assert_eq!(db.redeem_login_link("h2", 101).unwrap(), None, "expired");
        assert_eq!(db.redeem_login_link("nope", 50).unwrap(), None);
    }

    #[test]
    fn sessions_expire_are_capped_per_user_and_end_on_a_new_password() {
        let (_dir, db) = store();
        let alice = db.ensure_user("alice", 1).unwrap();
        let bob = db.ensure_user("bob", 1).unwrap();
        for (i, hash) in ["a1", "a2", "a3"].iter().enumerate() {
            db.add_web_session(alice, hash, 1000, 2, 10 + i as i64).unwrap();
        }
        db.add_web_session(bob, "b1", 1000, 2, 20).unwrap();
        assert!(db.web_session("a1", 30).unwrap().is_none(), "the oldest beyond the cap went");
        let a3 = db.web_session("a3", 30).unwrap().unwrap();
        assert_eq!((a3.user_id, a3.user_name.as_str()), (alice, "alice"));
        assert!(db.web_session("a3", 1001).unwrap().is_none(), "expired");
        db.set_password(alice, "$argon2id$x", 40).unwrap();
        assert!(db.web_session("a2", 50).unwrap().is_none(), "a new password ends sessions");
        assert!(db.web_session("b1", 50).unwrap().is_some(), "other users keep theirs");
        db.end_web_session("b1").unwrap();
        assert!(db.web_session("b1", 50).unwrap().is_none());
        let stored = db.user_password("alice").unwrap().unwrap();
        assert_eq!(stored.phc.as_deref(), Some("$argon2id$x"));
        assert!(db.user_password("bob").unwrap().unwrap().phc.is_none());
        assert!(db.user_password("carol").unwrap().is_none());
        assert!(db.set_password(999, "x", 1).is_err(), "no such user");
    }
}
