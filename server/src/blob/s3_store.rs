//! [`S3BlobStore`]: blobs as objects in an S3-compatible bucket (AWS, MinIO, Garage, R2,
//! Backblaze, moto), through `object_store`. Same layout as the directory store under the
//! URL's prefix: `<prefix>/ab/cd/<sha256>`, staging under `<prefix>/tmp/`.
//!
//! An upload streams into a private staging object while it is hashed and size-checked
//! (one `PUT` for a small body; a multipart upload for a big one, so memory stays bounded
//! by a few parts). Publishing server-side copies the verified staging object to its hash
//! key, which S3 makes visible atomically and only when complete, then deletes the staging
//! object. Identical content is copied again rather than skipped: the copy refreshes the
//! object's last-modified time, which garbage collection's grace period reads.
//!
//! A staged blob that is dropped deletes its staging object in the background; an upload
//! cut off mid-body aborts its multipart upload. A crash leaves at most a staging object
//! (removed by [`BlobStore::sweep_staging`]) or an incomplete multipart upload (removed by
//! the bucket's lifecycle rule, see docs/operations.md).

use super::s3::{BlobUrl, S3Settings, blob_error};
use super::{BlobBody, BlobError, BlobReader, BlobStore, Digests, StagedBlob, StoredBlob};
use futures::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use savesync_core::{ContentHash, ContentHasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Bodies up to this size are staged with one `PUT`; bigger ones as a multipart upload in
/// parts of this size (S3's minimum part size).
const PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts of one upload in flight at once: with the part being filled, memory per upload
/// stays under `(PART_CONCURRENCY + 1) * PART_BYTES`.
const PART_CONCURRENCY: usize = 2;

/// How hard object_store retries a failing request before the store reports
/// `Unavailable`. Short, because a device retries the whole request itself.
#[derive(Debug, Clone, Copy)]
pub struct S3Retry {
    pub max_retries: usize,
    pub retry_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for S3Retry {
    fn default() -> Self {
        S3Retry {
            max_retries: 4,
            retry_timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// The S3-compatible blob store.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    store: Arc<dyn ObjectStore>,
    /// `<prefix>` (possibly empty): blobs below it, staging in `<prefix>/tmp`.
    root: Path,
}

impl S3BlobStore {
    /// A client for `url`'s bucket. Makes no request; see [`S3BlobStore::check_bucket`].
    pub fn new(
        url: &BlobUrl,
        settings: &S3Settings,
        retry: S3Retry,
    ) -> anyhow::Result<S3BlobStore> {
        let options = ClientOptions::new()
            .with_allow_http(settings.plain_http()?)
            .with_connect_timeout(retry.connect_timeout)
            // Downloads of big blobs to slow devices stream for a long time; the request
            // deadline is the HTTP layer's job, not this client's.
            .with_timeout_disabled();
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&url.bucket)
            .with_region(settings.region.as_deref().unwrap_or("us-east-1"))
            .with_client_options(options)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(50),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: retry.max_retries,
                retry_timeout: retry.retry_timeout,
            });
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(key) = &settings.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let store = builder.build().map_err(|e| anyhow::anyhow!("S3 client for {url:?}: {e}"))?;
        Ok(S3BlobStore { store: Arc::new(store), root: Path::from(url.prefix.as_str()) })
    }

    /// Fail unless the bucket answers a listing (wrong bucket, credentials or endpoint), so
    /// `serve` stops at start instead of on the first upload.
    pub async fn check_bucket(&self) -> Result<(), BlobError> {
        self.store.list_with_delimiter(Some(&self.staging_dir())).await.map_err(blob_error)?;
        Ok(())
    }

    /// The key of the blob with this hash.
    #[must_use]
    pub fn key_of(&self, hash: &ContentHash) -> Path {
        let hex = hash.to_hex();
        self.root.child(&hex[0..2]).child(&hex[2..4]).child(hex.as_str())
    }

    fn staging_dir(&self) -> Path {
        self.root.child("tmp")
    }

    /// The hash named by `key` if it is a blob key (`<root>/ab/cd/<hex>`, consistent).
    fn hash_of_key(&self, key: &Path) -> Option<ContentHash> {
        let parts: Vec<_> = key.prefix_match(&self.root)?.collect();
        let [a, b, name] = parts.as_slice() else { return None };
        let hash: ContentHash = name.as_ref().parse().ok()?;
        let hex = hash.to_hex();
        (a.as_ref() == &hex[0..2] && b.as_ref() == &hex[2..4]).then_some(hash)
    }
}

/// Deletes a staging object or aborts a multipart upload when dropped before it was
/// handed on: the background task runs on the current Tokio runtime.
#[derive(Debug)]
enum Leftover {
    Upload(BufWriter),
    Object(Arc<dyn ObjectStore>, Path),
}

fn clean_up_later(leftover: Leftover) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no runtime to remove an S3 staging object; sweep_staging will");
        return;
    };
    runtime.spawn(async move {
        let result = match leftover {
            Leftover::Upload(mut writer) => writer.abort().await,
            Leftover::Object(store, key) => store.delete(&key).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not remove an S3 staging leftover");
        }
    });
}

/// An upload in progress; dropping it aborts.
#[derive(Debug)]
struct UploadGuard(Option<BufWriter>);

impl Drop for UploadGuard {
    fn drop(&mut self) {
        if let Some(writer) = self.0.take() {
            clean_up_later(Leftover::Upload(writer));
        }
    }
}

/// A verified-size body in a staging object; dropping it deletes the object.
#[derive(Debug)]
struct S3Staged {
    store: Arc<dyn ObjectStore>,
    /// `None` once handed on (published or deleted).
    staging: Option<Path>,
    target: Path,
    hash: ContentHash,
    md5: Option<[u8; 16]>,
    size: u64,
}

