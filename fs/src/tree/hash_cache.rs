//! Content hashes of cache files, remembered in the state DB by the file's stat.
//!
//! A negotiation needs the hash of every cached save. Reading them all again on every
//! reconnect cost a device with a big library its battery, so a hash is kept with the
//! (size, mtime ns, file inode) it was computed at and reused while the stat is unchanged.
//! A hash is only stored when the stat was the same before and after reading, so a file
//! written during hashing is hashed again next time. A write that kept size and mtime
//! (same clock tick) would not be noticed here, but every write through the mount also
//! queues the save, and the uploader always decides from the real bytes.
//!
//! Every byte read here is counted in the tree's `save_bytes_read`.

use super::LocalTree;
use crate::state::StatKey;
use savesync_core::ContentHash;
use std::path::Path;

/// The hash of `ino`'s cache file: from the DB when its stat is unchanged, else read.
pub(crate) fn hash_of(tree: &LocalTree, ino: u64) -> std::io::Result<ContentHash> {
    let path = tree.cache_path(ino);
    let before = StatKey::of(&std::fs::metadata(&path)?);
    if let Ok(Some(hash)) = tree.db.cached_hash(ino, before) {
        return Ok(hash);
    }
    let hash = hash_counted(tree, &path)?;
    remember(tree, ino, before, hash);
    Ok(hash)
}

/// Store `hash` for `ino` if the cache file still has the stat `before` (it was read at).
pub(crate) fn remember(tree: &LocalTree, ino: u64, before: StatKey, hash: ContentHash) {
    let Ok(meta) = std::fs::metadata(tree.cache_path(ino)) else { return };
    if StatKey::of(&meta) == before
        && let Err(e) = tree.db.remember_hash(ino, before, hash)
    {
        tracing::debug!(ino, "remembering a hash: {e}");
    }
}

/// Hash a file in chunks, counting the bytes read.
fn hash_counted(tree: &LocalTree, path: &Path) -> std::io::Result<ContentHash> {
    crate::file_hash::hash_file(path, |n| tree.count_read(n))
}
