//! The compare-and-swap on a save's head, and the per-save retention it triggers.
//!
//! Runs inside the caller's IMMEDIATE transaction, so the head read, the rev check and the
//! write are one atomic step even with concurrent uploaders.

use super::accounts::ensure_not_revoked;
use super::activity::{append_audit, record_synced};
use super::conflict_versions;
use super::rows::sql_u64;
use super::saves::head;
use crate::meta::{CommitOutcome, CommitRequest, MetaError, NewContent, Retention};
use rusqlite::{Connection, params};
use savesync_core::Rev;

pub fn commit(
    conn: &Connection,
    req: &CommitRequest,
    retention: Retention,
) -> Result<CommitOutcome, MetaError> {
    let user = req.actor.user_id;
    let device = req.actor.device_id;
    if let Some(id) = device {
        // An upload authenticated before its device was revoked must not commit after.
        ensure_not_revoked(conn, id)?;
    }
    let path = req.path.as_str();
    let current = head(conn, user, &req.path)?;
    let new_hash = req.content.hash();

    match &current {
        None if req.content == NewContent::Tombstone => return Ok(CommitOutcome::NotFound),
        // Same content as the head: a retried request, or two devices converging.
        Some(h) if h.hash == new_hash => {
            record_synced(conn, req.actor, &req.path, h.rev)?;
            return Ok(CommitOutcome::Unchanged(h.clone()));
        }
        _ => {}
    }

    let head_rev = current.as_ref().map_or(Rev::NONE, |h| h.rev);
    if head_rev != req.base_rev {
        // Keep the losing upload: it is a closed save the user may want back. Not when
        // there is no save at all: no real device bases an upload on a save the server
        // never had (it re-uploads as new), and keeping those would let a client grow
        // history rows under endless fresh paths.
        if let (Some(_), NewContent::Bytes { hash, size }, "upload") =
            (&current, req.content, req.operation)
        {
            conflict_versions::keep(
                conn,
                req,
                hash,
                size,
                head_rev,
                retention.max_conflict_versions,
            )?;
        }
        return Ok(CommitOutcome::Conflict(current));
    }

    if current.as_ref().is_none_or(|h| h.deleted)
        && let Some(existing) = super::names::collision(conn, user, &req.path)?
    {
        return Ok(CommitOutcome::NameCollision(existing));
    }

    let seq: i64 = conn
        .prepare_cached("UPDATE users SET seq = seq + 1 WHERE id = ?1 RETURNING seq")?
        .query_row([user], |r| r.get(0))?;
    let rev = sql_u64(head_rev.next().0);
    let (hash_hex, size) = match req.content {
        NewContent::Bytes { hash, size } => (Some(hash.to_hex()), sql_u64(size)),
        NewContent::Tombstone => (None, 0),
    };
    let deleted = hash_hex.is_none();
    conn.prepare_cached(
        "INSERT INTO saves (user_id, path, rev, seq, hash, size, deleted, committed_at, device_id,
                            fold)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT(user_id, path) DO UPDATE SET
           rev = excluded.rev, seq = excluded.seq, hash = excluded.hash, size = excluded.size,
           deleted = excluded.deleted, committed_at = excluded.committed_at,
           device_id = excluded.device_id",
    )?
    .execute(params![
        user,
        path,
        rev,
        seq,
        hash_hex,
        size,
        deleted,
        req.now,
        device,
        savesync_core::fold_key(path)
    ])?;
    conn.prepare_cached(
        "INSERT INTO versions (user_id, path, kind, rev, seq, hash, size, device_id, created_at)
         VALUES (?1, ?2, 'commit', ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![user, path, rev, seq, hash_hex, size, device, req.now])?;
    let committed = head(conn, user, &req.path)?
        .ok_or_else(|| MetaError::Corrupt(format!("save {path:?} vanished inside its commit")))?;
    record_synced(conn, req.actor, &req.path, committed.rev)?;
    append_audit(conn, user, device, req.now, req.operation, Some(path), &format!("rev {rev}"))?;
    prune(conn, req, committed.rev, retention)?;
    Ok(CommitOutcome::Committed(committed))
}

