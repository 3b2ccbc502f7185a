//! Content-addressed blob storage behind the narrow [`BlobStore`] trait, so an
//! S3-compatible store can replace the local directory without touching handlers.
//!
//! Incoming bodies are streamed into a [`StagedBlob`] by a [`BlobWriter`], which hashes and
//! enforces the size limit as bytes arrive. Only [`BlobStore::persist`] makes a blob
//! visible, and only after its hash matched the one the client declared; a staged blob that
//! is dropped instead leaves nothing behind.

mod fs_store;
mod writer;

pub use fs_store::FsBlobStore;
pub use writer::BlobWriter;

use savesync_core::ContentHash;
use std::io;

/// Why a blob could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("body is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("body hashes to {actual}, not the declared {declared}")]
    HashMismatch { declared: ContentHash, actual: ContentHash },
    #[error("no space left on the blob volume")]
    StorageFull,
    #[error("blob I/O: {0}")]
    Io(io::Error),
}

impl From<io::Error> for BlobError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(libc_enospc()) {
            BlobError::StorageFull
        } else {
            BlobError::Io(e)
        }
    }
}

/// ENOSPC on Linux and the BSDs; kept local so the crate needs no libc dependency.
const fn libc_enospc() -> i32 {
    28
}

/// A body written to a private staging file, with the hash and size of what was written.
/// Dropping it deletes the file.
#[derive(Debug)]
pub struct StagedBlob {
    file: tempfile::NamedTempFile,
    hash: ContentHash,
    size: u64,
}

impl StagedBlob {
    /// SHA-256 of the staged bytes.
    #[must_use]
    pub fn hash(&self) -> ContentHash {
        self.hash
    }

    /// Number of staged bytes.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// Where verified blobs live.
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// A new, empty staging file for an incoming body.
    fn stage(&self) -> Result<tempfile::NamedTempFile, BlobError>;

    /// Make a staged blob durable under its hash if it matches `declared`; identical
    /// content already stored is kept and the staged copy dropped (dedupe).
    fn persist(&self, staged: StagedBlob, declared: &ContentHash) -> Result<(), BlobError>;

    /// Open a stored blob for reading; `None` when it is not stored.
    fn open(&self, hash: &ContentHash) -> Result<Option<std::fs::File>, BlobError>;

    /// Every stored blob (for garbage collection).
    fn list(&self) -> Result<Vec<ContentHash>, BlobError>;

    /// Delete staging files older than `older_than` (left by a crash mid-upload); returns
    /// how many.
    fn sweep_staging(&self, older_than: std::time::Duration) -> Result<usize, BlobError>;

    /// Delete a stored blob; absent is fine.
    fn remove(&self, hash: &ContentHash) -> Result<(), BlobError>;

    /// Prove an upload could be staged right now (for `GET /health`): create a staging
    /// file, write a little to it, drop it. A full volume fails with `StorageFull`.
    fn check_writable(&self) -> Result<(), BlobError> {
        use std::io::Write;
        let mut probe = self.stage()?;
        probe.write_all(&[0u8; 4096])?;
        probe.flush()?;
        Ok(())
    }
}
