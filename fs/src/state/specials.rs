//! The `specials` and `links` tables: what a local-only special inode keeps besides its row (a
//! symlink's target, a device node's number). Written on the durable connection before
//! the inode row, so a crash leaves at worst an unused specials row (inode numbers are
//! never reused), never a symlink without its target. The row goes with its inode through
//! a trigger (see `schema.rs`), so every inode removal path cleans it up.

use super::db::{DbError, StateDb};
use super::rows::SpecialData;
use rusqlite::params;
use std::collections::HashMap;

impl StateDb {
    /// Record the target or device number of special inode `ino`.
    pub fn put_special(&self, ino: u64, data: &SpecialData) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT INTO specials (ino, target, rdev) VALUES (?1, ?2, ?3)
             ON CONFLICT(ino) DO UPDATE SET target = ?2, rdev = ?3",
            params![ino as i64, data.target, i64::from(data.rdev)],
        )?;
        Ok(())
    }

    /// Every special inode's data, by inode number (loaded once at start).
    pub fn load_specials(&self) -> Result<HashMap<u64, SpecialData>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT ino, target, rdev FROM specials")?;
        let rows = stmt
            .query_map([], |r| {
                let data = SpecialData { target: r.get(1)?, rdev: r.get::<_, i64>(2)? as u32 };
                Ok((r.get::<_, i64>(0)? as u64, data))
            })?
            .collect::<Result<HashMap<_, _>, _>>()?;
        Ok(rows)
    }
}

impl StateDb {
    /// Record an extra name (hard link) of special inode `ino`.
    pub fn put_link(&self, ino: u64, parent: u64, name: &str) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT INTO links (ino, parent, name) VALUES (?1, ?2, ?3)
             ON CONFLICT(parent, name) DO UPDATE SET ino = ?1",
            params![ino as i64, parent as i64, name],
        )?;
        Ok(())
    }

    /// Forget the extra name `(parent, name)`.
    pub fn delete_link(&self, parent: u64, name: &str) -> Result<(), DbError> {
        self.conn().execute(
            "DELETE FROM links WHERE parent = ?1 AND name = ?2",
            params![parent as i64, name],
        )?;
        Ok(())
    }

    /// Every extra name as (ino, parent, name) (loaded once at start).
    pub fn load_links(&self) -> Result<Vec<(u64, u64, String)>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT ino, parent, name FROM links ORDER BY ino")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64, r.get(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
