//! [`BlobWriter`]: streams a body into a staging file, hashing as it goes and refusing to
//! grow past the size limit, so an oversized or corrupt upload is detected before
//! anything becomes visible. When asked ([`Digests::WithMd5`]) it also computes the body's
//! MD5 on the way, which the WebDAV face's manifest needs (`crate::dav`).

use super::{BlobError, Digests};
use md5::{Digest, Md5};
use savesync_core::{ContentHash, ContentHasher};
use tokio::io::{AsyncWriteExt, BufWriter};

/// Large enough that a 64 KiB save is one write to the file.
const BUFFER_BYTES: usize = 256 * 1024;

/// An in-progress staged body.
#[derive(Debug)]
pub struct BlobWriter {
    out: BufWriter<tokio::fs::File>,
    hasher: ContentHasher,
    md5: Option<Md5>,
    size: u64,
    limit: u64,
}

impl BlobWriter {
    /// Write into `file` (a handle on the staging file).
    pub fn new(file: std::fs::File, limit: u64, digests: Digests) -> BlobWriter {
        BlobWriter {
            out: BufWriter::with_capacity(BUFFER_BYTES, tokio::fs::File::from_std(file)),
            hasher: ContentHasher::new(),
            md5: (digests == Digests::WithMd5).then(Md5::new),
            size: 0,
            limit,
        }
    }

    /// Append one chunk.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        let new_size = self.size + chunk.len() as u64;
        if new_size > self.limit {
            return Err(BlobError::TooLarge { limit: self.limit });
        }
        self.hasher.update(chunk);
        if let Some(md5) = &mut self.md5 {
            md5.update(chunk);
        }
        self.out.write_all(chunk).await?;
        self.size = new_size;
        Ok(())
    }

    /// Flush to the OS; returns the hash, the MD5 if asked for, and the size. The fsync
    /// happens at publish, on a blocking thread, just before the rename that makes the blob
    /// visible.
    pub async fn finish(mut self) -> Result<(ContentHash, Option<[u8; 16]>, u64), BlobError> {
        self.out.flush().await?;
        Ok((self.hasher.finish(), self.md5.map(|m| m.finalize().into()), self.size))
    }
}
