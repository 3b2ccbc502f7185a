//! [`BlobWriter`]: streams an HTTP body into a staging file, hashing as it goes and
//! refusing to grow past the size limit, so an oversized or corrupt upload is detected
//! before anything becomes visible.

use super::{BlobError, StagedBlob};
use savesync_core::ContentHasher;
use tokio::io::{AsyncWriteExt, BufWriter};

/// Large enough that a 64 KiB save is one write to the file.
const BUFFER_BYTES: usize = 256 * 1024;

/// An in-progress staged body.
#[derive(Debug)]
pub struct BlobWriter {
    temp: tempfile::NamedTempFile,
    out: BufWriter<tokio::fs::File>,
    hasher: ContentHasher,
    size: u64,
    limit: u64,
}

impl BlobWriter {
    /// Wrap a staging file from [`super::BlobStore::stage`].
    pub fn new(temp: tempfile::NamedTempFile, limit: u64) -> Result<BlobWriter, BlobError> {
        let file = tokio::fs::File::from_std(temp.as_file().try_clone()?);
        Ok(BlobWriter {
            temp,
            out: BufWriter::with_capacity(BUFFER_BYTES, file),
            hasher: ContentHasher::new(),
            size: 0,
            limit,
        })
    }

    /// Append one chunk.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        let new_size = self.size + chunk.len() as u64;
        if new_size > self.limit {
            return Err(BlobError::TooLarge { limit: self.limit });
        }
        self.hasher.update(chunk);
        self.out.write_all(chunk).await?;
        self.size = new_size;
        Ok(())
    }

    /// Flush to the OS. The fsync happens in [`super::BlobStore::persist`], on a blocking
    /// thread, just before the rename that makes the blob visible.
    pub async fn finish(mut self) -> Result<StagedBlob, BlobError> {
        self.out.flush().await?;
        Ok(StagedBlob { file: self.temp, hash: self.hasher.finish(), size: self.size })
    }
}
