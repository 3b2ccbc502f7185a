//! Saves moved (renamed, or moved with their directory) before their bytes were ever
//! downloaded. A rename must not download anything while the kernel holds its rename lock,
//! so the moved inode keeps an *origin* in the state DB: the server version (old path,
//! rev, hash) its bytes are. The engine fetches them later, with no lock held: when the
//! file is opened, or when the uploader gets to the new path, which is uploaded from them.
//! The server keeps that version in the old path's history after the old path is deleted.

use super::{Invalidation, LocalTree, cache_stat, lock};
use crate::local::LocalResult;
use crate::state::StatKey;
use savesync_core::{SavePath, Version};
use std::path::Path;

impl LocalTree {
    /// Where the bytes of the moved, never-downloaded save at `path` are on the server.
    /// An origin whose inode got bytes meanwhile (written, or fetched) is dropped.
    pub(super) fn origin_at(&self, path: &SavePath) -> LocalResult<Option<(SavePath, Version)>> {
        let Some(ino) = lock(&self.table).lookup_path(path) else { return Ok(None) };
        let Some(origin) = self.db.origin(ino)? else { return Ok(None) };
        if lock(&self.table).get(ino).is_none_or(|i| i.row.cached) {
            self.db.delete_origin(ino)?;
            return Ok(None);
        }
        Ok(Some(origin))
    }

    /// Put the fetched bytes (`tmp`, version `v` of the origin) in place, unless the inode
    /// was removed or written meanwhile (those bytes win).
    pub(super) fn install_moved(&self, path: &SavePath, tmp: &Path, v: Version) -> LocalResult<()> {
        super::install::sync_download(tmp)?;
        let Some(ino) = lock(&self.table).lookup_path(path) else {
            let _ = std::fs::remove_file(tmp);
            return Ok(());
        };
        let row = {
            let mut t = lock(&self.table);
            match t.get_mut(ino) {
                Some(inode) if !inode.row.cached => {
                    let cache = self.cache_path(ino);
                    std::fs::rename(tmp, &cache)?;
                    let stat = std::fs::metadata(&cache)?;
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
            let _ = std::fs::remove_file(tmp);
            self.db.delete_origin(ino)?;
            return Ok(());
        };
        self.db.put_inode(&row)?;
        if let Some(hash) = v.hash {
            // Known without reading the file: the download verified it.
            super::hash_cache::remember(self, ino, key, hash);
        }
        self.db.delete_origin(ino)?;
        self.invalidate(Invalidation::Inode(ino));
        tracing::debug!(ino, %path, rev = %v.rev, "fetched the bytes of a moved save");
        Ok(())
    }

    /// The origin of the save at `path` is gone from the server: forget it.
    pub(super) fn forget_origin_at(&self, path: &SavePath) -> LocalResult<()> {
        if let Some(ino) = lock(&self.table).lookup_path(path) {
            self.db.delete_origin(ino)?;
        }
        Ok(())
    }

    /// Current paths of saves whose bytes are still only at `from` on the server.
    pub(super) fn moved_away_from(&self, from: &SavePath) -> LocalResult<Vec<SavePath>> {
        let inos = self.db.moved_from(from)?;
        let t = lock(&self.table);
        Ok(inos.into_iter().filter_map(|ino| t.save_path(ino)).collect())
    }
}
