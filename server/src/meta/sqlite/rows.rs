//! Mapping SQLite rows to wire types (and to [`Head`], negotiate's form of a head). Stored
//! text (paths, hashes) was validated on the way in; a row that no longer parses is
//! reported as a conversion error, never a panic.

use crate::meta::Head;
use rusqlite::Row;
use rusqlite::types::Type;
use savesync_core::wire::SaveMeta;
use savesync_core::{ContentHash, Rev, SavePath, Seq};

/// Columns a head query selects (`s` = saves, `d` = devices), in [`head`]'s order.
pub const HEAD_COLUMNS: &str =
    "s.path, s.rev, s.seq, s.hash, s.size, s.deleted, s.committed_at, d.name";
/// Columns a feed query selects (`v` = commit versions, `d` = devices), same order.
pub const FEED_COLUMNS: &str =
    "v.path, v.rev, v.seq, v.hash, v.size, v.hash IS NULL, v.created_at, d.name";

fn conversion(idx: usize, e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e))
}

/// Parse a stored path column.
pub fn path_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<SavePath> {
    // Borrowed from the row: one allocation per path, for the `SavePath` itself.
    let s = row.get_ref(idx)?.as_str().map_err(|e| conversion(idx, e))?;
    SavePath::from_stored(s).map_err(|e| conversion(idx, e))
}

/// Parse a stored nullable hash column.
pub fn hash_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<ContentHash>> {
    let s = row.get_ref(idx)?.as_str_or_null().map_err(|e| conversion(idx, e))?;
    s.map(|s| s.parse().map_err(|e| conversion(idx, e))).transpose()
}

/// Counters are stored as SQLite's signed 64-bit integers.
pub fn u64_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v).map_err(|e| conversion(idx, e))
}

/// A row selected with [`HEAD_COLUMNS`] or [`FEED_COLUMNS`], its time left as stored.
pub fn head(row: &Row<'_>) -> rusqlite::Result<Head> {
    let meta = SaveMeta {
        path: path_at(row, 0)?,
        rev: Rev(u64_at(row, 1)?),
        seq: Seq(u64_at(row, 2)?),
        hash: hash_at(row, 3)?,
        size: u64_at(row, 4)?,
        deleted: row.get(5)?,
        committed_at: String::new(),
        device: row.get(7)?,
    };
    Ok(Head::new(meta, row.get(6)?))
}

/// A row selected with [`HEAD_COLUMNS`] or [`FEED_COLUMNS`], in its wire form.
pub fn save_meta(row: &Row<'_>) -> rusqlite::Result<SaveMeta> {
    head(row).map(Head::into_wire)
}

/// Store a counter.
#[must_use]
pub fn sql_u64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
