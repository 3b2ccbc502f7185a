//! Reading saves: heads, listings, versions, history and the changes feed.

use super::rows::{
    FEED_COLUMNS, HEAD_COLUMNS, hash_at, head as head_row, save_meta, sql_u64, u64_at,
};
use crate::meta::{Head, MetaError, StoredVersion, UserId};
use crate::timestamps::rfc3339;
use rusqlite::{Connection, OptionalExtension, params};
use savesync_core::wire::{History, HistoryEntry, SaveMeta, VersionKind};
use savesync_core::{ContentHash, Rev, SavePath, Seq};
use std::collections::HashSet;

pub fn current_seq(conn: &Connection, user: UserId) -> Result<Seq, MetaError> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT seq FROM users WHERE id = ?1")?
        .query_row([user], |r| r.get(0))
        .optional()?;
    Ok(Seq(seq.map_or(0, |s| u64::try_from(s).unwrap_or(0))))
}

/// Heads at or below `prefix`, by path. `'/'` is `0x2F` and `'0'` is `0x30`, so the range
/// `[P/, P0)` is exactly "below P" and stays an index range scan.
pub fn list(
    conn: &Connection,
    user: UserId,
    prefix: Option<&SavePath>,
    include_deleted: bool,
) -> Result<Vec<SaveMeta>, MetaError> {
    let (exact, low, high) = match prefix {
        Some(p) => (Some(p.as_str().to_owned()), format!("{p}/"), format!("{p}0")),
        None => (None, String::new(), String::new()),
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {HEAD_COLUMNS} FROM saves s LEFT JOIN devices d ON d.id = s.device_id
         WHERE s.user_id = ?1
           AND (?2 IS NULL OR s.path = ?2 OR (s.path >= ?3 AND s.path < ?4))
           AND (?5 OR s.deleted = 0)
         ORDER BY s.path"
    ))?;
    let rows = stmt.query_map(params![user, exact, low, high, include_deleted], save_meta)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every head of `user`, tombstones included, by path: what negotiate plans with.
pub fn all_heads(conn: &Connection, user: UserId) -> Result<Vec<Head>, MetaError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {HEAD_COLUMNS} FROM saves s LEFT JOIN devices d ON d.id = s.device_id
         WHERE s.user_id = ?1
         ORDER BY s.path"
    ))?;
    let rows = stmt.query_map(params![user], head_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn head(
    conn: &Connection,
    user: UserId,
    path: &SavePath,
) -> Result<Option<SaveMeta>, MetaError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {HEAD_COLUMNS} FROM saves s LEFT JOIN devices d ON d.id = s.device_id
             WHERE s.user_id = ?1 AND s.path = ?2"
        ))?
        .query_row(params![user, path.as_str()], save_meta)
        .optional()?)
}

fn stored_version(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredVersion> {
    Ok(StoredVersion { rev: Rev(u64_at(r, 0)?), hash: hash_at(r, 1)?, size: u64_at(r, 2)? })
}

pub fn committed_version(
    conn: &Connection,
    user: UserId,
    path: &SavePath,
    rev: Option<Rev>,
) -> Result<Option<StoredVersion>, MetaError> {
    let found = match rev {
        None => conn
            .query_row(
                "SELECT rev, hash, size FROM saves WHERE user_id = ?1 AND path = ?2",
                params![user, path.as_str()],
                stored_version,
            )
            .optional()?,
        Some(rev) => conn
            .query_row(
                "SELECT rev, hash, size FROM versions
                 WHERE user_id = ?1 AND path = ?2 AND kind = 'commit' AND rev = ?3",
                params![user, path.as_str(), sql_u64(rev.0)],
                stored_version,
            )
            .optional()?,
    };
    Ok(found)
}

pub fn version_by_id(
    conn: &Connection,
    user: UserId,
    path: &SavePath,
    version_id: i64,
) -> Result<Option<StoredVersion>, MetaError> {
    Ok(conn
        .query_row(
            "SELECT rev, hash, size FROM versions WHERE id = ?3 AND user_id = ?1 AND path = ?2",
            params![user, path.as_str(), version_id],
            stored_version,
        )
        .optional()?)
}

pub fn history(
    conn: &Connection,
    user: UserId,
    path: &SavePath,
) -> Result<Option<History>, MetaError> {
    let mut stmt = conn.prepare_cached(
        "SELECT v.id, v.kind, v.rev, v.hash, v.size, v.created_at, d.name
         FROM versions v LEFT JOIN devices d ON d.id = v.device_id
         WHERE v.user_id = ?1 AND v.path = ?2 ORDER BY v.id DESC",
    )?;
    let rows = stmt.query_map(params![user, path.as_str()], |r| {
        let kind: String = r.get(1)?;
        Ok(HistoryEntry {
            version_id: r.get(0)?,
            kind: if kind == "conflict" { VersionKind::Conflict } else { VersionKind::Commit },
            rev: Rev(u64_at(r, 2)?),
            hash: hash_at(r, 3)?,
            size: u64_at(r, 4)?,
            created_at: rfc3339(r.get(5)?),
            device: r.get(6)?,
        })
    })?;
    let versions: Vec<HistoryEntry> = rows.collect::<Result<_, _>>()?;
    if versions.is_empty() && head(conn, user, path)?.is_none() {
        return Ok(None);
    }
    Ok(Some(History { path: path.clone(), versions }))
}

/// Commits after `since`. Retention may have pruned an old commit of a save, but only when a
/// newer commit of the same save exists, which this feed still returns: a device following
/// the feed always ends up with every save's latest state.
pub fn changes(
    conn: &Connection,
    user: UserId,
    since: Seq,
    limit: u32,
) -> Result<(Vec<SaveMeta>, bool), MetaError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {FEED_COLUMNS} FROM versions v LEFT JOIN devices d ON d.id = v.device_id
         WHERE v.user_id = ?1 AND v.seq > ?2 ORDER BY v.seq LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![user, sql_u64(since.0), i64::from(limit) + 1], save_meta)?;
    let mut changes: Vec<SaveMeta> = rows.collect::<Result<_, _>>()?;
    let more = changes.len() > limit as usize;
    changes.truncate(limit as usize);
    Ok((changes, more))
}

pub fn referenced_hashes(conn: &Connection) -> Result<HashSet<ContentHash>, MetaError> {
    let mut stmt = conn.prepare("SELECT DISTINCT hash FROM versions WHERE hash IS NOT NULL")?;
    let rows = stmt.query_map([], |r| hash_at(r, 0))?;
    let mut out = HashSet::new();
    for hash in rows {
        out.extend(hash?);
    }
    Ok(out)
}