impl Drop for S3Staged {
    fn drop(&mut self) {
        if let Some(key) = self.staging.take() {
            clean_up_later(Leftover::Object(Arc::clone(&self.store), key));
        }
    }
}

#[async_trait::async_trait]
impl StagedBlob for S3Staged {
    fn hash(&self) -> ContentHash {
        self.hash
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn md5(&self) -> Option<[u8; 16]> {
        self.md5
    }

    async fn publish(mut self: Box<Self>, declared: &ContentHash) -> Result<(), BlobError> {
        if self.hash != *declared {
            // Dropping `self` deletes the staging object: nothing is stored.
            return Err(BlobError::HashMismatch { declared: *declared, actual: self.hash });
        }
        let Some(staging) = self.staging.clone() else {
            return Err(BlobError::Backend("staged blob already handed on".into()));
        };
        self.store.copy(&staging, &self.target).await.map_err(blob_error)?;
        // Visible now. Remove the staging copy; if that fails, sweep_staging will.
        self.staging = None;
        if let Err(e) = self.store.delete(&staging).await {
            tracing::warn!(error = %e, "could not delete an S3 staging object after publish");
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl BlobStore for S3BlobStore {
    async fn stage(
        &self,
        mut body: BlobBody,
        limit: u64,
        digests: Digests,
    ) -> Result<Box<dyn StagedBlob>, BlobError> {
        let name = format!("upload-{}", hex::encode(rand::random::<[u8; 16]>()));
        let staging = self.staging_dir().child(name.as_str());
        let writer = BufWriter::with_capacity(Arc::clone(&self.store), staging.clone(), PART_BYTES)
            .with_max_concurrency(PART_CONCURRENCY);
        let mut upload = UploadGuard(Some(writer));
        let mut md5 = (digests == Digests::WithMd5).then(Md5::new);
        let (mut hasher, mut size) = (ContentHasher::new(), 0u64);
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(BlobError::TooLarge { limit }); // the guard aborts
            }
            hasher.update(&chunk);
            if let Some(md5) = &mut md5 {
                md5.update(&chunk);
            }
            if let Some(writer) = upload.0.as_mut() {
                writer.put(chunk).await.map_err(blob_error)?;
            }
        }
        let mut writer = upload.0.take().ok_or_else(|| BlobError::Backend("no upload".into()))?;
        if let Err(e) = tokio::io::AsyncWriteExt::shutdown(&mut writer).await {
            // A failed completion may still have left the object or upload behind.
            clean_up_later(Leftover::Object(Arc::clone(&self.store), staging));
            return Err(io_blob_error(e));
        }
        let hash = hasher.finish();
        Ok(Box::new(S3Staged {
            store: Arc::clone(&self.store),
            staging: Some(staging),
            target: self.key_of(&hash),
            hash,
            md5: md5.map(|m| m.finalize().into()),
            size,
        }))
    }

    async fn get(&self, hash: &ContentHash) -> Result<(BlobReader, u64), BlobError> {
        let found = self.store.get(&self.key_of(hash)).await.map_err(blob_error)?;
        let size = found.meta.size;
        let stream = found.into_stream().map_err(std::io::Error::other);
        Ok((Box::pin(tokio_util::io::StreamReader::new(stream)), size))
    }

    async fn contains(&self, hash: &ContentHash) -> Result<bool, BlobError> {
        match self.store.head(&self.key_of(hash)).await.map_err(blob_error) {
            Ok(_) => Ok(true),
            Err(BlobError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn modified(&self, hash: &ContentHash) -> Result<Option<SystemTime>, BlobError> {
        match self.store.head(&self.key_of(hash)).await.map_err(blob_error) {
            Ok(meta) => Ok(Some(SystemTime::from(meta.last_modified))),
            Err(BlobError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, hash: &ContentHash) -> Result<(), BlobError> {
        match self.store.delete(&self.key_of(hash)).await.map_err(blob_error) {
            Ok(()) | Err(BlobError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list(&self) -> Result<Vec<StoredBlob>, BlobError> {
        let root = (!self.root.as_ref().is_empty()).then_some(&self.root);
        let mut listing = self.store.list(root);
        let mut out = Vec::new();
        while let Some(meta) = listing.try_next().await.map_err(blob_error)? {
            if let Some(hash) = self.hash_of_key(&meta.location) {
                out.push(StoredBlob { hash, modified: SystemTime::from(meta.last_modified) });
            }
        }
        Ok(out)
    }

    async fn sweep_staging(&self, older_than: Duration) -> Result<usize, BlobError> {
        let cutoff = SystemTime::now().checked_sub(older_than).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut listing = self.store.list(Some(&self.staging_dir()));
        let mut stale = Vec::new();
        while let Some(meta) = listing.try_next().await.map_err(blob_error)? {
            if SystemTime::from(meta.last_modified) <= cutoff {
                stale.push(meta.location);
            }
        }
        for key in &stale {
            match self.store.delete(key).await.map_err(blob_error) {
                Ok(()) | Err(BlobError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(stale.len())
    }
}

/// `BufWriter`'s completion reports an `io::Error` wrapping the object_store error.
fn io_blob_error(e: std::io::Error) -> BlobError {
    match e.into_inner().map(|inner| inner.downcast::<object_store::Error>()) {
        Some(Ok(store_error)) => blob_error(*store_error),
        Some(Err(other)) => BlobError::Backend(other),
        None => BlobError::Backend("S3 upload failed".into()),
    }
}
