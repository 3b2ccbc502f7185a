//! [`hash_file`]: the content hash of a file, read in 256 KiB chunks, with every chunk's
//! size reported (stores count the save bytes they read). The one chunked hasher of the
//! device program: the mount's tree, the synced folder and `sync --dry-run` use it.

use savesync_core::{ContentHash, ContentHasher};
use std::io::Read;
use std::path::Path;

/// Hash the file at `path`; `on_read` hears the size of every chunk read.
pub fn hash_file(path: &Path, mut on_read: impl FnMut(u64)) -> std::io::Result<ContentHash> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = ContentHasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        on_read(n as u64);
        hasher.update(&buf[..n]);
    }
}
