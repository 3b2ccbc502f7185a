//! The space reserve: a file of [`RESERVE_BYTES`] zeros at `data_dir/space.reserve`,
//! written when the tree loads. When the device's disk is full, SQLite cannot
//! even record a delete, so the user could not free space through the mount; an unlink or
//! rmdir that meets "disk full" in the state DB gives the reserve back and retries once.
//! The reserve is written again at the next load (best effort: on a disk that is still
//! full it is simply absent).
//!
//! Assumes nothing else in `data_dir` is named `space.reserve`.

use super::LocalTree;
use crate::state::DbError;
use std::io::Write;
use std::path::PathBuf;

/// Enough for the WAL frames of a few deletes.
pub(crate) const RESERVE_BYTES: usize = 256 * 1024;

impl LocalTree {
    fn reserve_path(&self) -> PathBuf {
        self.cfg.data_dir.join("space.reserve")
    }

    /// Write the reserve if it is missing; a partial reserve (disk full) is removed again.
    pub(crate) fn ensure_reserve(&self) {
        let path = self.reserve_path();
        if std::fs::metadata(&path).is_ok_and(|m| m.len() >= RESERVE_BYTES as u64) {
            return;
        }
        // Real zeros, not `set_len`: a sparse file would reserve nothing.
        let written = std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(&vec![0u8; RESERVE_BYTES]).and_then(|()| f.sync_all()));
        if let Err(e) = written {
            tracing::warn!("no space reserve in {}: {e}", self.cfg.data_dir.display());
            let _ = std::fs::remove_file(&path);
        }
    }

    /// Give the reserve back to the disk; true if there was one to give.
    pub(crate) fn release_reserve(&self) -> bool {
        let released = std::fs::remove_file(self.reserve_path()).is_ok();
        if released {
            tracing::warn!("disk full: released the space reserve so a delete can proceed");
        }
        released
    }

    /// Run a state-DB write; if the disk is full, release the reserve and run it once more.
    pub fn db_write_freeing_reserve<T>(
        &self,
        mut op: impl FnMut() -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        match op() {
            Err(e) if e.is_disk_full() && self.release_reserve() => op(),
            other => other,
        }
    }
}
