//! Case-insensitive name collisions, checked inside the commit transaction.
//!
//! Saves are re-exported through case-insensitive file systems (Samba's default, Windows,
//! macOS), where `snes/Zelda.srm` and `snes/zelda.srm`, or `Snes/a.srm` and `snes/b.srm`
//! (two directories), are one name. A commit that would add a *new* name which case-folds
//! onto a different existing sibling (file or directory) is refused
//! ([`crate::meta::CommitOutcome::NameCollision`]). Updating an existing save, or adding a
//! file into an existing directory, adds no new name at that level and is never refused
//! for it. Only live saves count: a deleted (tombstoned) save's name is free, so a user
//! who deleted `Zelda.srm` can create `ZELDA.srm`.
//!
//! Every save row carries `fold`, the canonical caseless key of its path
//! ([`savesync_core::fold_key`]), indexed with the user, so each check is a few index
//! lookups whatever the size of the library.

use super::saves::head;
use crate::meta::{MetaError, UserId};
use rusqlite::{Connection, OptionalExtension, params};
use savesync_core::wire::SaveMeta;
use savesync_core::{SavePath, fold_key, to_nfc};

/// Whether a live save exists at `prefix` or below it.
fn live_at_or_below(conn: &Connection, user: UserId, prefix: &str) -> Result<bool, MetaError> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM saves WHERE user_id = ?1 AND path = ?2 AND deleted = 0)
                 OR EXISTS(SELECT 1 FROM saves WHERE user_id = ?1 AND path >= ?3 AND path < ?4
                                                 AND deleted = 0)",
        )?
        .query_row(params![user, prefix, format!("{prefix}/"), format!("{prefix}0")], |r| {
            r.get(0)
        })?)
}

/// The head of a live save whose path, at the depth of `key`, folds to `key`.
fn live_with_fold(
    conn: &Connection,
    user: UserId,
    key: &str,
) -> Result<Option<SaveMeta>, MetaError> {
    let path: Option<String> = conn
        .prepare_cached(
            // Two index searches, not one `OR`: without `ANALYZE` statistics SQLite
            // plans the `OR` as a pass over all of the user's saves, which made every new
            // save's commit cost time in proportion to the library (issue 12).
            "SELECT path FROM saves WHERE user_id = ?1 AND fold = ?2 AND deleted = 0
             UNION ALL
             SELECT path FROM saves WHERE user_id = ?1 AND fold >= ?3 AND fold < ?4
                                      AND deleted = 0
             LIMIT 1",
        )?
        .query_row(params![user, key, format!("{key}/"), format!("{key}0")], |r| r.get(0))
        .optional()?;
    let Some(path) = path else { return Ok(None) };
    let path =
        SavePath::from_stored(&path).map_err(|e| MetaError::Corrupt(format!("{path:?}: {e}")))?;
    head(conn, user, &path)
}

/// The head of the existing live save a commit of `path` would collide with, if any: found
/// at the first component of `path` that does not exist yet (the new name it adds).
pub fn collision(
    conn: &Connection,
    user: UserId,
    path: &SavePath,
) -> Result<Option<SaveMeta>, MetaError> {
    let mut prefix = String::with_capacity(path.as_str().len());
    for component in path.components() {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(component);
        if !live_at_or_below(conn, user, &prefix)? {
            // `prefix` is a new name in its directory: below it everything is new too.
            return live_with_fold(conn, user, &fold_key(&prefix));
        }
    }
    Ok(None)
}

