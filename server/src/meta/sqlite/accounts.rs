//! Users, devices and pairing codes.

use super::activity::append_audit;
use super::rows::u64_at;
use crate::meta::{AdminDevice, DeviceAuth, DeviceId, MetaError, NewDevice, UserId, UserSummary};
use crate::timestamps::rfc3339;
use rusqlite::{Connection, OptionalExtension, Row, params};
use savesync_core::Seq;
use savesync_core::wire::DeviceInfo;

pub fn ensure_user(conn: &Connection, name: &str, now: i64) -> Result<UserId, MetaError> {
    conn.execute(
        "INSERT INTO users (name, created_at) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
        params![name, now],
    )?;
    Ok(conn.query_row("SELECT id FROM users WHERE name = ?1", [name], |r| r.get(0))?)
}

pub fn add_pairing_code(
    conn: &Connection,
    user: UserId,
    code_hash: &str,
    expires_at: i64,
    by_device: Option<DeviceId>,
    now: i64,
) -> Result<(), MetaError> {
    // Expired codes are dead weight; sweeping them here keeps the table tiny.
    conn.execute("DELETE FROM pairing_codes WHERE expires_at < ?1", [now - 86_400])?;
    conn.execute(
        "INSERT INTO pairing_codes (code_hash, user_id, created_at, expires_at, created_by_device)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![code_hash, user, now, expires_at, by_device],
    )?;
    append_audit(conn, user, by_device, now, "pairing_code", None, "issued a pairing code")?;
    Ok(())
}

pub fn redeem_pairing_code(
    conn: &Connection,
    code_hash: &str,
    device_name: &str,
    device_kind: &str,
    token_hash: &str,
    now: i64,
) -> Result<NewDevice, MetaError> {
    let found: Option<(UserId, i64, Option<i64>)> = conn
        .query_row(
            "SELECT user_id, expires_at, used_at FROM pairing_codes WHERE code_hash = ?1",
            [code_hash],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let user = match found {
        Some((user, expires_at, None)) if expires_at > now => user,
        _ => return Err(MetaError::PairingCodeInvalid),
    };
    conn.execute(
        "UPDATE pairing_codes SET used_at = ?2 WHERE code_hash = ?1",
        params![code_hash, now],
    )?;
    conn.execute(
        "INSERT INTO devices (user_id, name, kind, token_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![user, device_name, device_kind, token_hash, now],
    )?;
    let device_id = conn.last_insert_rowid();
    append_audit(
        conn,
        user,
        Some(device_id),
        now,
        "pair",
        None,
        &format!("paired {device_name:?}"),
    )?;
    let user_name = conn.query_row("SELECT name FROM users WHERE id = ?1", [user], |r| r.get(0))?;
    Ok(NewDevice { device_id, user_name })
}

pub fn device_by_token_hash(
    conn: &Connection,
    token_hash: &str,
) -> Result<Option<DeviceAuth>, MetaError> {
    Ok(conn
        .query_row(
            "SELECT d.id, d.name, u.id, u.name, d.revoked_at IS NOT NULL, d.token_hash
             FROM devices d JOIN users u ON u.id = d.user_id WHERE d.token_hash = ?1",
            [token_hash],
            |r| {
                Ok(DeviceAuth {
                    device_id: r.get(0)?,
                    device_name: r.get(1)?,
                    user_id: r.get(2)?,
                    user_name: r.get(3)?,
                    revoked: r.get(4)?,
                    token_hash: r.get(5)?,
                })
            },
        )
        .optional()?)
}

pub fn touch_device(conn: &Connection, device: DeviceId, now: i64) -> Result<(), MetaError> {
    conn.execute("UPDATE devices SET last_seen_at = ?2 WHERE id = ?1", params![device, now])?;
    Ok(())
}

const DEVICE_COLUMNS: &str =
    "d.id, d.name, d.kind, d.created_at, d.last_seen_at, d.revoked_at IS NOT NULL";

fn device_info(r: &Row<'_>) -> rusqlite::Result<DeviceInfo> {
    Ok(DeviceInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: r.get(2)?,
        created_at: rfc3339(r.get(3)?),
        last_seen_at: r.get::<_, Option<i64>>(4)?.map(rfc3339),
        revoked: r.get(5)?,
        current: false,
    })
}

