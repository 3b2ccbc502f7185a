//! The `BlobStore` contract, checked the same way on both implementations: the blob
//! directory (`FsBlobStore`) and an S3-compatible bucket (`S3BlobStore` against a real moto
//! server on loopback, see `savesync_testenv::s3`). Each check also looks at the raw
//! storage (files under the directory, every key in the bucket) so a stray staging file
//! or object fails it.

use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use savesync_core::ContentHash;
use savesync_server::blob::{
    BlobBody, BlobError, BlobStore, BlobUrl, Digests, FsBlobStore, S3BlobStore, S3Retry,
    S3Settings, StagedBlob,
};
use savesync_testenv::s3::{ACCESS_KEY_ID, Bucket, REGION, S3Server, SECRET_ACCESS_KEY};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::AsyncReadExt;

const DEADLINE: Duration = Duration::from_secs(10);
const MIB: usize = 1024 * 1024;

/// A store under test plus a way to see everything it wrote.
enum Harness {
    Fs { dir: tempfile::TempDir, store: FsBlobStore },
    S3 { raw: Arc<dyn ObjectStore>, prefix: String, store: S3BlobStore },
}

impl Harness {
    fn fs() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path().join("blobs")).unwrap();
        Harness::Fs { dir, store }
    }

    /// `None` (skipped) when moto is not installed outside CI.
    fn s3() -> Option<Harness> {
        let bucket = savesync_testenv::s3::bucket()?;
        Some(Harness::s3_on(&bucket, S3Retry::default()))
    }

    fn s3_on(bucket: &Bucket, retry: S3Retry) -> Harness {
        let prefix = "deploy/blobs".to_owned();
        let url: BlobUrl = bucket.url(&prefix).parse().unwrap();
        let store = S3BlobStore::new(&url, &settings(bucket), retry).unwrap();
        let raw = AmazonS3Builder::new()
            .with_endpoint(&bucket.endpoint)
            .with_allow_http(true)
            .with_bucket_name(&bucket.name)
            .with_region(REGION)
            .with_access_key_id(ACCESS_KEY_ID)
            .with_secret_access_key(SECRET_ACCESS_KEY)
            .build()
            .unwrap();
        Harness::S3 { raw: Arc::new(raw), prefix, store }
    }

    fn store(&self) -> &dyn BlobStore {
        match self {
            Harness::Fs { store, .. } => store,
            Harness::S3 { store, .. } => store,
        }
    }

    /// Every file or object the store holds, relative to its root (`ab/cd/<hex>`,
    /// `tmp/...`). For S3, every key in the bucket, so writes outside the prefix show too.
    async fn raw(&self) -> BTreeSet<String> {
        match self {
            Harness::Fs { dir, .. } => {
                let root = dir.path().join("blobs");
                walkdir(&root)
                    .into_iter()
                    .map(|p| p.strip_prefix(&root).unwrap().to_string_lossy().into_owned())
                    .collect()
            }
            Harness::S3 { raw, prefix, .. } => {
                let keys: Vec<_> = raw.list(None).map(|m| m.unwrap().location).collect().await;
                keys.into_iter()
                    .map(|k| {
                        let k = k.to_string();
                        k.strip_prefix(&format!("{prefix}/")).map_or(k.clone(), str::to_owned)
                    })
                    .collect()
            }
        }
    }

    /// Plant a staging leftover, as a server killed mid-upload would leave.
    async fn plant_staging_leftover(&self) {
        match self {
            Harness::Fs { dir, .. } => {
                std::fs::write(dir.path().join("blobs/tmp/upload-crashed"), b"half").unwrap();
            }
            Harness::S3 { raw, prefix, .. } => {
                let key = object_store::path::Path::from(format!("{prefix}/tmp/upload-crashed"));
                raw.put(&key, Bytes::from_static(b"half").into()).await.unwrap();
            }
        }
    }

    /// Poll until the raw storage is exactly `expected` (S3 cleans up dropped staging in
    /// the background).
    async fn settles_to(&self, expected: &BTreeSet<String>) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let now = self.raw().await;
            if &now == expected {
                return;
            }
            assert!(Instant::now() < deadline, "storage holds {now:?}, expected {expected:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn settings(bucket: &Bucket) -> S3Settings {
    S3Settings {
        endpoint: Some(bucket.endpoint.clone()),
        region: Some(REGION.to_owned()),
        access_key_id: Some(ACCESS_KEY_ID.to_owned()),
        secret_access_key: Some(SECRET_ACCESS_KEY.to_owned()),
        allow_http: false,
    }
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().unwrap().is_dir() {
            out.extend(walkdir(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}

/// `bytes` as a body of `chunk`-sized pieces, as the HTTP layer delivers it.
fn chunked(bytes: &[u8], chunk: usize) -> BlobBody {
    let chunks: Vec<std::io::Result<Bytes>> =
        bytes.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    Box::pin(futures::stream::iter(chunks))
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn blob_key(hash: &ContentHash) -> String {
    let hex = hash.to_hex();
    format!("{}/{}/{hex}", &hex[..2], &hex[2..4])
}

fn keys(list: &[&ContentHash]) -> BTreeSet<String> {
    list.iter().map(|h| blob_key(h)).collect()
}

async fn read_all(store: &dyn BlobStore, hash: &ContentHash) -> (Vec<u8>, u64) {
    let (mut reader, size) = store.get(hash).await.unwrap();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await.unwrap();
    (out, size)
}

async fn multi_mib_round_trip_streamed_in_chunks(h: &Harness) {
    let body = pseudo_random(12 * MIB + 12_345, 7);
    let hash = ContentHash::of(&body);
    let staged = h
        .store()
        .stage(chunked(&body, 64 * 1024), 16 * MIB as u64, Digests::WithMd5)
        .await
        .unwrap();
    assert_eq!((staged.hash(), staged.size()), (hash, body.len() as u64));
    let md5: [u8; 16] = <md5::Md5 as md5::Digest>::digest(&body).into();
    assert_eq!(staged.md5(), Some(md5), "the MD5 asked for, computed on the same pass");
    assert!(!h.store().contains(&hash).await.unwrap(), "visible before publish");
    staged.publish(&hash).await.unwrap();
    let (read, size) = read_all(h.store(), &hash).await;
    assert_eq!(size, body.len() as u64);
    assert!(read == body, "read back differs");
    h.settles_to(&keys(&[&hash])).await;
}

async fn hash_mismatch_stores_nothing(h: &Harness) {
    let staged = h.store().stage(chunked(b"actual bytes", 3), 1024, Digests::Sha256).await.unwrap();
    assert_eq!(staged.md5(), None, "no MD5 unless asked for");
    let declared = ContentHash::of(b"declared");
    let err = staged.publish(&declared).await.unwrap_err();
    assert!(matches!(err, BlobError::HashMismatch { .. }), "{err:?}");
    assert!(!h.store().contains(&declared).await.unwrap());
    assert!(!h.store().contains(&ContentHash::of(b"actual bytes")).await.unwrap());
    h.settles_to(&BTreeSet::new()).await;
}

async fn too_large_is_refused_and_leaves_nothing(h: &Harness) {
    // Small (one buffered PUT) and big (a multipart upload already under way).
    for (len, limit) in [(100, 99), (7 * MIB, 6 * MIB)] {
        let body = pseudo_random(len, 3);
        let err = h
            .store()
            .stage(chunked(&body, 64 * 1024), limit as u64, Digests::Sha256)
            .await
            .unwrap_err();
        assert!(matches!(err, BlobError::TooLarge { limit: l } if l == limit as u64), "{err:?}");
    }
    // Exactly the limit is fine.
    let hash = ContentHash::of(&[1u8; 99]);
    assert_eq!(h.store().put(&hash, chunked(&[1u8; 99], 10), 99).await.unwrap(), 99);
    h.settles_to(&keys(&[&hash])).await;
}

async fn identical_content_is_stored_once(h: &Harness) {
    let hash = ContentHash::of(b"same save");
    for _ in 0..3 {
        assert_eq!(h.store().put(&hash, chunked(b"same save", 4), 1024).await.unwrap(), 9);
    }
    let listed: Vec<_> = h.store().list().await.unwrap().into_iter().map(|b| b.hash).collect();
    assert_eq!(listed, [hash]);
    h.settles_to(&keys(&[&hash])).await;
}

async fn contains_and_delete(h: &Harness) {
    let hash = ContentHash::of(b"to delete");
    assert!(!h.store().contains(&hash).await.unwrap());
    assert!(matches!(h.store().get(&hash).await, Err(BlobError::NotFound)));
    h.store().put(&hash, chunked(b"to delete", 4), 1024).await.unwrap();
    assert!(h.store().contains(&hash).await.unwrap());
    h.store().delete(&hash).await.unwrap();
    h.store().delete(&hash).await.unwrap(); // absent is fine
    assert!(!h.store().contains(&hash).await.unwrap());
    assert!(matches!(h.store().get(&hash).await, Err(BlobError::NotFound)));
    h.settles_to(&BTreeSet::new()).await;
}

async fn list_reports_every_blob_with_its_modified_time(h: &Harness) {
    let before = SystemTime::now();
    let mut expected = Vec::new();
    for i in 0..5u8 {
        let bytes = vec![i; 10 + usize::from(i)];
        let hash = ContentHash::of(&bytes);
        h.store().put(&hash, chunked(&bytes, 7), 1024).await.unwrap();
        expected.push(hash);
    }
    let after = SystemTime::now();
    for hash in &expected {
        let modified = h.store().modified(hash).await.unwrap().expect("stored");
        let slack = Duration::from_secs(2);
        assert!(modified + slack >= before && modified <= after + slack, "{modified:?}");
    }
    assert_eq!(h.store().modified(&ContentHash::of(b"never stored")).await.unwrap(), None);
    // A staging leftover is not a blob.
    h.plant_staging_leftover().await;
    let mut listed = h.store().list().await.unwrap();
    listed.sort_by_key(|b| b.hash);
    expected.sort();
    assert_eq!(listed.iter().map(|b| b.hash).collect::<Vec<_>>(), expected);
    // S3 keeps whole seconds.
    let slack = Duration::from_secs(2);
    for blob in &listed {
        assert!(
            blob.modified + slack >= before && blob.modified <= after + slack,
            "{blob:?} not stored between {before:?} and {after:?}"
        );
    }
}

async fn a_dropped_staged_blob_leaves_nothing(h: &Harness) {
    for len in [10, 6 * MIB] {
        let body = pseudo_random(len, 11);
        let staged: Box<dyn StagedBlob> = h
            .store()
            .stage(chunked(&body, 256 * 1024), 8 * MIB as u64, Digests::Sha256)
            .await
            .unwrap();
        assert_ne!(h.raw().await, BTreeSet::new(), "nothing staged");
        drop(staged);
        h.settles_to(&BTreeSet::new()).await;
        assert!(!h.store().contains(&ContentHash::of(&body)).await.unwrap());
    }
    // A body cut off by an error leaves nothing either.
    let broken: BlobBody = Box::pin(futures::stream::iter(vec![
        Ok(Bytes::from(vec![0u8; 6 * MIB])),
        Err(std::io::Error::other("client went away")),
    ]));
    assert!(h.store().stage(broken, 8 * MIB as u64, Digests::Sha256).await.is_err());
    h.settles_to(&BTreeSet::new()).await;
}

async fn sweep_staging_removes_only_old_leftovers(h: &Harness) {
    let hash = ContentHash::of(b"kept");
    h.store().put(&hash, chunked(b"kept", 2), 1024).await.unwrap();
    h.plant_staging_leftover().await;
    assert_eq!(h.store().sweep_staging(Duration::from_secs(3600)).await.unwrap(), 0);
    assert!(h.raw().await.contains("tmp/upload-crashed"));
    assert_eq!(h.store().sweep_staging(Duration::ZERO).await.unwrap(), 1);
    // The directory store keeps its (empty) `tmp/` directory, which `raw` does not list.
    h.settles_to(&keys(&[&hash])).await;
    assert!(h.store().contains(&hash).await.unwrap());
}

/// One test per check and store; `s3` ones skip visibly without moto outside CI.
macro_rules! contract {
    ($($check:ident),* $(,)?) => {
        mod fs {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(&super::Harness::fs()).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some(h) = super::Harness::s3() else { return };
                    super::$check(&h).await;
                }
            )*
        }
    };
}

contract!(
    multi_mib_round_trip_streamed_in_chunks,
    hash_mismatch_stores_nothing,
    too_large_is_refused_and_leaves_nothing,
    identical_content_is_stored_once,
    contains_and_delete,
    list_reports_every_blob_with_its_modified_time,
    a_dropped_staged_blob_leaves_nothing,
    sweep_staging_removes_only_old_leftovers,
);

/// The S3 server going away mid-service: every operation reports `Unavailable` within the
/// retry budget, instead of hanging or claiming `NotFound`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_server_gone_is_unavailable() {
    let Some(mut server) = S3Server::start() else { return };
    let retry = S3Retry {
        max_retries: 2,
        retry_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(1),
    };
    let h = Harness::s3_on(&server.bucket(), retry);
    let hash = ContentHash::of(b"stored before");
    h.store().put(&hash, chunked(b"stored before", 5), 1024).await.unwrap();
    assert!(h.store().contains(&hash).await.unwrap());

    server.kill();
    let started = Instant::now();
    let unavailable = |what: &str, result: Result<(), BlobError>| {
        assert!(matches!(result, Err(BlobError::Unavailable(_))), "{what}: {result:?}");
    };
    unavailable("contains", h.store().contains(&hash).await.map(drop));
    unavailable("get", h.store().get(&hash).await.map(drop));
    unavailable(
        "put",
        h.store().put(&ContentHash::of(b"new"), chunked(b"new", 1), 9).await.map(drop),
    );
    unavailable("delete", h.store().delete(&hash).await);
    unavailable("list", h.store().list().await.map(drop));
    unavailable("sweep_staging", h.store().sweep_staging(Duration::ZERO).await.map(drop));
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
}
