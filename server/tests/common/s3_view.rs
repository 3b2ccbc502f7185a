//! [`S3View`]: what a test server's bucket holds, listed with a client of its own, so
//! `blob_files` reports stray staging objects on the S3 legs as it reports stray files on
//! the directory leg.

use futures::StreamExt;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use savesync_testenv::s3::{ACCESS_KEY_ID, Bucket, REGION, SECRET_ACCESS_KEY};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

/// Every object under one bucket prefix.
#[derive(Debug, Clone)]
pub struct S3View {
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

impl S3View {
    pub fn new(bucket: &Bucket, prefix: &str) -> S3View {
        let store = AmazonS3Builder::new()
            .with_endpoint(&bucket.endpoint)
            .with_allow_http(true)
            .with_bucket_name(&bucket.name)
            .with_region(REGION)
            .with_access_key_id(ACCESS_KEY_ID)
            .with_secret_access_key(SECRET_ACCESS_KEY)
            .build()
            .expect("S3 client");
        S3View { store: Arc::new(store), prefix: prefix.to_owned() }
    }

    /// Every key in the bucket, relative to the prefix (`ab/cd/<hex>`, `tmp/upload-...`),
    /// as the directory leg lists files. Blocking: runs on a thread with its own runtime,
    /// so sync test code (and async tests on any runtime flavour) can call it.
    pub fn keys(&self) -> BTreeSet<PathBuf> {
        let view = self.clone();
        std::thread::scope(|s| {
            s.spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    let listing: Vec<_> = view.store.list(None).collect().await;
                    let strip = format!("{}/", view.prefix);
                    listing
                        .into_iter()
                        .map(|meta| {
                            let key = meta.expect("list bucket").location.to_string();
                            PathBuf::from(key.strip_prefix(&strip).unwrap_or(&key))
                        })
                        .collect()
                })
            })
            .join()
            .expect("listing thread")
        })
    }
}
