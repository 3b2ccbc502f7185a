//! Mapping Postgres rows to wire types (and to [`Head`], negotiate's form of a head).
//! Stored text (paths, hashes) was validated on the way in; a row that no longer parses is
//! `MetaError::Corrupt`, never a panic.

use super::errors::classify;
use crate::meta::{Head, MetaError};
use savesync_core::wire::SaveMeta;
use savesync_core::{ContentHash, Rev, SavePath, Seq};
use sqlx::Row;
use sqlx::postgres::PgRow;

/// Columns a head query selects (`s` = saves, `d` = devices), in [`head`]'s order.
pub const HEAD_COLUMNS: &str =
    "s.path, s.rev, s.seq, s.hash, s.size, s.deleted, s.committed_at, d.name";
/// Columns a feed query selects (`v` = commit versions, `d` = devices), same order.
pub const FEED_COLUMNS: &str =
    "v.path, v.rev, v.seq, v.hash, v.size, v.hash IS NULL, v.created_at, d.name";

/// Column `idx` of `row`.
pub fn get<'r, T>(row: &'r PgRow, idx: usize) -> Result<T, MetaError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(idx).map_err(classify)
}

fn corrupt(idx: usize, e: impl std::fmt::Display) -> MetaError {
    MetaError::Corrupt(format!("column {idx}: {e}"))
}

/// A stored path column.
pub fn path_at(row: &PgRow, idx: usize) -> Result<SavePath, MetaError> {
    let s: String = get(row, idx)?;
    SavePath::from_stored(&s).map_err(|e| corrupt(idx, e))
}

/// A stored nullable hash column.
pub fn hash_at(row: &PgRow, idx: usize) -> Result<Option<ContentHash>, MetaError> {
    let s: Option<String> = get(row, idx)?;
    s.map(|s| s.parse().map_err(|e| corrupt(idx, e))).transpose()
}

/// Counters are stored as signed 64-bit integers.
pub fn u64_at(row: &PgRow, idx: usize) -> Result<u64, MetaError> {
    let v: i64 = get(row, idx)?;
    u64::try_from(v).map_err(|e| corrupt(idx, e))
}

/// A row selected with [`HEAD_COLUMNS`] or [`FEED_COLUMNS`], its time left as stored.
pub fn head(row: &PgRow) -> Result<Head, MetaError> {
    let meta = SaveMeta {
        path: path_at(row, 0)?,
        rev: Rev(u64_at(row, 1)?),
        seq: Seq(u64_at(row, 2)?),
        hash: hash_at(row, 3)?,
        size: u64_at(row, 4)?,
        deleted: get(row, 5)?,
        committed_at: String::new(),
        device: get(row, 7)?,
    };
    Ok(Head::new(meta, get(row, 6)?))
}

/// A row selected with [`HEAD_COLUMNS`] or [`FEED_COLUMNS`], in its wire form.
pub fn save_meta(row: &PgRow) -> Result<SaveMeta, MetaError> {
    head(row).map(Head::into_wire)
}

/// Store a counter.
#[must_use]
pub fn sql_u64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
