//! The dashboard's rows on Postgres (see `sqlite::web`): passwords, one-time login links
//! (used up by one conditional `UPDATE`, so a link signs in once even across processes),
//! sessions (expired ones and those beyond the per-user cap trimmed where they grow), and
//! the cross-save query of open conflict versions.

use super::conflict_versions::OPEN;
use super::rows::{HEAD_COLUMNS, get, hash_at, path_at, save_meta, u64_at};
use crate::meta::{MetaError, OpenConflict, UserId, UserPassword, WebSession};
use crate::secrets::hashes_match;
use crate::timestamps::rfc3339;
use savesync_core::Rev;
use savesync_core::wire::{HistoryEntry, VersionKind};
use sqlx::{AssertSqlSafe, PgConnection};

pub async fn set_password(
    conn: &mut PgConnection,
    user: UserId,
    phc: &str,
    now: i64,
) -> Result<(), MetaError> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
        .bind(user)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_none() {
        return Err(MetaError::NotFound);
    }
    sqlx::query(
        "INSERT INTO user_passwords (user_id, phc, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (user_id) DO UPDATE SET phc = excluded.phc, updated_at = excluded.updated_at",
    )
    .bind(user)
    .bind(phc)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    // A new password ends every signed-in browser of that user.
    sqlx::query("DELETE FROM web_sessions WHERE user_id = $1").bind(user).execute(conn).await?;
    Ok(())
}

pub async fn user_password(
    conn: &mut PgConnection,
    name: &str,
) -> Result<Option<UserPassword>, MetaError> {
    let row = sqlx::query(
        "SELECT u.id, p.phc FROM users u LEFT JOIN user_passwords p ON p.user_id = u.id
         WHERE u.name = $1",
    )
    .bind(name)
    .fetch_optional(conn)
    .await?;
    row.map(|r| Ok(UserPassword { user_id: get(&r, 0)?, phc: get(&r, 1)? })).transpose()
}

pub async fn add_login_link(
    conn: &mut PgConnection,
    user: UserId,
    token_hash: &str,
    expires_at: i64,
    now: i64,
) -> Result<(), MetaError> {
    sqlx::query("DELETE FROM login_links WHERE expires_at < $1 OR used_at IS NOT NULL")
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO login_links (token_hash, user_id, created_at, expires_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(user)
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn redeem_login_link(
    conn: &mut PgConnection,
    token_hash: &str,
    now: i64,
) -> Result<Option<UserId>, MetaError> {
    let found: Option<(String, UserId)> = sqlx::query_as(
        "UPDATE login_links SET used_at = $2
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at >= $2
         RETURNING token_hash, user_id",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    // The key lookup found it; the constant-time confirmation is the caller's contract.
    Ok(found.filter(|(stored, _)| hashes_match(stored, token_hash)).map(|(_, user)| user))
}

pub async fn add_web_session(
    conn: &mut PgConnection,
    user: UserId,
    id_hash: &str,
    expires_at: i64,
    max_per_user: u32,
    now: i64,
) -> Result<(), MetaError> {
    sqlx::query("DELETE FROM web_sessions WHERE expires_at < $1")
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO web_sessions (id_hash, user_id, created_at, expires_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(id_hash)
    .bind(user)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *conn)
    .await?;
    // Keep the newest `max_per_user` (ties broken by insertion order).
    sqlx::query(
        "DELETE FROM web_sessions WHERE user_id = $1 AND n NOT IN (
            SELECT n FROM web_sessions WHERE user_id = $1
            ORDER BY created_at DESC, n DESC LIMIT $2)",
    )
    .bind(user)
    .bind(i64::from(max_per_user.max(1)))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn web_session(
    conn: &mut PgConnection,
    id_hash: &str,
    now: i64,
) -> Result<Option<WebSession>, MetaError> {
    let row = sqlx::query(
        "SELECT s.id_hash, s.user_id, u.name, s.expires_at
         FROM web_sessions s JOIN users u ON u.id = s.user_id
         WHERE s.id_hash = $1 AND s.expires_at >= $2",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(WebSession {
            id_hash: get(&r, 0)?,
            user_id: get(&r, 1)?,
            user_name: get(&r, 2)?,
            expires_at: get(&r, 3)?,
        })
    })
    .transpose()
}

pub async fn end_web_session(conn: &mut PgConnection, id_hash: &str) -> Result<(), MetaError> {
    sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1").bind(id_hash).execute(conn).await?;
    Ok(())
}

pub async fn open_conflicts(
    conn: &mut PgConnection,
    user: UserId,
    limit: u32,
) -> Result<Vec<OpenConflict>, MetaError> {
    let sql = format!(
        "SELECT versions.path, versions.id, versions.rev, versions.hash, versions.size,
                versions.created_at, d.name
         FROM versions LEFT JOIN devices d ON d.id = versions.device_id
         WHERE versions.user_id = $1 AND {OPEN}
         ORDER BY versions.id DESC LIMIT $2"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(user)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
    let head_sql = format!(
        "SELECT {HEAD_COLUMNS} FROM saves s LEFT JOIN devices d ON d.id = s.device_id
         WHERE s.user_id = $1 AND s.path = $2"
    );
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let path = path_at(r, 0)?;
        let version = HistoryEntry {
            version_id: get(r, 1)?,
            kind: VersionKind::Conflict,
            rev: Rev(u64_at(r, 2)?),
            hash: hash_at(r, 3)?,
            size: u64_at(r, 4)?,
            created_at: rfc3339(get(r, 5)?),
            device: get(r, 6)?,
        };
        let head = sqlx::query(AssertSqlSafe(head_sql.as_str()))
            .bind(user)
            .bind(path.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        let head = head.as_ref().map(save_meta).transpose()?;
        out.push(OpenConflict { path, version, head });
    }
    Ok(out)
}
