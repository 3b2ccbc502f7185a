//! Uploads that may have been committed on the server without this device hearing the
//! answer (migration 6).
//!
//! Before each upload the engine notes the bytes' hash and the revision it builds on. An
//! attempt whose answer never came (kill -9, power loss, a dropped connection) may or may
//! not have been committed, so its note stays; a refusal removes that one note, and a
//! successful answer (`agree`) removes every note of the path. On the next sync a head
//! whose hash is a noted one and whose revision is the next after that note's base is this
//! device's own commit, so it becomes the base instead of showing the device its own save
//! as a conflict.
//!
//! At most [`MAX_NOTES_PER_SAVE`] notes per save are kept, the newest. Bookkeeping (the
//! lazy connection): losing a note only brings back that spurious conflict copy, never
//! loses bytes.

use super::db::{Begin, DbError, StateDb, in_transaction, parse_hash};
use rusqlite::params;
use savesync_core::{ContentHash, Rev, SavePath};

/// Unanswered attempts remembered per save (retries while offline add one each).
pub const MAX_NOTES_PER_SAVE: i64 = 8;

impl StateDb {
    /// About to upload bytes hashing to `hash` on top of `expected`.
    pub fn note_upload_in_flight(
        &self,
        path: &SavePath,
        hash: &ContentHash,
        expected: Rev,
    ) -> Result<(), DbError> {
        in_transaction(&self.lazy(), Begin::Deferred, |tx| {
            tx.prepare_cached(
                "INSERT INTO uploads_in_flight (path, hash, expected_rev) VALUES (?1, ?2, ?3)
                 ON CONFLICT(path, hash, expected_rev) DO NOTHING",
            )?
            .execute(params![path.as_str(), hash.to_hex(), expected.0 as i64])?;
            // Everything older than the newest MAX_NOTES_PER_SAVE goes (nothing while there
            // are fewer: the bound is NULL). A `NOT IN (newest ...)` list built a temporary
            // b-tree on every save.
            tx.prepare_cached(
                "DELETE FROM uploads_in_flight WHERE path = ?1 AND id <=
                    (SELECT id FROM uploads_in_flight WHERE path = ?1
                     ORDER BY id DESC LIMIT 1 OFFSET ?2)",
            )?
            .execute(params![path.as_str(), MAX_NOTES_PER_SAVE])?;
            Ok(())
        })
    }

    /// The unanswered uploads noted for `path`, newest first.
    pub fn uploads_in_flight(&self, path: &SavePath) -> Result<Vec<(ContentHash, Rev)>, DbError> {
        let conn = self.lazy();
        let mut stmt = conn.prepare_cached(
            "SELECT hash, expected_rev FROM uploads_in_flight WHERE path = ?1 ORDER BY id DESC",
        )?;
        let rows = stmt
            .query_map([path.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(|(hash, rev)| Ok((parse_hash(&hash)?, Rev(rev as u64)))).collect()
    }

    /// The server refused this attempt: it was not committed.
    pub fn clear_upload_in_flight(
        &self,
        path: &SavePath,
        hash: &ContentHash,
        expected: Rev,
    ) -> Result<(), DbError> {
        self.lazy()
            .prepare_cached(
                "DELETE FROM uploads_in_flight WHERE path = ?1 AND hash = ?2 AND expected_rev = ?3",
            )?
            .execute(params![path.as_str(), hash.to_hex(), expected.0 as i64])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_kept_until_refused_or_agreed_and_bounded_per_save() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(&dir.path().join("state.db")).unwrap();
        let p = SavePath::parse("gb/a.sav").unwrap();
        let h = |n: u8| ContentHash::of(&[n]);
        assert!(db.uploads_in_flight(&p).unwrap().is_empty());
        db.note_upload_in_flight(&p, &h(1), Rev(1)).unwrap();
        db.note_upload_in_flight(&p, &h(2), Rev(1)).unwrap();
        db.note_upload_in_flight(&p, &h(1), Rev(1)).unwrap();
        assert_eq!(db.uploads_in_flight(&p).unwrap(), [(h(2), Rev(1)), (h(1), Rev(1))]);
        db.clear_upload_in_flight(&p, &h(2), Rev(1)).unwrap();
        assert_eq!(db.uploads_in_flight(&p).unwrap(), [(h(1), Rev(1))]);
        for n in 10..30 {
            db.note_upload_in_flight(&p, &h(n), Rev(2)).unwrap();
        }
        let kept = db.uploads_in_flight(&p).unwrap();
        assert_eq!(kept.len() as i64, MAX_NOTES_PER_SAVE);
        assert_eq!(kept[0], (h(29), Rev(2)), "the newest are kept");
        let v = savesync_core::Version { rev: Rev(3), hash: Some(h(29)) };
        db.agree(&p, v, 1).unwrap();
        assert!(db.uploads_in_flight(&p).unwrap().is_empty(), "an answer clears them all");
    }
}