/// Drop versions that are neither among the newest `keep_versions` of this save nor younger
/// than the age limit. The head's own version is always kept, and open conflict versions
/// are neither pruned nor counted (see `conflict_versions`). Blobs are not touched here:
/// garbage collection removes them later, once nothing references them.
fn prune(
    conn: &Connection,
    req: &CommitRequest,
    head_rev: Rev,
    retention: Retention,
) -> Result<usize, MetaError> {
    let cutoff = req.now.saturating_sub(retention.keep_seconds);
    Ok(conn
        .prepare_cached(&format!(
            "DELETE FROM versions
             WHERE user_id = ?1 AND path = ?2 AND created_at < ?3
               AND NOT (kind = 'commit' AND rev = ?4) AND NOT {open}
               AND id NOT IN (SELECT id FROM versions WHERE user_id = ?1 AND path = ?2
                              AND NOT {open} ORDER BY id DESC LIMIT ?5)",
            open = conflict_versions::OPEN
        ))?
        .execute(params![
            req.actor.user_id,
            req.path.as_str(),
            cutoff,
            sql_u64(head_rev.0),
            retention.keep_versions
        ])?)
}

#[cfg(test)]
mod tests {
    use crate::meta::sqlite::SqliteDb;
    use crate::meta::{Actor, CommitOutcome, CommitRequest, NewContent, Retention};
    use savesync_core::wire::VersionKind;
    use savesync_core::{ContentHash, Rev, SavePath, Seq};

    const KEEP_ALL: Retention =
        Retention { keep_versions: 1000, keep_seconds: i64::MAX, max_conflict_versions: 1000 };

    struct Fixture {
        _dir: tempfile::TempDir,
        store: SqliteDb,
        actor: Actor,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteDb::open(dir.path().join("t.db")).unwrap();
        let user_id = store.ensure_user("alice", 0).unwrap();
        Fixture { _dir: dir, store, actor: Actor { user_id, device_id: None } }
    }

    fn path() -> SavePath {
        SavePath::parse("snes/zelda.srm").unwrap()
    }

    fn upload(base: u64, bytes: &[u8], now: i64) -> CommitRequest {
        CommitRequest {
            actor: Actor { user_id: 1, device_id: None },
            path: path(),
            base_rev: Rev(base),
            content: NewContent::Bytes { hash: ContentHash::of(bytes), size: bytes.len() as u64 },
            operation: "upload",
            now,
        }
    }

    fn committed(outcome: CommitOutcome) -> savesync_core::wire::SaveMeta {
        match outcome {
            CommitOutcome::Committed(m) => m,
            other => panic!("expected a commit, got {other:?}"),
        }
    }

    #[test]
    fn create_then_update_advances_rev_and_seq() {
        let f = fixture();
        let first = committed(f.store.commit(&upload(0, b"v1", 1), KEEP_ALL).unwrap());
        assert_eq!((first.rev, first.seq), (Rev(1), Seq(1)));
        let second = committed(f.store.commit(&upload(1, b"v2", 2), KEEP_ALL).unwrap());
        assert_eq!((second.rev, second.seq), (Rev(2), Seq(2)));
        assert_eq!(second.hash, Some(ContentHash::of(b"v2")));
        assert_eq!(f.store.current_seq(f.actor.user_id).unwrap(), Seq(2));
    }

    #[test]
    fn stale_base_is_a_conflict_that_keeps_the_upload_as_a_conflict_version() {
        let f = fixture();
        committed(f.store.commit(&upload(0, b"v1", 1), KEEP_ALL).unwrap());
        committed(f.store.commit(&upload(1, b"v2", 2), KEEP_ALL).unwrap());
        let outcome = f.store.commit(&upload(1, b"other device", 3), KEEP_ALL).unwrap();
        let CommitOutcome::Conflict(Some(head)) = outcome else { panic!("{outcome:?}") };
        assert_eq!(head.rev, Rev(2));
        // Not the head, no Seq advance, but in history with the base rev it had.
        assert_eq!(f.store.current_seq(f.actor.user_id).unwrap(), Seq(2));
        let history = f.store.history(f.actor.user_id, &path()).unwrap().unwrap();
        let newest = &history.versions[0];
        assert_eq!(newest.kind, VersionKind::Conflict);
        assert_eq!(newest.rev, Rev(1));
        assert_eq!(newest.hash, Some(ContentHash::of(b"other device")));
        assert!(f.store.referenced_hashes().unwrap().contains(&ContentHash::of(b"other device")));
    }

