//! Users, devices and pairing codes on Postgres (see `sqlite::accounts` for the rules).
//! A code is used up by one conditional `UPDATE ... RETURNING`, so of two processes
//! redeeming it at once exactly one gets the device; device checks inside a write take a
//! share lock on the device row, so a revocation waits for (or wins against) the write.

use super::activity::append_audit;
use super::rows::{get, u64_at};
use crate::meta::{
    AdminDevice, DeviceAuth, DeviceId, MetaError, NewDevice, NewDeviceInfo, UserId, UserSummary,
};
use crate::timestamps::rfc3339;
use savesync_core::Seq;
use savesync_core::wire::DeviceInfo;
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

pub async fn ensure_user(
    conn: &mut PgConnection,
    name: &str,
    now: i64,
) -> Result<UserId, MetaError> {
    sqlx::query(
        "INSERT INTO users (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(sqlx::query_scalar("SELECT id FROM users WHERE name = $1")
        .bind(name)
        .fetch_one(conn)
        .await?)
}

pub async fn add_pairing_code(
    conn: &mut PgConnection,
    user: UserId,
    code_hash: &str,
    expires_at: i64,
    by_device: Option<DeviceId>,
    now: i64,
) -> Result<(), MetaError> {
    if let Some(device) = by_device {
        // Inside the transaction: a mint racing the device's revocation cannot survive it.
        ensure_not_revoked(conn, device).await?;
    }
    sqlx::query("DELETE FROM pairing_codes WHERE expires_at < $1")
        .bind(now - 86_400)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO pairing_codes (code_hash, user_id, created_at, expires_at, created_by_device)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(code_hash)
    .bind(user)
    .bind(now)
    .bind(expires_at)
    .bind(by_device)
    .execute(&mut *conn)
    .await?;
    append_audit(conn, user, by_device, now, "pairing_code", None, "issued a pairing code").await
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
pub async fn redeem_pairing_code(
    conn: &mut PgConnection,
    attempt: &Redeem<'_>,
) -> Result<Option<NewDevice>, MetaError> {
    let now = attempt.now;
    // Row-locking and re-checked under the lock: a concurrent redeemer of the same code
    // waits, then finds it used.
    let user: Option<UserId> = sqlx::query_scalar(
        "UPDATE pairing_codes c SET used_at = $2
         WHERE c.code_hash = $1 AND c.used_at IS NULL AND c.expires_at > $2
           AND c.wrong_guesses < $3
           AND (c.created_by_device IS NULL
                OR EXISTS (SELECT 1 FROM devices minter
                           WHERE minter.id = c.created_by_device AND minter.revoked_at IS NULL))
         RETURNING c.user_id",
    )
    .bind(attempt.code_hash)
    .bind(now)
    .bind(i64::from(attempt.max_wrong_guesses))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(user) = user else {
        sqlx::query(
            "UPDATE pairing_codes SET wrong_guesses = wrong_guesses + 1
             WHERE used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .execute(&mut *conn)
        .await?;
        return Ok(None);
    };
    let NewDeviceInfo { name, kind } = *attempt.device;
    let device_id: DeviceId = sqlx::query_scalar(
        "INSERT INTO devices (user_id, name, kind, token_hash, created_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(user)
    .bind(name)
    .bind(kind)
    .bind(attempt.token_hash)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    append_audit(conn, user, Some(device_id), now, "pair", None, &format!("paired {name:?}"))
        .await?;
    let user_name = user_name(conn, user).await?;
    Ok(Some(NewDevice { device_id, user_name }))
}

pub async fn user_name(conn: &mut PgConnection, user: UserId) -> Result<String, MetaError> {
    Ok(sqlx::query_scalar("SELECT name FROM users WHERE id = $1")
        .bind(user)
        .fetch_one(conn)
        .await?)
}

pub async fn device_revoked(conn: &mut PgConnection, device: DeviceId) -> Result<bool, MetaError> {
    let revoked: Option<bool> =
        sqlx::query_scalar("SELECT revoked_at IS NOT NULL FROM devices WHERE id = $1")
            .bind(device)
            .fetch_optional(conn)
            .await?;
    Ok(revoked.unwrap_or(true))
}

/// `DeviceRevoked` unless `device` exists and is not revoked. Writes on behalf of a device
/// call this inside their transaction; the share lock makes a concurrent revocation wait
/// for the write, so the revocation is ordered after it (or, committed first, refuses it).
pub async fn ensure_not_revoked(
    conn: &mut PgConnection,
    device: DeviceId,
) -> Result<(), MetaError> {
    let revoked: Option<bool> =
        sqlx::query_scalar("SELECT revoked_at IS NOT NULL FROM devices WHERE id = $1 FOR SHARE")
            .bind(device)
            .fetch_optional(conn)
            .await?;
    if revoked.unwrap_or(true) { Err(MetaError::DeviceRevoked) } else { Ok(()) }
}

pub async fn device_by_token_hash(
    conn: &mut PgConnection,
    token_hash: &str,
) -> Result<Option<DeviceAuth>, MetaError> {
    let row = sqlx::query(
        "SELECT d.id, d.name, u.id, u.name, d.revoked_at IS NOT NULL, d.token_hash
         FROM devices d JOIN users u ON u.id = d.user_id WHERE d.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(DeviceAuth {
            device_id: get(&r, 0)?,
            device_name: get(&r, 1)?,
            user_id: get(&r, 2)?,
            user_name: get(&r, 3)?,
            revoked: get(&r, 4)?,
            token_hash: get(&r, 5)?,
        })
    })
    .transpose()
}

pub async fn touch_device(
    conn: &mut PgConnection,
    device: DeviceId,
    now: i64,
) -> Result<(), MetaError> {
    sqlx::query("UPDATE devices SET last_seen_at = $2 WHERE id = $1")
        .bind(device)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

const DEVICE_COLUMNS: &str =
    "d.id, d.name, d.kind, d.created_at, d.last_seen_at, d.revoked_at IS NOT NULL";

fn device_info(r: &PgRow) -> Result<DeviceInfo, MetaError> {
    Ok(DeviceInfo {
        id: get(r, 0)?,
        name: get(r, 1)?,
        kind: get(r, 2)?,
        created_at: rfc3339(get(r, 3)?),
        last_seen_at: get::<Option<i64>>(r, 4)?.map(rfc3339),
        revoked: get(r, 5)?,
        current: false,
    })
}

pub async fn list_devices(
    conn: &mut PgConnection,
    user: UserId,
) -> Result<Vec<DeviceInfo>, MetaError> {
    let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.user_id = $1 ORDER BY d.id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user).fetch_all(conn).await?;
    rows.iter().map(device_info).collect()
}

pub async fn revoke_device(
    conn: &mut PgConnection,
    user: Option<UserId>,
    device: DeviceId,
    now: i64,
) -> Result<bool, MetaError> {
    let owner: Option<UserId> = sqlx::query_scalar(
        "UPDATE devices SET revoked_at = COALESCE(revoked_at, $3)
         WHERE id = $1 AND ($2::BIGINT IS NULL OR user_id = $2) RETURNING user_id",
    )
    .bind(device)
    .bind(user)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(owner) = owner else { return Ok(false) };
    // Codes the device minted must not let anyone in after it is gone.
    sqlx::query("DELETE FROM pairing_codes WHERE created_by_device = $1 AND used_at IS NULL")
        .bind(device)
        .execute(&mut *conn)
        .await?;
    let detail = format!("revoked device {device}");
    append_audit(conn, owner, Some(device), now, "revoke", None, &detail).await?;
    Ok(true)
}

pub async fn admin_devices(
    conn: &mut PgConnection,
    user_name: Option<&str>,
) -> Result<Vec<AdminDevice>, MetaError> {
    let sql = format!(
        "SELECT {DEVICE_COLUMNS}, u.name FROM devices d JOIN users u ON u.id = d.user_id
         WHERE $1::TEXT IS NULL OR u.name = $1 ORDER BY u.name, d.id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user_name).fetch_all(conn).await?;
    rows.iter().map(|r| Ok(AdminDevice { info: device_info(r)?, user_name: get(r, 6)? })).collect()
}

pub async fn admin_users(conn: &mut PgConnection) -> Result<Vec<UserSummary>, MetaError> {
    let rows = sqlx::query(
        "SELECT u.name,
                (SELECT COUNT(*) FROM devices d WHERE d.user_id = u.id),
                (SELECT COUNT(*) FROM saves s WHERE s.user_id = u.id AND NOT s.deleted),
                u.seq
         FROM users u ORDER BY u.name",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(UserSummary {
                name: get(r, 0)?,
                devices: u64_at(r, 1)?,
                saves: u64_at(r, 2)?,
                seq: Seq(u64_at(r, 3)?),
            })
        })
        .collect()
}
