//! Saves moved (renamed, or moved with their directory) before their bytes were ever
//! downloaded. A rename must not download anything while the kernel holds its rename lock,
//! so the moved inode keeps an *origin* in the state DB: the server version (old path,
//! rev, hash) its bytes are. They are fetched from there later, with no lock held: when the
//! file is opened, or when the uploader gets to the new path, which is uploaded from them.
//! The server keeps that version in the old path's history after the old path is deleted.

use super::{SaveFs, cache_stat, lock};
use crate::remote::RemoteError;
use crate::savefs::Invalidation;
use crate::state::StatKey;
use crate::sync::SyncError;
use std::sync::atomic::Ordering;

impl SaveFs {
    /// Fetch the bytes of `ino` from its origin if it is a moved, never-downloaded save.
    /// Returns true when bytes were installed.
    pub(crate) async fn fetch_moved(&self, ino: u64) -> Result<bool, SyncError> {
        let Some((from, version)) = self.db.origin(ino).map_err(SyncError::local)? else {
            return Ok(false);
        };
        if lock(&self.table).get(ino).is_none_or(|i| i.row.cached) {
            self.db.delete_origin(ino).map_err(SyncError::local)?;
            return Ok(false);
        }
        let tmp = self.tmp_path("moved");
        let fetched =
            self.remote.download_to_file(from.clone(), Some(version.rev), tmp.clone()).await;
        if let Err(e) = fetched {
            let _ = std::fs::remove_file(&tmp);
            return Err(SyncError::Remote(e));
        }
        self.online.store(true, Ordering::Relaxed);
        let row = {
            let mut t = lock(&self.table);
            match t.get_mut(ino) {
                Some(inode) if !inode.row.cached => {
                    let cache = self.cache_path(ino);
                    std::fs::rename(&tmp, &cache).map_err(SyncError::local)?;
                    let stat = std::fs::metadata(&cache).map_err(SyncError::local)?;
                    let key = StatKey::of(&stat);
                    let (size, mtime) = cache_stat(&stat);
                    inode.row.cached = true;
                    inode.row.size = size;
                    inode.row.cache_size = size;
                    inode.row.cache_mtime_ns = mtime;
                    inode.replaced = true;
                    Some((inode.row.clone(), key))
                }
                _ => None,
            }
        };
        let Some((row, key)) = row else {
            // Removed or written meanwhile: those bytes win.
            let _ = std::fs::remove_file(&tmp);
            self.db.delete_origin(ino).map_err(SyncError::local)?;
            return Ok(false);
        };
        self.db.put_inode(&row).map_err(SyncError::local)?;
        if let Some(hash) = version.hash {
            // Known without reading the file: the download verified it.
            crate::sync::remember_hash(self, ino, key, hash);
        }
        self.db.delete_origin(ino).map_err(SyncError::local)?;
        self.invalidate(Invalidation::Inode(ino));
        tracing::debug!(ino, %from, rev = %version.rev, "fetched the bytes of a moved save");
        Ok(true)
    }

    /// [`SaveFs::fetch_moved`] for whatever inode is at `path` now.
    pub(crate) async fn fetch_moved_at(
        &self,
        path: &savesync_core::SavePath,
    ) -> Result<(), SyncError> {
        let ino = lock(&self.table).lookup_path(path);
        if let Some(ino) = ino {
            match self.fetch_moved(ino).await {
                Ok(_) => {}
                // The origin version is gone from the server too: nothing left to fetch.
                Err(SyncError::Remote(RemoteError::NotFound)) => {
                    tracing::warn!(%path, "the moved save's bytes are gone from the server");
                    self.db.delete_origin(ino).map_err(SyncError::local)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