    #[test]
    fn create_over_an_existing_save_conflicts_and_base_without_save_conflicts_with_no_head() {
        let f = fixture();
        let outcome = f.store.commit(&upload(5, b"ghost", 1), KEEP_ALL).unwrap();
        assert_eq!(outcome, CommitOutcome::Conflict(None));
        committed(f.store.commit(&upload(0, b"v1", 2), KEEP_ALL).unwrap());
        let outcome = f.store.commit(&upload(0, b"v1 elsewhere", 3), KEEP_ALL).unwrap();
        assert!(matches!(outcome, CommitOutcome::Conflict(Some(_))));
    }

    #[test]
    fn retried_upload_of_the_head_content_is_unchanged_whatever_the_base() {
        let f = fixture();
        committed(f.store.commit(&upload(0, b"v1", 1), KEEP_ALL).unwrap());
        let outcome = f.store.commit(&upload(0, b"v1", 2), KEEP_ALL).unwrap();
        let CommitOutcome::Unchanged(head) = outcome else { panic!("{outcome:?}") };
        assert_eq!((head.rev, head.seq), (Rev(1), Seq(1)));
        assert_eq!(f.store.history(1, &path()).unwrap().unwrap().versions.len(), 1);
    }

    #[test]
    fn delete_commits_a_tombstone_and_repeating_it_is_unchanged() {
        let f = fixture();
        committed(f.store.commit(&upload(0, b"v1", 1), KEEP_ALL).unwrap());
        let delete = CommitRequest {
            content: NewContent::Tombstone,
            operation: "delete",
            ..upload(1, b"", 2)
        };
        let tomb = committed(f.store.commit(&delete, KEEP_ALL).unwrap());
        assert!(tomb.deleted);
        assert_eq!((tomb.rev, tomb.hash), (Rev(2), None));
        assert!(matches!(f.store.commit(&delete, KEEP_ALL).unwrap(), CommitOutcome::Unchanged(_)));
        let (live, _) = f.store.list_saves(1, None, false).unwrap();
        assert!(live.is_empty());
        let (all, cursor) = f.store.list_saves(1, None, true).unwrap();
        assert_eq!((all.len(), cursor), (1, Seq(2)));
    }

    #[test]
    fn delete_of_a_missing_save_is_not_found() {
        let f = fixture();
        let delete = CommitRequest {
            content: NewContent::Tombstone,
            operation: "delete",
            ..upload(0, b"", 1)
        };
        assert_eq!(f.store.commit(&delete, KEEP_ALL).unwrap(), CommitOutcome::NotFound);
    }

