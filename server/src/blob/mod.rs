//! Content-addressed blob storage behind the narrow async [`BlobStore`] trait, so an
//! S3-compatible store can replace the local directory without touching handlers.
//!
//! An incoming body is a [`BlobBody`] stream. [`BlobStore::stage`] consumes it, hashing
//! and enforcing the size limit as bytes arrive, into a private [`StagedBlob`] that nothing
//! can see; only [`StagedBlob::publish`] makes it visible under its hash, and only after
//! the hash matched the one the client declared and the bytes are durable. A staged blob
//! that is dropped instead leaves nothing behind. [`BlobStore::put`] is both steps at once;
//! the upload handler keeps them apart so it can check the quota on the real size, and
//! hold the GC lock only from publish to commit.

mod fs_store;
mod open;
pub(crate) mod s3;
mod s3_store;
mod writer;

pub use fs_store::FsBlobStore;
pub use open::open_from_config;
pub use s3::{BlobUrl, S3Settings};
pub use s3_store::{S3BlobStore, S3Retry};

use bytes::Bytes;
use futures::Stream;
use savesync_core::ContentHash;
use std::io;
use std::pin::Pin;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncRead;

/// A body to store: chunks, or the error that cut it short.
pub type BlobBody = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// A stored blob being read.
pub type BlobReader = Pin<Box<dyn AsyncRead + Send>>;

/// Why a blob could not be stored or read. Backend-neutral: a store maps its own errors.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("no such blob")]
    NotFound,
    #[error("body is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("body hashes to {actual}, not the declared {declared}")]
    HashMismatch { declared: ContentHash, actual: ContentHash },
    #[error("no space left on the blob volume")]
    StorageFull,
    /// The store is unreachable or overloaded right now; retrying may succeed.
    #[error("the blob store is unavailable: {0}")]
    Unavailable(String),
    /// Any other failure of the backend (I/O, a driver).
    #[error("blob backend: {0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

impl From<io::Error> for BlobError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(libc_enospc()) {
            BlobError::StorageFull
        } else {
            BlobError::Backend(Box::new(e))
        }
    }
}

/// ENOSPC on Linux and the BSDs; kept local so the crate needs no libc dependency.
const fn libc_enospc() -> i32 {
    28
}

/// A visible blob as [`BlobStore::list`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBlob {
    pub hash: ContentHash,
    /// When the blob was last published (written, or re-published by a dedupe).
    pub modified: SystemTime,
}

/// A body received into private storage, with the hash and size of what arrived. Dropping
/// it discards the bytes.
#[async_trait::async_trait]
pub trait StagedBlob: Send + std::fmt::Debug {
    /// SHA-256 of the staged bytes.
    fn hash(&self) -> ContentHash;

    /// Number of staged bytes.
    fn size(&self) -> u64;

    /// MD5 of the staged bytes, if staging computed it ([`Digests::WithMd5`]; the WebDAV
    /// manifest needs it; without it the server computes it from the blob when asked).
    fn md5(&self) -> Option<[u8; 16]> {
        None
    }

    /// Make the blob durable and visible under its hash if it matches `declared`
    /// (`HashMismatch` otherwise, storing nothing). Identical content already stored is
    /// kept (its modification time refreshed, so garbage collection's grace period counts
    /// from this publish) and the staged copy dropped (dedupe). Returns only once a reader
    /// would see it.
    async fn publish(self: Box<Self>, declared: &ContentHash) -> Result<(), BlobError>;
}

/// Which digests staging computes besides the SHA-256 that names the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digests {
    /// The SHA-256 only.
    Sha256,
    /// Also the MD5, for an upload the WebDAV face's next manifest lists (`crate::dav`).
    /// Elsewhere it is left out: on an x86 server with SHA extensions the MD5 cost three
    /// times the SHA-256 and a tenth of all the server's CPU per upload, for a manifest
    /// that can compute it from the blob when it first needs it.
    WithMd5,
}

/// Where verified blobs live.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Receive `body` into private staging, hashing as it arrives; `TooLarge` as soon as
    /// more than `limit` bytes came. Nothing is visible until [`StagedBlob::publish`].
    async fn stage(
        &self,
        body: BlobBody,
        limit: u64,
        digests: Digests,
    ) -> Result<Box<dyn StagedBlob>, BlobError>;

    /// Store `body` as the blob `declared`: stage, verify, publish. Returns the size.
    async fn put(
        &self,
        declared: &ContentHash,
        body: BlobBody,
        limit: u64,
    ) -> Result<u64, BlobError> {
        let staged = self.stage(body, limit, Digests::Sha256).await?;
        let size = staged.size();
        staged.publish(declared).await?;
        Ok(size)
    }

    /// A reader over a stored blob and its size; `NotFound` when it is not stored.
    async fn get(&self, hash: &ContentHash) -> Result<(BlobReader, u64), BlobError>;

    /// Whether the blob is stored.
    async fn contains(&self, hash: &ContentHash) -> Result<bool, BlobError>;

    /// Delete a stored blob; absent is fine.
    async fn delete(&self, hash: &ContentHash) -> Result<(), BlobError>;

    /// Every stored blob with when it was last written (for garbage collection, which
    /// spares blobs younger than its grace period: another replica may be between
    /// publishing one and committing the version that references it).
    async fn list(&self) -> Result<Vec<StoredBlob>, BlobError>;

    /// When the stored blob was last published, or `None` when it is not stored. Garbage
    /// collection re-checks this right before deleting, so a dedupe on another replica
    /// after its listing is seen. The default scans [`BlobStore::list`]; stores override it
    /// with a single lookup (a `stat`, a `HEAD`).
    async fn modified(&self, hash: &ContentHash) -> Result<Option<SystemTime>, BlobError> {
        Ok(self.list().await?.into_iter().find(|b| b.hash == *hash).map(|b| b.modified))
    }

    /// Delete staging leftovers older than `older_than` (a crash mid-upload); returns how
    /// many.
    async fn sweep_staging(&self, older_than: Duration) -> Result<usize, BlobError>;

    /// Prove an upload could be staged right now (for `GET /health`): stage a little and
    /// drop it. A full volume fails with `StorageFull`.
    async fn check_writable(&self) -> Result<(), BlobError> {
        let probe = futures::stream::once(async { Ok(Bytes::from_static(&[0u8; 4096])) });
        drop(self.stage(Box::pin(probe), 4096, Digests::Sha256).await?);
        Ok(())
    }
}

/// A [`BlobBody`] of one in-memory buffer (tests, tools).
#[must_use]
pub fn body_of(bytes: impl Into<Bytes>) -> BlobBody {
    let bytes = bytes.into();
    Box::pin(futures::stream::once(async move { Ok(bytes) }))
}
