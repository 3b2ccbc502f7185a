//! [`FsBlobStore`]: blobs as files named by their SHA-256 under `root/ab/cd/<hex>`, staged in
//! `root/tmp/` (same filesystem, so the final rename is atomic).

use super::{BlobError, BlobStore, StagedBlob};
use savesync_core::ContentHash;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

impl BlobStore for FsBlobStore {
    fn stage(&self) -> Result<tempfile::NamedTempFile, BlobError> {
        Ok(tempfile::Builder::new().prefix("upload-").tempfile_in(self.root.join("tmp"))?)
    }

    fn persist(&self, staged: StagedBlob, declared: &ContentHash) -> Result<(), BlobError> {
        if staged.hash != *declared {
            // Dropping `staged` removes the temp file: nothing is stored.
            return Err(BlobError::HashMismatch { declared: *declared, actual: staged.hash });
        }
        let target = self.path_of(declared);
        if target.exists() {
            return Ok(());
        }
        let parent = target.parent().ok_or_else(|| io::Error::other("blob path has no parent"))?;
        fs::create_dir_all(parent)?;
        staged.file.as_file().sync_all()?;
        staged.file.persist(&target).map_err(|e| BlobError::from(e.error))?;
        // The rename is only durable once the directory entry is.
        sync_dir(parent)?;
        Ok(())
    }

    fn open(&self, hash: &ContentHash) -> Result<Option<fs::File>, BlobError> {
        match fs::File::open(self.path_of(hash)) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn list(&self) -> Result<Vec<ContentHash>, BlobError> {
        let mut out = Vec::new();
        for level1 in fs::read_dir(&self.root)? {
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
                    let name = blob?.file_name();
                    if let Some(hash) = name.to_str().and_then(|n| n.parse().ok()) {
                        out.push(hash);
                    }
                }
            }
        }
        Ok(out)
    }

    fn sweep_staging(&self, older_than: Duration) -> Result<usize, BlobError> {
        let mut removed = 0;
        for entry in fs::read_dir(self.root.join("tmp"))? {
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

    fn remove(&self, hash: &ContentHash) -> Result<(), BlobError> {
        match fs::remove_file(self.path_of(hash)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::BlobWriter;

    async fn stage(store: &FsBlobStore, bytes: &[u8], limit: u64) -> Result<StagedBlob, BlobError> {
        let mut w = BlobWriter::new(store.stage()?, limit)?;
        for chunk in bytes.chunks(7) {
            w.write(chunk).await?;
        }
        w.finish().await
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
        store.persist(staged, &hash).unwrap();
        let hex = hash.to_hex();
        let expected = dir.path().join(&hex[..2]).join(&hex[2..4]).join(&hex);
        assert_eq!(fs::read(expected).unwrap(), b"chrono trigger sram");
        assert!(staging_is_empty(dir.path()));
        assert_eq!(store.list().unwrap(), vec![hash]);
        assert!(store.open(&hash).unwrap().is_some());
    }

    #[tokio::test]
    async fn identical_content_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let hash = ContentHash::of(b"same");
        for _ in 0..2 {
            let staged = stage(&store, b"same", 1024).await.unwrap();
            store.persist(staged, &hash).unwrap();
        }
        assert_eq!(store.list().unwrap().len(), 1);
        assert!(staging_is_empty(dir.path()));
    }

    #[tokio::test]
    async fn hash_mismatch_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let staged = stage(&store, b"actual bytes", 1024).await.unwrap();
        let err = store.persist(staged, &ContentHash::of(b"declared")).unwrap_err();
        assert!(matches!(err, BlobError::HashMismatch { .. }));
        assert!(store.list().unwrap().is_empty());
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
    async fn remove_deletes_and_tolerates_absent_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let hash = ContentHash::of(b"x");
        store.persist(stage(&store, b"x", 10).await.unwrap(), &hash).unwrap();
        store.remove(&hash).unwrap();
        store.remove(&hash).unwrap();
        assert!(store.open(&hash).unwrap().is_none());
    }

    #[test]
    fn sweep_removes_only_staging_files_older_than_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let (_file, leftover) = store.stage().unwrap().keep().unwrap();
        assert_eq!(store.sweep_staging(Duration::from_secs(3600)).unwrap(), 0);
        assert!(leftover.exists());
        assert_eq!(store.sweep_staging(Duration::ZERO).unwrap(), 1);
        assert!(staging_is_empty(dir.path()));
    }
}
