//! [`LocalStore`] for the mount's tree: what the engine sees of the inode table and the
//! cache files, and the transactions it asks for (carried out in `install.rs` and
//! `moved.rs`).

use super::inode_table::InodeTable;
use super::{LocalTree, hash_cache, install, lock, tree_entry};
use crate::local::{Entry, Installed, LocalBytes, LocalResult, LocalStore};
use crate::state::{ConflictRow, StatKey, StateDb};
use bytes::Bytes;
use savesync_core::{ContentHash, SavePath, Version};
use std::path::PathBuf;

/// Saves up to this size are read into memory to hash and upload; bigger ones are hashed
/// and uploaded by streaming the cache file, so a 64 MiB memory card never sits in RAM.
const IN_MEMORY_MAX: u64 = 4 * 1024 * 1024;

impl LocalStore for LocalTree {
    fn db(&self) -> &StateDb {
        &self.db
    }

    fn entry(&self, path: &SavePath) -> LocalResult<Entry> {
        let t = lock(&self.table);
        Ok(t.lookup_path(path).map_or_else(Entry::absent, |ino| tree_entry(&t, ino)))
    }

    fn saves(&self) -> LocalResult<Vec<(SavePath, Entry)>> {
        let t = lock(&self.table);
        Ok(files(&t).map(|(ino, path)| (path, tree_entry(&t, ino))).collect())
    }

    fn hash(&self, path: &SavePath) -> LocalResult<Option<ContentHash>> {
        let ino = {
            let t = lock(&self.table);
            t.lookup_path(path).filter(|ino| t.get(*ino).is_some_and(|i| i.row.cached))
        };
        match ino {
            Some(ino) => Ok(Some(hash_cache::hash_of(self, ino)?)),
            None => Ok(None),
        }
    }

    fn read(&self, path: &SavePath) -> LocalResult<(ContentHash, LocalBytes)> {
        let ino = lock(&self.table)
            .lookup_path(path)
            .ok_or_else(|| crate::local::LocalError(format!("{path}: not on this device")))?;
        let p = self.cache_path(ino);
        let stat = StatKey::of(&std::fs::metadata(&p)?);
        let (hash, bytes) = if stat.size <= IN_MEMORY_MAX {
            let bytes = Bytes::from(std::fs::read(&p)?);
            (ContentHash::of(&bytes), LocalBytes::Small(bytes))
        } else {
            (crate::file_hash::hash_file(&p, |_| {})?, LocalBytes::Large(p))
        };
        self.count_read(stat.size);
        hash_cache::remember(self, ino, stat, hash);
        Ok((hash, bytes))
    }

    fn save_bytes_read(&self) -> u64 {
        self.bytes_read()
    }

    fn download_tmp(&self, _path: &SavePath) -> PathBuf {
        self.tmp_path("download")
    }

    fn install(
        &self,
        path: &SavePath,
        tmp: PathBuf,
        v: Version,
        size: u64,
        seen: &Entry,
    ) -> LocalResult<Installed> {
        install::install(self, path, &tmp, v, size, seen)
    }

    fn shows_uncached(&self) -> bool {
        true
    }

    fn show_uncached(&self, saves: &[(SavePath, Version, u64)]) -> LocalResult<()> {
        install::show_uncached(self, saves)
    }

    fn remove(&self, path: &SavePath, v: Version, seen: &Entry) -> LocalResult<Installed> {
        install::remove(self, path, v, seen)
    }

    fn put_conflict(&self, path: &SavePath, tmp: PathBuf, row: &ConflictRow) -> LocalResult<()> {
        install::put_conflict(self, path, &tmp, row)
    }

    fn drop_conflict(&self, path: &SavePath, row: &ConflictRow) -> LocalResult<()> {
        install::drop_conflict(self, path, row)
    }

    fn origin(&self, path: &SavePath) -> LocalResult<Option<(SavePath, Version)>> {
        self.origin_at(path)
    }

    fn install_origin(&self, path: &SavePath, tmp: PathBuf, v: Version) -> LocalResult<()> {
        self.install_moved(path, &tmp, v)
    }

    fn forget_origin(&self, path: &SavePath) -> LocalResult<()> {
        self.forget_origin_at(path)
    }

    fn moved_from(&self, path: &SavePath) -> LocalResult<Vec<SavePath>> {
        self.moved_away_from(path)
    }
}

/// The regular files of the tree with their save paths.
fn files(t: &InodeTable) -> impl Iterator<Item = (u64, SavePath)> + '_ {
    t.save_paths_below(super::ROOT_INO)
        .into_iter()
        .filter(|(ino, _)| t.get(*ino).is_some_and(|i| i.row.kind == crate::state::InodeKind::File))
}