/// Bring rows written before the name rules existed up to date (runs at open; a no-op
/// afterwards): fill `fold`, and spell the path in NFC, as every new name now is, so an NFD
/// name stored by an older server is the save clients now ask for. A path whose NFC form
/// is already another save of the user keeps its stored spelling (it still reads back, see
/// `SavePath::from_stored`) and is logged: merging two saves is the user's decision.
pub fn fill_missing_fold_keys(conn: &Connection) -> Result<(), MetaError> {
    let missing: Vec<(i64, i64, String)> = conn
        .prepare("SELECT id, user_id, path FROM saves WHERE fold IS NULL")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    if missing.is_empty() {
        return Ok(());
    }
    let tx = conn.unchecked_transaction()?;
    let mut renamed = 0usize;
    {
        let mut update = tx.prepare("UPDATE saves SET fold = ?2 WHERE id = ?1")?;
        let mut taken =
            tx.prepare("SELECT EXISTS (SELECT 1 FROM saves WHERE user_id = ?1 AND path = ?2)")?;
        for (id, user, path) in &missing {
            update.execute(params![id, fold_key(path)])?;
            let nfc = to_nfc(path);
            if nfc == path.as_str() {
                continue;
            }
            if taken.query_row(params![user, nfc.as_ref()], |r| r.get::<_, bool>(0))? {
                tracing::warn!(
                    user,
                    path = %path.escape_debug(),
                    "an older save's name differs from another save only in Unicode form; \
                     both are kept as stored"
                );
                continue;
            }
            tx.execute("UPDATE saves SET path = ?2 WHERE id = ?1", params![id, nfc.as_ref()])?;
            tx.execute(
                "UPDATE versions SET path = ?3 WHERE user_id = ?1 AND path = ?2",
                params![user, path, nfc.as_ref()],
            )?;
            tx.execute(
                "UPDATE device_saves SET path = ?3 WHERE path = ?2
                   AND device_id IN (SELECT id FROM devices WHERE user_id = ?1)",
                params![user, path, nfc.as_ref()],
            )?;
            renamed += 1;
        }
    }
    tx.commit()?;
    tracing::info!(rows = missing.len(), renamed, "brought names of existing saves up to date");
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::meta::sqlite::SqliteDb;
    use crate::meta::{Actor, CommitOutcome, CommitRequest, NewContent, Retention};
    use savesync_core::{ContentHash, Rev, SavePath};

    const KEEP_ALL: Retention =
        Retention { keep_versions: 1000, keep_seconds: i64::MAX, max_conflict_versions: 1000 };

    fn request(path: &str, base: u64, content: NewContent) -> CommitRequest {
        CommitRequest {
            actor: Actor { user_id: 1, device_id: None },
            path: SavePath::parse(path).unwrap(),
            base_rev: Rev(base),
            content,
            operation: "upload",
            now: 1,
        }
    }

    fn bytes(b: &[u8]) -> NewContent {
        NewContent::Bytes { hash: ContentHash::of(b), size: b.len() as u64 }
    }

    fn outcome(store: &SqliteDb, path: &str, base: u64, content: NewContent) -> String {
        match store.commit(&request(path, base, content), KEEP_ALL).unwrap() {
            CommitOutcome::Committed(_) => "committed".into(),
            CommitOutcome::NameCollision(with) => format!("collides with {}", with.path),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn a_new_name_that_case_folds_onto_a_live_sibling_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteDb::open(dir.path().join("t.db")).unwrap();
        store.ensure_user("alice", 0).unwrap();
        let table = [
            ("snes/Zelda.srm", 0, bytes(b"1"), "committed"),
            ("snes/zelda.srm", 0, bytes(b"2"), "collides with snes/Zelda.srm"),
            ("snes/ZELDA.SRM", 0, bytes(b"2"), "collides with snes/Zelda.srm"),
            // A directory and a file, or two directories, collide the same way.
            ("snes/zelda.SRM/x", 0, bytes(b"2"), "collides with snes/Zelda.srm"),
            ("SNES/other.srm", 0, bytes(b"2"), "collides with snes/Zelda.srm"),
            // Full Unicode folding, on the NFC form.
            ("gba/Stra\u{df}e.sav", 0, bytes(b"3"), "committed"),
            ("gba/STRASSE.sav", 0, bytes(b"4"), "collides with gba/Stra\u{df}e.sav"),
            // Updating the existing save, or a new file beside it, is fine.
            ("snes/Zelda.srm", 1, bytes(b"5"), "committed"),
            ("snes/mario.srm", 0, bytes(b"6"), "committed"),
            // A deleted save does not block its case variant.
            ("snes/mario.srm", 1, NewContent::Tombstone, "committed"),
            ("snes/MARIO.srm", 0, bytes(b"7"), "committed"),
            // ... and the old spelling is now the second name.
            ("snes/mario.srm", 2, bytes(b"8"), "collides with snes/MARIO.srm"),
        ];
        for (path, base, content, expected) in table {
            assert_eq!(outcome(&store, path, base, content), expected, "{path} on base {base}");
        }
    }

    #[test]
    fn rows_from_before_the_fold_column_get_their_key_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        {
            let store = SqliteDb::open(&db).unwrap();
            store.ensure_user("alice", 0).unwrap();
            assert_eq!(outcome(&store, "psx/Card.mcd", 0, bytes(b"1")), "committed");
        }
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute("UPDATE saves SET fold = NULL", [])
            .unwrap();
        let store = SqliteDb::open(&db).unwrap();
        assert_eq!(outcome(&store, "psx/card.mcd", 0, bytes(b"2")), "collides with psx/Card.mcd");
    }

    #[test]
    fn saves_stored_under_older_looser_name_rules_still_list() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        {
            let store = SqliteDb::open(&db).unwrap();
            store.ensure_user("alice", 0).unwrap();
            assert_eq!(outcome(&store, "gba/emerald.sav", 0, bytes(b"1")), "committed");
        }
        // An NFD spelling, as an older server stored it before names were normalised.
        let old = "gba/Poke\u{301}mon.sav";
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute("UPDATE saves SET path = ?1", [old])
            .unwrap();
        let store = SqliteDb::open(&db).unwrap();
        let (saves, _) = store.list_saves(1, None, false).unwrap();
        let listed: Vec<String> = saves.into_iter().map(|m| m.path.to_string()).collect();
        assert_eq!(listed, [old]);
    }

    #[test]
    fn an_nfd_name_stored_by_an_older_server_is_respelled_in_nfc_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let nfd = "gba/Poke\u{301}mon.sav";
        let nfc = "gba/Pok\u{e9}mon.sav";
        {
            let store = SqliteDb::open(&db).unwrap();
            store.ensure_user("alice", 0).unwrap();
            assert_eq!(outcome(&store, "gba/x.sav", 0, bytes(b"1")), "committed");
        }
        // As an older server left it: the NFD spelling, no fold key, history under it.
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute("UPDATE saves SET path = ?1, fold = NULL", [nfd]).unwrap();
        conn.execute("UPDATE versions SET path = ?1", [nfd]).unwrap();
        drop(conn);
        let store = SqliteDb::open(&db).unwrap();
        let (saves, _) = store.list_saves(1, None, false).unwrap();
        let listed: Vec<String> = saves.into_iter().map(|m| m.path.to_string()).collect();
        assert_eq!(listed, [nfc]);
        let nfc_path = SavePath::parse(nfc).unwrap();
        assert_eq!(store.history(1, &nfc_path).unwrap().unwrap().versions.len(), 1);
        // Updating it through the NFC name is rev 2 of the same save.
        assert_eq!(outcome(&store, nfc, 1, bytes(b"2")), "committed");
    }
}
