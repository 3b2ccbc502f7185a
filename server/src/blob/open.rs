//! [`open_from_config`]: the blob store the config names: the directory under the data dir
//! by default, or an S3-compatible bucket when `blob_url` is set.

use super::s3_store::{S3BlobStore, S3Retry};
use super::{BlobStore, BlobUrl, FsBlobStore};
use crate::config::Config;
use anyhow::Context;
use std::sync::Arc;

/// Open the configured blob store. An S3 bucket is checked with one listing, so a wrong
/// bucket, endpoint or key fails here rather than on the first upload.
pub async fn open_from_config(config: &Config) -> anyhow::Result<Arc<dyn BlobStore>> {
    let Some(url) = &config.blob_url else {
        let dir = config.blob_dir();
        let store = FsBlobStore::open(&dir)
            .with_context(|| format!("opening blob store {}", dir.display()))?;
        return Ok(Arc::new(store));
    };
    let url: BlobUrl = url.parse()?;
    let store = S3BlobStore::new(&url, &config.s3, S3Retry::default())?;
    store.check_bucket().await.with_context(|| {
        format!("reaching bucket {:?} at {}", url.bucket, endpoint_name(config))
    })?;
    tracing::info!(bucket = %url.bucket, prefix = %url.prefix, "blobs in S3-compatible storage");
    Ok(Arc::new(store))
}

fn endpoint_name(config: &Config) -> &str {
    config.s3.endpoint.as_deref().unwrap_or("AWS")
}
