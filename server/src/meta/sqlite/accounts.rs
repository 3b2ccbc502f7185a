//! Users, devices and pairing codes: pairing (with the per-code wrong-guess budget and the
//! minting device's revocation checked inside the transaction), revocation (which also drops
//! the codes the device minted), and the revoked-flag checks writes run in their transaction.

use super::activity::append_audit;
use super::rows::u64_at;
use crate::meta::{
    AdminDevice, DeviceAuth, DeviceId, MetaError, NewDevice, NewDeviceInfo, UserId, UserSummary,
};
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
    if let Some(device) = by_device {
        // Inside the transaction: a mint racing the device's revocation cannot survive it.
        ensure_not_revoked(conn, device)?;
    }
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

/// One attempt to redeem a pairing code.
#[derive(Debug)]
pub struct Redeem<'a> {
    pub code_hash: &'a str,
    pub device: &'a NewDeviceInfo<'a>,
    pub token_hash: &'a str,
    pub max_wrong_guesses: u32,
    pub now: i64,
}

/// `None` when the code is refused; the wrong guess is then counted against every live
/// code, and the caller must still commit.
pub fn redeem_pairing_code(
    conn: &Connection,
    attempt: &Redeem<'_>,
) -> Result<Option<NewDevice>, MetaError> {
    let now = attempt.now;
    let user: Option<UserId> = conn
        .query_row(
            "SELECT c.user_id FROM pairing_codes c
             LEFT JOIN devices minter ON minter.id = c.created_by_device
             WHERE c.code_hash = ?1 AND c.used_at IS NULL AND c.expires_at > ?2
               AND c.wrong_guesses < ?3
               AND (c.created_by_device IS NULL
                    OR (minter.id IS NOT NULL AND minter.revoked_at IS NULL))",
            params![attempt.code_hash, now, attempt.max_wrong_guesses],
            |r| r.get(0),
        )
        .optional()?;
    let Some(user) = user else {
        conn.execute(
            "UPDATE pairing_codes SET wrong_guesses = wrong_guesses + 1
             WHERE used_at IS NULL AND expires_at > ?1",
            [now],
        )?;
        return Ok(None);
    };
    conn.execute(
        "UPDATE pairing_codes SET used_at = ?2 WHERE code_hash = ?1",
        params![attempt.code_hash, now],
    )?;
    let NewDeviceInfo { name, kind } = *attempt.device;
    conn.execute(
        "INSERT INTO devices (user_id, name, kind, token_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![user, name, kind, attempt.token_hash, now],
    )?;
    let device_id = conn.last_insert_rowid();
    append_audit(conn, user, Some(device_id), now, "pair", None, &format!("paired {name:?}"))?;
    let user_name = conn.query_row("SELECT name FROM users WHERE id = ?1", [user], |r| r.get(0))?;
    Ok(Some(NewDevice { device_id, user_name }))
}

pub fn device_revoked(conn: &Connection, device: DeviceId) -> Result<bool, MetaError> {
    let revoked: Option<bool> = conn
        .prepare_cached("SELECT revoked_at IS NOT NULL FROM devices WHERE id = ?1")?
        .query_row([device], |r| r.get(0))
        .optional()?;
    Ok(revoked.unwrap_or(true))
}

/// `DeviceRevoked` unless `device` exists and is not revoked. Writes on behalf of a device
/// call this inside their transaction, so a revocation that commits first always wins.
pub fn ensure_not_revoked(conn: &Connection, device: DeviceId) -> Result<(), MetaError> {
    if device_revoked(conn, device)? { Err(MetaError::DeviceRevoked) } else { Ok(()) }
}

pub fn device_by_token_hash(
    conn: &Connection,
    token_hash: &str,
) -> Result<Option<DeviceAuth>, MetaError> {
    // Every request authenticates: the statement comes from the cache.
    Ok(conn
        .prepare_cached(
            "SELECT d.id, d.name, u.id, u.name, d.revoked_at IS NOT NULL, d.token_hash
             FROM devices d JOIN users u ON u.id = d.user_id WHERE d.token_hash = ?1",
        )?
        .query_row([token_hash], |r| {
            Ok(DeviceAuth {
                device_id: r.get(0)?,
                device_name: r.get(1)?,
                user_id: r.get(2)?,
                user_name: r.get(3)?,
                revoked: r.get(4)?,
                token_hash: r.get(5)?,
            })
        })
        .optional()?)
}