    #[test]
    fn changes_feed_lists_commits_after_the_cursor_oldest_first() {
        let f = fixture();
        for (i, bytes) in [b"a", b"b", b"c"].iter().enumerate() {
            committed(f.store.commit(&upload(i as u64, *bytes, 1), KEEP_ALL).unwrap());
        }
        let (page, more) = f.store.changes(1, Seq(1), 1).unwrap();
        assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![Seq(2)]);
        assert!(more);
        let (page, more) = f.store.changes(1, Seq(2), 10).unwrap();
        assert_eq!(page[0].rev, Rev(3));
        assert!(!more);
    }

    #[test]
    fn retention_keeps_the_newest_n_and_everything_young_and_always_the_head() {
        let f = fixture();
        let day = 86_400;
        let retention = Retention { keep_versions: 3, keep_seconds: 30 * day, ..KEEP_ALL };
        // Ten old commits (day 0..9), then one at day 100: only the newest three survive,
        // since all are older than 30 days at day 100.
        for i in 0..10u64 {
            let bytes = format!("v{i}");
            committed(
                f.store.commit(&upload(i, bytes.as_bytes(), i as i64 * day), retention).unwrap(),
            );
        }
        assert_eq!(f.store.history(1, &path()).unwrap().unwrap().versions.len(), 10);
        committed(f.store.commit(&upload(10, b"new", 100 * day), retention).unwrap());
        let history = f.store.history(1, &path()).unwrap().unwrap();
        let revs: Vec<u64> = history.versions.iter().map(|v| v.rev.0).collect();
        assert_eq!(revs, vec![11, 10, 9]);
        assert!(f.store.committed_version(1, &path(), Some(Rev(2))).unwrap().is_none());
        assert!(!f.store.referenced_hashes().unwrap().contains(&ContentHash::of(b"v0")));
    }

    #[test]
    fn retention_keeps_young_versions_beyond_the_count() {
        let f = fixture();
        let retention = Retention { keep_versions: 2, keep_seconds: 1000, ..KEEP_ALL };
        for i in 0..6u64 {
            let bytes = format!("v{i}");
            committed(
                f.store.commit(&upload(i, bytes.as_bytes(), 500 + i as i64), retention).unwrap(),
            );
        }
        assert_eq!(f.store.history(1, &path()).unwrap().unwrap().versions.len(), 6);
    }

    #[test]
    fn concurrent_uploads_on_the_same_base_commit_exactly_once() {
        let f = fixture();
        committed(f.store.commit(&upload(0, b"v1", 1), KEEP_ALL).unwrap());
        let store = std::sync::Arc::new(f.store);
        let outcomes: Vec<CommitOutcome> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let store = std::sync::Arc::clone(&store);
                    scope.spawn(move || {
                        let bytes = format!("device {i}");
                        store.commit(&upload(1, bytes.as_bytes(), 2), KEEP_ALL).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let wins = outcomes.iter().filter(|o| matches!(o, CommitOutcome::Committed(_))).count();
        let losses = outcomes
            .iter()
            .filter(|o| matches!(o, CommitOutcome::Conflict(Some(h)) if h.rev == Rev(2)))
            .count();
        assert_eq!((wins, losses), (1, 7));
        // Every losing upload is kept in history as a conflict version.
        let history = store.history(1, &path()).unwrap().unwrap();
        let conflicts = history.versions.iter().filter(|v| v.kind == VersionKind::Conflict).count();
        assert_eq!(conflicts, 7);
    }

    #[test]
    fn commits_that_arrive_together_each_get_their_own_answer() {
        // Threads released at once share group-commit batches: a revoked device's commit
        // fails inside the batch without failing or undoing the others, and a race on one
        // save still has exactly one winner.
        let f = fixture();
        let prefix = SavePath::parse("dav").unwrap();
        let revoked = f
            .store
            .create_dav_device(&crate::meta::NewDavDevice {
                user: "alice",
                name: "old handheld",
                kind: "retroarch",
                token_hash: "h",
                prefix: &prefix,
                now: 0,
            })
            .unwrap()
            .device_id;
        assert!(f.store.revoke_device(None, revoked, 1).unwrap());
        committed(f.store.commit(&upload(0, b"v1", 1), KEEP_ALL).unwrap());
        let store = std::sync::Arc::new(f.store);
        let start = std::sync::Barrier::new(24);
        let outcomes: Vec<(usize, Result<CommitOutcome, crate::meta::MetaError>)> =
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..24)
                    .map(|i| {
                        let (store, start) = (&store, &start);
                        scope.spawn(move || {
                            let bytes = format!("thread {i}");
                            let mut request = upload(1, bytes.as_bytes(), 2);
                            match i % 3 {
                                0 => {} // racing on snes/zelda.srm
                                1 => {
                                    request.path = SavePath::parse(&format!("own/{i}")).unwrap();
                                    request.base_rev = Rev::NONE;
                                }
                                _ => {
                                    request.path = SavePath::parse(&format!("rev/{i}")).unwrap();
                                    request.base_rev = Rev::NONE;
                                    request.actor.device_id = Some(revoked);
                                }
                            }
                            start.wait();
                            (i, store.commit(&request, KEEP_ALL))
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
        let mut wins = 0;
        for (i, outcome) in &outcomes {
            match (i % 3, outcome) {
                (0, Ok(CommitOutcome::Committed(m))) if m.rev == Rev(2) => wins += 1,
                (0, Ok(CommitOutcome::Conflict(Some(h)))) if h.rev == Rev(2) => {}
                (1, Ok(CommitOutcome::Committed(m))) if m.rev == Rev(1) => {}
                (2, Err(crate::meta::MetaError::DeviceRevoked)) => {}
                _ => panic!("thread {i}: {outcome:?}"),
            }
        }
        assert_eq!(wins, 1);
        // Everything answered as committed is in the database for any other reader; the
        // refused commits left nothing.
        let (all, cursor) = store.list_saves(1, None, true).unwrap();
        let mut paths: Vec<String> = all.iter().map(|m| m.path.to_string()).collect();
        paths.sort();
        let mut expected: Vec<String> =
            (0..24).filter(|i| i % 3 == 1).map(|i| format!("own/{i}")).collect();
        expected.push("snes/zelda.srm".to_owned());
        expected.sort();
        assert_eq!(paths, expected);
        assert_eq!(cursor, Seq(1 + 1 + 8));
    }
}
