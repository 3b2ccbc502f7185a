//! A server whose bucket goes away (its own moto instance, killed): `GET /health` turns
//! 503 and an upload fails with the blob store's 500, committing nothing, within the retry
//! budget. Built with `App::connect` and `blob_url`, as `serve` does. (Moto keeps objects
//! in memory, so recovery after a restart is not something it can show.)

use savesync_core::{Rev, SavePath};
use savesync_server::{App, Config, launch};
use savesync_testenv::s3::{ACCESS_KEY_ID, REGION, S3Server, SECRET_ACCESS_KEY};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_bucket_is_503_on_health_and_an_upload_commits_nothing() {
    let Some(mut moto) = S3Server::start() else { return };
    let bucket = moto.bucket();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::with_data_dir(dir.path());
    config.blob_url = Some(bucket.url("blobs"));
    config.s3.endpoint = Some(bucket.endpoint.clone());
    config.s3.region = Some(REGION.to_owned());
    config.s3.access_key_id = Some(ACCESS_KEY_ID.to_owned());
    config.s3.secret_access_key = Some(SECRET_ACCESS_KEY.to_owned());
    let app = App::connect(config).await.expect("connect");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(launch(app.clone(), listener, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let health = || async { http.get(format!("{base}/api/v1/health")).send().await.unwrap() };
    assert_eq!(health().await.status(), 200);

    let code = app.issue_pairing_code("alice").unwrap();
    let anonymous = savesync_client::Client::new(&base, None).unwrap();
    let paired = anonymous.pair(&code.code, "deck", "test").await.unwrap();
    let deck = savesync_client::Client::new(&base, Some(paired.token))
        .unwrap()
        .with_retry(savesync_client::RetryPolicy::none());
    let path = SavePath::parse("gba/emerald.sav").unwrap();
    deck.upload(&path, Rev::NONE, bytes::Bytes::from_static(b"before")).await.unwrap();

    moto.kill();
    let started = Instant::now();
    assert_eq!(health().await.status(), 503);
    let err = deck.upload(&path, Rev(1), bytes::Bytes::from_static(b"during")).await.unwrap_err();
    assert!(err.to_string().contains("blob store failed"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    // The metadata still says rev 1: nothing of the failed upload was committed.
    let listed = deck.list(None, true).await.unwrap();
    assert_eq!(listed.saves.len(), 1);
    assert_eq!(listed.saves[0].rev, Rev(1));
}
