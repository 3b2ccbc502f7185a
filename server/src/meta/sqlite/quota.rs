//! The byte count behind the per-user quota: the sizes of the distinct contents among a
//! user's versions. Heads are version rows too, so heads, history and conflict versions
//! all count; content stored under several paths or revisions counts once, because the
//! blob store keeps it once. The totals are kept by triggers in `user_usage` (see the
//! `USER_USAGE` migration), so reading them costs two index lookups.

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
        "SELECT COALESCE((SELECT bytes FROM user_usage WHERE user_id = ?1), 0),
                EXISTS (SELECT 1 FROM versions WHERE user_id = ?1 AND hash = ?2),
                COALESCE((SELECT versions FROM user_usage WHERE user_id = ?1), 0)",
    )?;
    Ok(stmt.query_row(params![user, content.to_hex()], |r| {
        Ok(StoredBytes {
            used: u64_at(r, 0)?,
            has_content: r.get::<_, i64>(1)? != 0,
            versions: u64_at(r, 2)?,
        })
    })?)
}

#[cfg(test)]
mod tests {
    use crate::meta::sqlite::SqliteDb;
    use crate::meta::{Actor, CommitRequest, NewContent, Retention};
    use savesync_core::{ContentHash, Rev, SavePath};

    /// The totals recomputed from scratch, as `(bytes, versions)`.
    fn recomputed(db: &std::path::Path) -> (u64, u64) {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.query_row(
            "SELECT COALESCE(SUM(size), 0), COALESCE(SUM(n), 0) FROM (
                 SELECT COUNT(*) AS n, CASE WHEN hash IS NULL THEN 0 ELSE MAX(size) END AS size
                 FROM versions WHERE user_id = 1 GROUP BY hash)",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )
        .unwrap()
    }

    #[test]
    fn running_totals_match_a_full_recount_through_commits_conflicts_and_pruning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteDb::open(&path).unwrap();
        store.ensure_user("alice", 0).unwrap();
        // Keep two versions and nothing by age, at most three conflict versions a save:
        // commits prune, stale uploads thin.
        let retention = Retention { keep_versions: 2, keep_seconds: 0, max_conflict_versions: 3 };
        let save = |p: &str, base: u64, content: NewContent| {
            let request = CommitRequest {
                actor: Actor { user_id: 1, device_id: None },
                path: SavePath::parse(p).unwrap(),
                base_rev: Rev(base),
                content,
                operation: "upload",
                now: 1,
            };
            store.commit(&request, retention).unwrap();
        };
        let bytes = |b: &[u8]| NewContent::Bytes { hash: ContentHash::of(b), size: b.len() as u64 };
        let check = |step: &str| {
            let hash = ContentHash::of(b"none");
            let stored = store.stored_bytes(1, &hash).unwrap();
            assert_eq!((stored.used, stored.versions), recomputed(&path), "after {step}");
        };
        save("a.srm", 0, bytes(b"one"));
        check("a first commit");
        save("b.srm", 0, bytes(b"one"));
        check("the same content under a second path");
        for (rev, content) in [(1, b"two".as_slice()), (2, b"three"), (3, b"four!")] {
            save("a.srm", rev, bytes(content));
            check("commits that prune");
        }
        for i in 0..6u8 {
            save("a.srm", 1, bytes(&[b'x', i, i, i]));
            check("stale uploads that thin");
        }
        save("b.srm", 1, NewContent::Tombstone);
        check("a delete");
        let stored = store.stored_bytes(1, &ContentHash::of(b"four!")).unwrap();
        assert!(stored.has_content, "the head's content is known");
        assert!(stored.used > 0 && stored.versions > 0);
    }
}
