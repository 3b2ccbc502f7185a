//! What the synced folder (`crate::folder`) keeps in the state DB besides what the mount
//! also uses (records, pending queue, conflicts): the hash cache of the folder's files by
//! save path (migration 5), and conflict rows without an inode (a folder's `NAME.conflict`
//! is a real file, not an entry of the mount's inode table).
//!
//! The hash cache is bookkeeping (the lazy connection): losing it to a power cut only
//! means hashing those files again.

use super::db::{DbError, StateDb, parse_hash};
use super::rows::{ConflictRow, StatKey};
use rusqlite::{OptionalExtension, params};
use savesync_core::{ContentHash, SavePath};

impl StateDb {
    /// The cached hash of the folder file at `path` with its stat when it was hashed.
    pub fn folder_hash(&self, path: &SavePath) -> Result<Option<(StatKey, ContentHash)>, DbError> {
        let row: Option<(i64, i64, i64, String)> = self
            .lazy()
            .prepare_cached(
                "SELECT size, mtime_ns, file_ino, hash FROM folder_hashes WHERE path = ?1",
            )?
            .query_row([path.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()?;
        let Some((size, mtime_ns, file_ino, hash)) = row else { return Ok(None) };
        let key = StatKey { size: size as u64, mtime_ns, file_ino: file_ino as u64 };
        Ok(Some((key, parse_hash(&hash)?)))
    }

    /// Remember the hashes of several folder files (each at the stat it was read at), in
    /// one transaction.
    pub fn remember_folder_hashes(
        &self,
        rows: &[(SavePath, StatKey, ContentHash)],
    ) -> Result<(), DbError> {
        let mut conn = self.lazy();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for (path, key, hash) in rows {
            tx.prepare_cached(
                "INSERT INTO folder_hashes (path, size, mtime_ns, file_ino, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(path) DO UPDATE SET size = ?2, mtime_ns = ?3, file_ino = ?4,
                    hash = ?5",
            )?
            .execute(params![
                path.as_str(),
                key.size as i64,
                key.mtime_ns,
                key.file_ino as i64,
                hash.to_hex()
            ])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Forget the cached hashes of files that are gone.
    pub fn forget_folder_hashes(&self, paths: &[SavePath]) -> Result<(), DbError> {
        let mut conn = self.lazy();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for path in paths {
            tx.prepare_cached("DELETE FROM folder_hashes WHERE path = ?1")?
                .execute([path.as_str()])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every path with a cached hash (the files the folder had when last seen).
    pub fn folder_hash_paths(&self) -> Result<Vec<SavePath>, DbError> {
        let conn = self.lazy();
        let mut stmt = conn.prepare("SELECT path FROM folder_hashes ORDER BY path")?;
        let raw = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
        raw.iter()
            .map(|p| SavePath::from_stored(p).map_err(|e| DbError::Corrupt(format!("{p:?}: {e}"))))
            .collect()
    }

    /// Record a folder's conflict copy (no inode: the copy is a real file).
    pub fn put_folder_conflict(&self, c: &ConflictRow) -> Result<(), DbError> {
        self.lazy()
            .prepare_cached(
                "INSERT INTO conflicts (path, ino, rev, hash, size, backed_up_hash)
                 VALUES (?1, 0, ?2, ?3, ?4, ?5)
                 ON CONFLICT(path) DO UPDATE SET ino = 0, rev = ?2, hash = ?3, size = ?4,
                    backed_up_hash = ?5",
            )?
            .execute(params![
                c.path.as_str(),
                c.rev.0 as i64,
                c.hash.to_hex(),
                c.size as i64,
                c.backed_up.map(|h| h.to_hex())
            ])?;
        Ok(())
    }

    /// True when the mount's inode table holds anything beyond its root: this profile's
    /// state belongs to a mount, not to a synced folder.
    pub fn has_mount_tree(&self) -> Result<bool, DbError> {
        let n: i64 =
            self.conn().query_row("SELECT COUNT(*) FROM inodes WHERE ino > 1", [], |r| r.get(0))?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::rows::{ConflictRow, StatKey};
    use super::StateDb;
    use savesync_core::{ContentHash, Rev, SavePath};

    #[test]
    fn folder_hashes_are_kept_by_path_and_stat_and_conflicts_need_no_inode() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(&dir.path().join("state.db")).unwrap();
        let p = SavePath::parse("snes/a.srm").unwrap();
        let key = StatKey { size: 3, mtime_ns: 7, file_ino: 9 };
        let h = ContentHash::of(b"abc");
        db.remember_folder_hashes(&[(p.clone(), key, h)]).unwrap();
        assert_eq!(db.folder_hash(&p).unwrap(), Some((key, h)));
        assert_eq!(db.folder_hash_paths().unwrap(), vec![p.clone()]);
        db.forget_folder_hashes(std::slice::from_ref(&p)).unwrap();
        assert_eq!(db.folder_hash(&p).unwrap(), None);
        let row =
            ConflictRow { path: p.clone(), ino: 0, rev: Rev(4), hash: h, size: 3, backed_up: None };
        db.put_folder_conflict(&row).unwrap();
        assert_eq!(db.conflict(&p).unwrap(), Some(row));
        assert!(!db.has_mount_tree().unwrap());
    }
}
