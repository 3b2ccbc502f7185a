//! [`FsBlobStore`]: blobs as files named by their SHA-256 under `root/ab/cd/<hex>`, staged in
//! `root/tmp/` (same filesystem, so the final rename is atomic). Publishing fsyncs the
//! file, renames it into place and fsyncs the directory, on a blocking thread.

use super::writer::BlobWriter;
use super::{BlobBody, BlobError, BlobReader, BlobStore, Digests, StagedBlob, StoredBlob};
use futures::StreamExt;
use savesync_core::ContentHash;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The local-directory blob store.
#[derive(Debug)]
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// Open (creating) the store at `root`. Leftover staging files are NOT removed here:
    /// the admin CLI opens the store while `serve` may be mid-upload. Garbage collection
    /// sweeps old ones instead.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<FsBlobStore> {
        let root = root.into();
        fs::create_dir_all(root.join("tmp"))?;
        Ok(FsBlobStore { root })
    }

    /// Where the blob with this hash lives.
    #[must_use]
    pub fn path_of(&self, hash: &ContentHash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join(&hex[0..2]).join(&hex[2..4]).join(hex)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Run blocking file work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlobError::Unavailable(format!("blocking task failed: {e}")))?
}

/// A body in `root/tmp/`; dropping it deletes the file.
#[derive(Debug)]
struct FsStaged {
    file: tempfile::NamedTempFile,
    target: PathBuf,
    hash: ContentHash,
    md5: Option<[u8; 16]>,
    size: u64,
}