pub fn touch_device(conn: &Connection, device: DeviceId, now: i64) -> Result<(), MetaError> {
    conn.prepare_cached("UPDATE devices SET last_seen_at = ?2 WHERE id = ?1")?
        .execute(params![device, now])?;
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
    // Codes the device minted must not let anyone in after it is gone.
    conn.execute(
        "DELETE FROM pairing_codes WHERE created_by_device = ?1 AND used_at IS NULL",
        [device],
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
    use crate::meta::sqlite::SqliteDb;
    use crate::meta::{MetaError, NewDeviceInfo};

    const BUDGET: u32 = 1000;

    fn store() -> (tempfile::TempDir, SqliteDb) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteDb::open(dir.path().join("t.db")).unwrap();
        (dir, store)
    }

    fn named(name: &str) -> NewDeviceInfo<'_> {
        NewDeviceInfo { name, kind: "handheld" }
    }

    fn redeem(
        s: &SqliteDb,
        code: &str,
        token: &str,
        now: i64,
    ) -> Result<crate::meta::NewDevice, MetaError> {
        s.redeem_pairing_code(code, &named("deck"), token, BUDGET, now)
    }

    #[test]
    fn pairing_code_works_once_and_creates_a_device_with_the_token_hash() {
        let (_dir, s) = store();
        let user = s.ensure_user("alice", 100).unwrap();
        s.add_pairing_code(user, "code-hash", 200, None, 100).unwrap();
        let device = redeem(&s, "code-hash", "tok-hash", 150).unwrap();
        assert_eq!(device.user_name, "alice");
        let auth = s.device_by_token_hash("tok-hash").unwrap().unwrap();
        assert_eq!((auth.device_id, auth.user_id, auth.revoked), (device.device_id, user, false));
        let again = redeem(&s, "code-hash", "tok-hash-2", 151);
        assert!(matches!(again, Err(MetaError::PairingCodeInvalid)));
        assert!(s.device_by_token_hash("tok-hash-2").unwrap().is_none());
    }

    #[test]
    fn expired_or_unknown_pairing_code_is_refused() {
        let (_dir, s) = store();
        let user = s.ensure_user("alice", 100).unwrap();
        s.add_pairing_code(user, "code-hash", 200, None, 100).unwrap();
        let late = redeem(&s, "code-hash", "tok", 200);
        assert!(matches!(late, Err(MetaError::PairingCodeInvalid)));
        let unknown = redeem(&s, "other", "tok", 150);
        assert!(matches!(unknown, Err(MetaError::PairingCodeInvalid)));
    }

    #[test]
    fn a_code_dies_after_its_budget_of_wrong_guesses_but_later_codes_do_not() {
        let (_dir, s) = store();
        let user = s.ensure_user("alice", 1).unwrap();
        s.add_pairing_code(user, "old", 100, None, 1).unwrap();
        for n in 0..3 {
            let wrong = s.redeem_pairing_code(&format!("guess-{n}"), &named("x"), "t", 3, 2);
            assert!(matches!(wrong, Err(MetaError::PairingCodeInvalid)));
        }
        s.add_pairing_code(user, "new", 100, None, 3).unwrap();
        let old = s.redeem_pairing_code("old", &named("a"), "t1", 3, 4);
        assert!(matches!(old, Err(MetaError::PairingCodeInvalid)), "{old:?}");
        s.redeem_pairing_code("new", &named("b"), "t2", 3, 4).unwrap();
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
        let d = redeem(&s, "c", "t", 2).unwrap();
        assert!(!s.device_revoked(d.device_id).unwrap());
        assert!(!s.revoke_device(Some(bob), d.device_id, 3).unwrap());
        assert!(s.revoke_device(Some(alice), d.device_id, 3).unwrap());
        assert!(s.device_by_token_hash("t").unwrap().unwrap().revoked);
        assert!(s.list_devices(alice).unwrap()[0].revoked);
        assert!(s.device_revoked(d.device_id).unwrap());
        assert!(s.device_revoked(9999).unwrap(), "an unknown device counts as revoked");
    }

    #[test]
    fn codes_minted_by_a_revoked_device_stop_working_and_it_cannot_mint_more() {
        let (_dir, s) = store();
        let alice = s.ensure_user("alice", 1).unwrap();
        s.add_pairing_code(alice, "admin-code", 100, None, 1).unwrap();
        let deck = redeem(&s, "admin-code", "t", 2).unwrap();
        s.add_pairing_code(alice, "minted", 100, Some(deck.device_id), 3).unwrap();
        assert!(s.revoke_device(None, deck.device_id, 4).unwrap());
        let used = redeem(&s, "minted", "t2", 5);
        assert!(matches!(used, Err(MetaError::PairingCodeInvalid)), "{used:?}");
        let mint = s.add_pairing_code(alice, "late", 100, Some(deck.device_id), 6);
        assert!(matches!(mint, Err(MetaError::DeviceRevoked)), "{mint:?}");
    }
}
