//! Reading saves on Postgres: heads, listings, versions, history and the changes feed (see
//! `sqlite::saves`). Paths are `COLLATE "C"`, so `[P/, P0)` is exactly "below P" here too.

use super::rows::{
    FEED_COLUMNS, HEAD_COLUMNS, get, hash_at, head as head_row, save_meta, sql_u64, u64_at,
};
use crate::meta::{Head, MetaError, StoredVersion, UserId};
use crate::timestamps::rfc3339;
use savesync_core::wire::{History, HistoryEntry, SaveMeta, VersionKind};
use savesync_core::{ContentHash, Rev, SavePath, Seq};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection};
use std::collections::HashSet;

pub async fn current_seq(conn: &mut PgConnection, user: UserId) -> Result<Seq, MetaError> {
    let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM users WHERE id = $1")
        .bind(user)
        .fetch_optional(conn)
        .await?;
    Ok(Seq(seq.map_or(0, |s| u64::try_from(s).unwrap_or(0))))
}

/// Heads at or below `prefix`, by path.
pub async fn list(
    conn: &mut PgConnection,
    user: UserId,
    prefix: Option<&SavePath>,
    include_deleted: bool,
) -> Result<Vec<SaveMeta>, MetaError> {
    let (exact, low, high) = match prefix {
        Some(p) => (Some(p.as_str().to_owned()), format!("{p}/"), format!("{p}0")),
        None => (None, String::new(), String::new()),
    };
    let sql = format!(
        "SELECT {HEAD_COLUMNS} FROM saves s LEFT JOIN devices d ON d.id = s.device_id
         WHERE s.user_id = $1
           AND ($2::TEXT IS NULL OR s.path = $2 OR (s.path >= $3 AND s.path < $4))
           AND ($5 OR NOT s.deleted)
         ORDER BY s.path"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(user)
        .bind(exact)
        .bind(low)
        .bind(high)
        .bind(include_deleted)
        .fetch_all(conn)
        .await?;
    rows.iter().map(save_meta).collect()
}

/// Every head of `user`, tombstones included, by path: what negotiate plans with.
pub async fn all_heads(conn: &mut PgConnection, user: UserId) -> Result<Vec<Head>, MetaError> {
    let sql = format!(
        "SELECT {HEAD_COLUMNS} FROM saves s LEFT JOIN devices d ON d.id = s.device_id
         WHERE s.user_id = $1
         ORDER BY s.path"
    );
    let rows = sqlx::query(AssertSqlSafe(sql)).bind(user).fetch_all(conn).await?;
    rows.iter().map(head_row).collect()
}

pub async fn head(
    conn: &mut PgConnection,
    user: UserId,
    path: &SavePath,
) -> Result<Option<SaveMeta>, MetaError> {
    let sql = format!(
        "SELECT {HEAD_COLUMNS} FROM saves s LEFT JOIN devices d ON d.id = s.device_id
         WHERE s.user_id = $1 AND s.path = $2"
    );
    let row =
        sqlx::query(AssertSqlSafe(sql)).bind(user).bind(path.as_str()).fetch_optional(conn).await?;
    row.as_ref().map(save_meta).transpose()
}

fn stored_version(r: &PgRow) -> Result<StoredVersion, MetaError> {
    Ok(StoredVersion { rev: Rev(u64_at(r, 0)?), hash: hash_at(r, 1)?, size: u64_at(r, 2)? })
}

pub async fn committed_version(
    conn: &mut PgConnection,
    user: UserId,
    path: &SavePath,
    rev: Option<Rev>,
) -> Result<Option<StoredVersion>, MetaError> {
    let row = match rev {
        None => {
            sqlx::query("SELECT rev, hash, size FROM saves WHERE user_id = $1 AND path = $2")
                .bind(user)
                .bind(path.as_str())
                .fetch_optional(conn)
                .await?
        }
        Some(rev) => {
            sqlx::query(
                "SELECT rev, hash, size FROM versions
                 WHERE user_id = $1 AND path = $2 AND kind = 'commit' AND rev = $3",
            )
            .bind(user)
            .bind(path.as_str())
            .bind(sql_u64(rev.0))
            .fetch_optional(conn)
            .await?
        }
    };
    row.as_ref().map(stored_version).transpose()
}

pub async fn version_by_id(
    conn: &mut PgConnection,
    user: UserId,
    path: &SavePath,
    version_id: i64,
) -> Result<Option<StoredVersion>, MetaError> {
    let row = sqlx::query(
        "SELECT rev, hash, size FROM versions WHERE id = $3 AND user_id = $1 AND path = $2",
    )
    .bind(user)
    .bind(path.as_str())
    .bind(version_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(stored_version).transpose()
}

pub async fn history(
    conn: &mut PgConnection,
    user: UserId,
    path: &SavePath,
) -> Result<Option<History>, MetaError> {
    let rows = sqlx::query(
        "SELECT v.id, v.kind, v.rev, v.hash, v.size, v.created_at, d.name
         FROM versions v LEFT JOIN devices d ON d.id = v.device_id
         WHERE v.user_id = $1 AND v.path = $2 ORDER BY v.id DESC",
    )
    .bind(user)
    .bind(path.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let versions = rows
        .iter()
        .map(|r| {
            let kind: String = get(r, 1)?;
            Ok(HistoryEntry {
                version_id: get(r, 0)?,
                kind: if kind == "conflict" { VersionKind::Conflict } else { VersionKind::Commit },
                rev: Rev(u64_at(r, 2)?),
                hash: hash_at(r, 3)?,
                size: u64_at(r, 4)?,
                created_at: rfc3339(get(r, 5)?),
                device: get(r, 6)?,
            })
        })
        .collect::<Result<Vec<_>, MetaError>>()?;
    if versions.is_empty() && head(conn, user, path).await?.is_none() {
        return Ok(None);
    }
    Ok(Some(History { path: path.clone(), versions }))
}

/// Commits after `since`, oldest first (see `sqlite::saves::changes` on retention).
pub async fn changes(
    conn: &mut PgConnection,
    user: UserId,
    since: Seq,
    limit: u32,
) -> Result<(Vec<SaveMeta>, bool), MetaError> {
    let sql = format!(
        "SELECT {FEED_COLUMNS} FROM versions v LEFT JOIN devices d ON d.id = v.device_id
         WHERE v.user_id = $1 AND v.seq > $2 ORDER BY v.seq LIMIT $3"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(user)
        .bind(sql_u64(since.0))
        .bind(i64::from(limit) + 1)
        .fetch_all(conn)
        .await?;
    let mut changes = rows.iter().map(save_meta).collect::<Result<Vec<_>, _>>()?;
    let more = changes.len() > limit as usize;
    changes.truncate(limit as usize);
    Ok((changes, more))
}

pub async fn referenced_hashes(conn: &mut PgConnection) -> Result<HashSet<ContentHash>, MetaError> {
    let rows = sqlx::query("SELECT DISTINCT hash FROM versions WHERE hash IS NOT NULL")
        .fetch_all(conn)
        .await?;
    let mut out = HashSet::with_capacity(rows.len());
    for r in &rows {
        out.extend(hash_at(r, 0)?);
    }
    Ok(out)
}