#[async_trait::async_trait]
impl StagedBlob for FsStaged {
    fn hash(&self) -> ContentHash {
        self.hash
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn md5(&self) -> Option<[u8; 16]> {
        self.md5
    }

    async fn publish(self: Box<Self>, declared: &ContentHash) -> Result<(), BlobError> {
        if self.hash != *declared {
            // Dropping `self` removes the temp file: nothing is stored.
            return Err(BlobError::HashMismatch { declared: *declared, actual: self.hash });
        }
        blocking(move || {
            let FsStaged { file, target, .. } = *self;
            if refresh_modified(&target)? {
                return Ok(());
            }
            let parent =
                target.parent().ok_or_else(|| io::Error::other("blob path has no parent"))?;
            fs::create_dir_all(parent)?;
            file.as_file().sync_all()?;
            file.persist(&target).map_err(|e| BlobError::from(e.error))?;
            // The rename is only durable once the directory entry is.
            sync_dir(parent)?;
            Ok(())
        })
        .await
    }
}

/// Dedupe: if `target` is already stored, set its modification time to now (so garbage
/// collection's grace period restarts for the upload about to reference it) and return
/// true; false when it is not stored.
fn refresh_modified(target: &Path) -> Result<bool, BlobError> {
    match fs::OpenOptions::new().write(true).open(target) {
        Ok(file) => {
            file.set_modified(std::time::SystemTime::now())?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

impl FsBlobStore {
    fn list_blocking(root: &Path) -> Result<Vec<StoredBlob>, BlobError> {
        let mut out = Vec::new();
        for level1 in fs::read_dir(root)? {
            let level1 = level1?;
            if level1.file_name().len() != 2 || !level1.file_type()?.is_dir() {
                continue; // `tmp/` and anything foreign
            }
            for level2 in fs::read_dir(level1.path())? {
                let level2 = level2?;
                if !level2.file_type()?.is_dir() {
                    continue;
                }
                for blob in fs::read_dir(level2.path())? {
                    let blob = blob?;
                    let Some(hash) = blob.file_name().to_str().and_then(|n| n.parse().ok()) else {
                        continue;
                    };
                    let modified = match blob.metadata() {
                        Ok(meta) => meta.modified()?,
                        // Deleted since the directory was read.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e.into()),
                    };
                    out.push(StoredBlob { hash, modified });
                }
            }
        }
        Ok(out)
    }

    fn sweep_blocking(tmp: &Path, older_than: Duration) -> Result<usize, BlobError> {
        let mut removed = 0;
        for entry in fs::read_dir(tmp)? {
            let entry = entry?;
            let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
            if age >= older_than {
                match fs::remove_file(entry.path()) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
                    _ => removed += 1,
                }
            }
        }
        Ok(removed)
    }
}

#[async_trait::async_trait]
impl BlobStore for FsBlobStore {
    async fn stage(
        &self,
        mut body: BlobBody,
        limit: u64,
        digests: Digests,
    ) -> Result<Box<dyn StagedBlob>, BlobError> {
        let file = tempfile::Builder::new().prefix("upload-").tempfile_in(self.root.join("tmp"))?;
        let mut writer = BlobWriter::new(file.as_file().try_clone()?, limit, digests);
        while let Some(chunk) = body.next().await {
            writer.write(&chunk?).await?;
        }
        let (hash, md5, size) = writer.finish().await?;
        Ok(Box::new(FsStaged { file, target: self.path_of(&hash), hash, md5, size }))
    }

    async fn get(&self, hash: &ContentHash) -> Result<(BlobReader, u64), BlobError> {
        let file = match tokio::fs::File::open(self.path_of(hash)).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(BlobError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let size = file.metadata().await?.len();
        Ok((Box::pin(file), size))
    }

    async fn contains(&self, hash: &ContentHash) -> Result<bool, BlobError> {
        Ok(tokio::fs::try_exists(self.path_of(hash)).await?)
    }

    async fn delete(&self, hash: &ContentHash) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.path_of(hash)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn list(&self) -> Result<Vec<StoredBlob>, BlobError> {
        let root = self.root.clone();
        blocking(move || FsBlobStore::list_blocking(&root)).await
    }

    async fn modified(&self, hash: &ContentHash) -> Result<Option<SystemTime>, BlobError> {
        match tokio::fs::metadata(self.path_of(hash)).await {
            Ok(meta) => Ok(Some(meta.modified()?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn sweep_staging(&self, older_than: Duration) -> Result<usize, BlobError> {
        let tmp = self.root.join("tmp");
        blocking(move || FsBlobStore::sweep_blocking(&tmp, older_than)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    async fn stage(
        store: &FsBlobStore,
        bytes: &[u8],
        limit: u64,
    ) -> Result<Box<dyn StagedBlob>, BlobError> {
        let chunks: Vec<io::Result<Bytes>> =
            bytes.chunks(7).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        store.stage(Box::pin(futures::stream::iter(chunks)), limit, Digests::WithMd5).await
    }

    fn staging_is_empty(dir: &Path) -> bool {
        fs::read_dir(dir.join("tmp")).unwrap().next().is_none()
    }

    #[tokio::test]
    async fn verified_blob_is_renamed_to_its_hash_path_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let hash = ContentHash::of(b"chrono trigger sram");
        let staged = stage(&store, b"chrono trigger sram", 1024).await.unwrap();
        assert_eq!(staged.hash(), hash);
        // The MD5 the WebDAV manifest needs is computed on the same pass when asked for.
        let md5: [u8; 16] = <md5::Md5 as md5::Digest>::digest(b"chrono trigger sram").into();
        assert_eq!(staged.md5(), Some(md5));
        let body = super::super::body_of(&b"chrono trigger sram"[..]);
        let plain = store.stage(body, 1024, Digests::Sha256).await.unwrap();
        assert_eq!((plain.hash(), plain.md5()), (hash, None), "the MD5 only when asked for");
        drop(plain);
        staged.publish(&hash).await.unwrap();
        let hex = hash.to_hex();
        let expected = dir.path().join(&hex[..2]).join(&hex[2..4]).join(&hex);
        assert_eq!(fs::read(expected).unwrap(), b"chrono trigger sram");
        assert!(staging_is_empty(dir.path()));
        let listed = store.list().await.unwrap();
        assert_eq!(listed.iter().map(|b| b.hash).collect::<Vec<_>>(), vec![hash]);
        assert!(store.contains(&hash).await.unwrap());
        let (mut reader, size) = store.get(&hash).await.unwrap();
        let mut read = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut read).await.unwrap();
        assert_eq!((read.as_slice(), size), (&b"chrono trigger sram"[..], 19));
    }

    #[tokio::test]
    async fn identical_content_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let hash = ContentHash::of(b"same");
        for _ in 0..2 {
            assert_eq!(
                store.put(&hash, super::super::body_of(&b"same"[..]), 1024).await.unwrap(),
                4
            );
        }
        assert_eq!(store.list().await.unwrap().len(), 1);
        assert!(staging_is_empty(dir.path()));
    }

    #[tokio::test]
    async fn list_reports_when_each_blob_was_published_and_a_dedupe_refreshes_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let hash = ContentHash::of(b"old save");
        store.put(&hash, super::super::body_of(&b"old save"[..]), 1024).await.unwrap();
        let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(store.path_of(&hash))
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        let listed = store.list().await.unwrap();
        assert_eq!(listed, vec![StoredBlob { hash, modified: hour_ago }]);
        assert_eq!(store.modified(&hash).await.unwrap(), Some(hour_ago));
        assert_eq!(store.modified(&ContentHash::of(b"other")).await.unwrap(), None);
        // The same content uploaded again: garbage collection must see a fresh blob.
        store.put(&hash, super::super::body_of(&b"old save"[..]), 1024).await.unwrap();
        let age = store.list().await.unwrap()[0].modified.elapsed().unwrap();
        assert!(age < Duration::from_secs(60), "age {age:?}");
    }

    #[tokio::test]
    async fn hash_mismatch_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let staged = stage(&store, b"actual bytes", 1024).await.unwrap();
        let err = staged.publish(&ContentHash::of(b"declared")).await.unwrap_err();
        assert!(matches!(err, BlobError::HashMismatch { .. }));
        assert!(store.list().await.unwrap().is_empty());
        assert!(staging_is_empty(dir.path()));
    }

    #[tokio::test]
    async fn body_over_the_limit_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let err = stage(&store, &[0u8; 100], 99).await.unwrap_err();
        assert!(matches!(err, BlobError::TooLarge { limit: 99 }));
        assert!(staging_is_empty(dir.path()));
    }

    #[tokio::test]
    async fn delete_removes_and_tolerates_absent_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let hash = ContentHash::of(b"x");
        store.put(&hash, super::super::body_of(&b"x"[..]), 10).await.unwrap();
        store.delete(&hash).await.unwrap();
        store.delete(&hash).await.unwrap();
        assert!(!store.contains(&hash).await.unwrap());
        assert!(matches!(store.get(&hash).await, Err(BlobError::NotFound)));
    }

    #[tokio::test]
    async fn sweep_removes_only_staging_files_older_than_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let leftover = dir.path().join("tmp").join("upload-crashed");
        fs::write(&leftover, b"half").unwrap();
        assert_eq!(store.sweep_staging(Duration::from_secs(3600)).await.unwrap(), 0);
        assert!(leftover.exists());
        assert_eq!(store.sweep_staging(Duration::ZERO).await.unwrap(), 1);
        assert!(staging_is_empty(dir.path()));
    }
}
