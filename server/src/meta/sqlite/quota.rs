//! The byte count behind the per-user quota: the sizes of the distinct contents among a
//! user's versions. Heads are version rows too, so heads, history and conflict versions
//! all count; content stored under several paths or revisions counts once, because the
//! blob store keeps it once.

use super::rows::u64_at;
use crate::meta::{MetaError, StoredBytes, UserId};
use rusqlite::{Connection, params};
use savesync_core::ContentHash;

pub fn stored_bytes(
    conn: &Connection,
    user: UserId,
    content: &ContentHash,
) -> Result<StoredBytes, MetaError> {
    let mut stmt = conn.prepare_cached(
        "SELECT COALESCE(SUM(size), 0), COALESCE(MAX(hash = ?2), 0),
                (SELECT COUNT(*) FROM versions WHERE user_id = ?1)
         FROM (SELECT hash, MAX(size) AS size FROM versions
               WHERE user_id = ?1 AND hash IS NOT NULL GROUP BY hash)",
    )?;
    Ok(stmt.query_row(params![user, content.to_hex()], |r| {
        Ok(StoredBytes {
            used: u64_at(r, 0)?,
            has_content: r.get::<_, i64>(1)? != 0,
            versions: u64_at(r, 2)?,
        })
    })?)
}