pub fn list_devices(conn: &Connection, user: UserId) -> Result<Vec<DeviceInfo>, MetaError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.user_id = ?1 ORDER BY d.id"
    ))?;
    let rows = stmt.query_map([user], device_info)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn revoke_device(
    conn: &Connection,
    user: Option<UserId>,
    device: DeviceId,
    now: i64,
) -> Result<bool, MetaError> {
    let owner: Option<UserId> = conn
        .query_row(
            "SELECT user_id FROM devices WHERE id = ?1 AND (?2 IS NULL OR user_id = ?2)",
            params![device, user],
            |r| r.get(0),
        )
        .optional()?;
    let Some(owner) = owner else { return Ok(false) };
    conn.execute(
        "UPDATE devices SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
        params![device, now],
    )?;
    append_audit(
        conn,
        owner,
        Some(device),
        now,
        "revoke",
        None,
        &format!("revoked device {device}"),
    )?;
    Ok(true)
}

pub fn admin_devices(
    conn: &Connection,
    user_name: Option<&str>,
) -> Result<Vec<AdminDevice>, MetaError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {DEVICE_COLUMNS}, u.name FROM devices d JOIN users u ON u.id = d.user_id
         WHERE ?1 IS NULL OR u.name = ?1 ORDER BY u.name, d.id"
    ))?;
    let rows = stmt.query_map([user_name], |r| {
        Ok(AdminDevice { info: device_info(r)?, user_name: r.get(6)? })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn admin_users(conn: &Connection) -> Result<Vec<UserSummary>, MetaError> {
    let mut stmt = conn.prepare(
        "SELECT u.name,
                (SELECT COUNT(*) FROM devices d WHERE d.user_id = u.id),
                (SELECT COUNT(*) FROM saves s WHERE s.user_id = u.id AND s.deleted = 0),
                u.seq
         FROM users u ORDER BY u.name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(UserSummary {
            name: r.get(0)?,
            devices: u64_at(r, 1)?,
            saves: u64_at(r, 2)?,
            seq: Seq(u64_at(r, 3)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use crate::meta::sqlite::SqliteMeta;
    use crate::meta::{MetaError, MetaStore};

    fn store() -> (tempfile::TempDir, SqliteMeta) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteMeta::open(dir.path().join("t.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn pairing_code_works_once_and_creates_a_device_with_the_token_hash() {
        let (_dir, s) = store();
        let user = s.ensure_user("alice", 100).unwrap();
        s.add_pairing_code(user, "code-hash", 200, None, 100).unwrap();
        let device =
            s.redeem_pairing_code("code-hash", "deck", "handheld", "tok-hash", 150).unwrap();
        assert_eq!(device.user_name, "alice");
        let auth = s.device_by_token_hash("tok-hash").unwrap().unwrap();
        assert_eq!((auth.device_id, auth.user_id, auth.revoked), (device.device_id, user, false));
        let again = s.redeem_pairing_code("code-hash", "deck2", "", "tok-hash-2", 151);
        assert!(matches!(again, Err(MetaError::PairingCodeInvalid)));
        assert!(s.device_by_token_hash("tok-hash-2").unwrap().is_none());
    }

    #[test]
    fn expired_or_unknown_pairing_code_is_refused() {
        let (_dir, s) = store();
        let user = s.ensure_user("alice", 100).unwrap();
        s.add_pairing_code(user, "code-hash", 200, None, 100).unwrap();
        let late = s.redeem_pairing_code("code-hash", "deck", "", "tok", 200);
        assert!(matches!(late, Err(MetaError::PairingCodeInvalid)));
        let unknown = s.redeem_pairing_code("other", "deck", "", "tok", 150);
        assert!(matches!(unknown, Err(MetaError::PairingCodeInvalid)));
    }

    #[test]
    fn ensure_user_is_idempotent() {
        let (_dir, s) = store();
        assert_eq!(s.ensure_user("bob", 1).unwrap(), s.ensure_user("bob", 2).unwrap());
    }

    #[test]
    fn revoke_is_scoped_to_the_owner_and_marks_the_device() {
        let (_dir, s) = store();
        let alice = s.ensure_user("alice", 1).unwrap();
        let bob = s.ensure_user("bob", 1).unwrap();
        s.add_pairing_code(alice, "c", 100, None, 1).unwrap();
        let d = s.redeem_pairing_code("c", "deck", "", "t", 2).unwrap();
        assert!(!s.revoke_device(Some(bob), d.device_id, 3).unwrap());
        assert!(s.revoke_device(Some(alice), d.device_id, 3).unwrap());
        assert!(s.device_by_token_hash("t").unwrap().unwrap().revoked);
        assert!(s.list_devices(alice).unwrap()[0].revoked);
    }
}
