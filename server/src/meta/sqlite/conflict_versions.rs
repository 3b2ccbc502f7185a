//! Conflict versions: the bytes of an upload that lost its compare-and-swap, kept in the
//! save's history (kind `conflict`, rev = the stale base it was made on) so that no closed
//! save is ever lost. A device in conflict keeps backing its new versions up this way.
//!
//! Two rules live here, because both are about these rows only:
//!
//! - **Open.** A conflict version stays *open* until the device that uploaded it commits
//!   to the same save (a later `commit` version by that device). That is what resolving
//!   does ("keep mine" commits at once; after "take theirs" the next save the device closes
//!   commits), and nothing else the server sees proves the device has moved on. Retention
//!   neither prunes nor counts open conflict versions: [`OPEN`] is the SQL test.
//! - **Cap.** A save keeps at most `cap` conflict versions. Storing one more thins the
//!   oldest out, but always keeps the first (the bytes at the moment the devices diverged)
//!   and the newest (the latest progress): [`to_thin`] is the policy. So a device that keeps
//!   uploading on a stale base cannot fill the disk, and the newest backup always survives.

use super::activity::append_audit;
use super::rows::sql_u64;
use crate::meta::{CommitRequest, MetaError};
use rusqlite::{Connection, OptionalExtension, params};
use savesync_core::ContentHash;
use std::ops::Range;

/// SQL condition on a row of `versions` (unaliased, as in `DELETE FROM versions`): true
/// while it is an open conflict version. Uses the `versions_by_save` index.
pub const OPEN: &str = "(versions.kind = 'conflict' AND NOT EXISTS (
    SELECT 1 FROM versions AS closer
    WHERE closer.user_id = versions.user_id AND closer.path = versions.path
      AND closer.kind = 'commit' AND closer.device_id IS versions.device_id
      AND closer.id > versions.id))";

/// Which of `count` conflict versions (oldest first) to drop so that at most `cap` remain:
/// the oldest ones, except the very first. A cap of 0 or 1 keeps only the newest.
#[must_use]
pub fn to_thin(count: usize, cap: usize) -> Range<usize> {
    let cap = cap.max(1);
    if count <= cap {
        0..0
    } else if cap == 1 {
        0..count - 1
    } else {
        1..count - (cap - 1)
    }
}

/// Keep the rejected upload `req` (content `hash`, `size`) as a conflict version, unless
/// the newest conflict version this device stored for the save already holds the same bytes
/// (a retry after a lost answer); then thin the save's conflict versions down to `cap`.
pub fn keep(
    conn: &Connection,
    req: &CommitRequest,
    hash: ContentHash,
    size: u64,
    head_rev: savesync_core::Rev,
    cap: u32,
) -> Result<(), MetaError> {
    let (user, device, path) = (req.actor.user_id, req.actor.device_id, req.path.as_str());
    let newest_of_device: Option<String> = conn
        .prepare_cached(
            "SELECT hash FROM versions
             WHERE user_id = ?1 AND path = ?2 AND kind = 'conflict' AND device_id IS ?3
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![user, path, device], |r| r.get(0))
        .optional()?
        .flatten();
    if newest_of_device.as_deref() == Some(hash.to_hex().as_str()) {
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO versions (user_id, path, kind, rev, seq, hash, size, device_id, created_at)
         VALUES (?1, ?2, 'conflict', ?3, NULL, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        user,
        path,
        sql_u64(req.base_rev.0),
        hash.to_hex(),
        sql_u64(size),
        device,
        req.now
    ])?;
    let detail = format!("base rev {} is not head rev {head_rev}; kept as conflict", req.base_rev);
    append_audit(conn, user, device, req.now, "conflict", Some(path), &detail)?;
    thin(conn, req, cap)
}

fn thin(conn: &Connection, req: &CommitRequest, cap: u32) -> Result<(), MetaError> {
    let (user, path) = (req.actor.user_id, req.path.as_str());
    let ids: Vec<i64> = conn
        .prepare_cached(
            "SELECT id FROM versions WHERE user_id = ?1 AND path = ?2 AND kind = 'conflict'
             ORDER BY id",
        )?
        .query_map(params![user, path], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let drop = &ids[to_thin(ids.len(), cap as usize)];
    if drop.is_empty() {
        return Ok(());
    }
    let mut delete = conn.prepare_cached("DELETE FROM versions WHERE id = ?1")?;
    for id in drop {
        delete.execute([id])?;
    }
    let detail = format!("{} oldest conflict versions dropped (cap {cap})", drop.len());
    append_audit(conn, user, req.actor.device_id, req.now, "conflict_cap", Some(path), &detail)
}

#[cfg(test)]
mod tests {
    use super::to_thin;

    #[test]
    fn thinning_keeps_the_first_and_the_newest() {
        // (count, cap, dropped indexes, oldest first)
        let table: &[(usize, usize, std::ops::Range<usize>)] = &[
            (0, 5, 0..0),
            (5, 5, 0..0),
            (6, 5, 1..2),
            (10, 5, 1..6),
            (3, 2, 1..2),
            (2, 1, 0..1),
            (7, 1, 0..6),
            (4, 0, 0..3),
            (1, 0, 0..0),
            (101, 100, 1..2),
        ];
        for (count, cap, dropped) in table {
            let got = to_thin(*count, *cap);
            assert_eq!(&got, dropped, "count {count}, cap {cap}");
            let kept = count - got.len();
            assert!(kept <= (*cap).max(1), "count {count}, cap {cap}: kept {kept}");
            if *count > 0 {
                assert!(got.end < *count, "the newest is always kept (count {count}, cap {cap})");
            }
        }
    }
}
