//! Fault injection through the real HTTP stack: a blob store whose disk is full. (The
//! HTTP behaviour of healthy stores is covered by `server/tests/`, driven by the client.)

use crate::blob::{
    BlobBody, BlobError, BlobReader, BlobStore, Digests, FsBlobStore, StagedBlob, StoredBlob,
};
use crate::meta::sqlite::SqliteMeta;
use crate::{App, Config, launch};
use savesync_core::ContentHash;
use savesync_core::wire::{ErrorBody, HASH_HEADER, PairResponse, SaveList};
use std::sync::Arc;
use std::time::Duration;

/// Stages normally, then fails to publish as if the volume filled up.
#[derive(Debug)]
struct FullDisk(FsBlobStore);

/// A staged body whose publish hits a full disk; dropping it drops the real staging.
#[derive(Debug)]
struct FullAtPublish(Box<dyn StagedBlob>);

#[async_trait::async_trait]
impl StagedBlob for FullAtPublish {
    fn hash(&self) -> ContentHash {
        self.0.hash()
    }
    fn size(&self) -> u64 {
        self.0.size()
    }
    async fn publish(self: Box<Self>, _declared: &ContentHash) -> Result<(), BlobError> {
        Err(BlobError::from(std::io::Error::from_raw_os_error(28)))
    }
}

#[async_trait::async_trait]
impl BlobStore for FullDisk {
    async fn stage(
        &self,
        body: BlobBody,
        limit: u64,
        digests: Digests,
    ) -> Result<Box<dyn StagedBlob>, BlobError> {
        Ok(Box::new(FullAtPublish(self.0.stage(body, limit, digests).await?)))
    }
    async fn get(&self, hash: &ContentHash) -> Result<(BlobReader, u64), BlobError> {
        self.0.get(hash).await
    }
    async fn contains(&self, hash: &ContentHash) -> Result<bool, BlobError> {
        self.0.contains(hash).await
    }
    async fn delete(&self, hash: &ContentHash) -> Result<(), BlobError> {
        self.0.delete(hash).await
    }
    async fn list(&self) -> Result<Vec<StoredBlob>, BlobError> {
        self.0.list().await
    }
    async fn modified(
        &self,
        hash: &ContentHash,
    ) -> Result<Option<std::time::SystemTime>, BlobError> {
        self.0.modified(hash).await
    }
    async fn sweep_staging(&self, older_than: Duration) -> Result<usize, BlobError> {
        self.0.sweep_staging(older_than).await
    }
}

#[tokio::test]
async fn upload_on_a_full_disk_is_507_storage_full_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::with_data_dir(dir.path());
    let meta = SqliteMeta::open(config.db_path()).unwrap();
    let blobs = FullDisk(FsBlobStore::open(config.blob_dir()).unwrap());
    let app = App::with_stores(config, Arc::new(meta), Arc::new(blobs));
    let code = app.issue_pairing_code("alice").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(launch(app, listener, async move {
        let _ = stopped.await;
    }));

    let http = reqwest::Client::new();
    let paired: PairResponse = http
        .post(format!("{base}/api/v1/pair"))
        .json(&serde_json::json!({ "code": code.code, "device_name": "deck" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bytes = b"pokemon emerald".to_vec();
    let response = http
        .put(format!("{base}/api/v1/saves/content?path=gba%2Femerald.sav&base_rev=0"))
        .bearer_auth(&paired.token)
        .header(HASH_HEADER, ContentHash::of(&bytes).to_hex())
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 507);
    let body: ErrorBody = response.json().await.unwrap();
    assert_eq!(body.code.as_str(), "storage_full");

    let list: SaveList = http
        .get(format!("{base}/api/v1/saves"))
        .bearer_auth(&paired.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list.saves.is_empty());
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("savesync_blob_errors_total 1"), "{metrics}");
    assert!(std::fs::read_dir(dir.path().join("blobs/tmp")).unwrap().next().is_none());

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap().unwrap();
}
