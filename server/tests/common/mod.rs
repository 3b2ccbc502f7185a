//! Test harness: a real savesync server on `127.0.0.1:0` with its own temp data dir (and,
//! on the S3 legs, its own bucket), and paired devices that talk to it through the real
//! `savesync-client`. [`backend_matrix!`](crate::backend_matrix) runs a file's tests on
//! every storage backend ([`Leg`]).
//!
//! Assumes the server's public API (`App::open`, `Config::with_data_dir`,
//! `App::issue_pairing_code`, `launch`). Clients are built without retries so a test sees
//! the server's first answer. Every wait is a bounded poll or a deadline, never a sleep.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

mod backend;
mod s3_view;

pub use backend::{Leg, on_leg};

use savesync_client::{Client, RetryPolicy};
use savesync_core::wire::SaveMeta;
use savesync_core::{Rev, SavePath};
use savesync_server::{App, Config, launch};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Upper bound for anything a test waits for.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A running server.
pub struct TestServer {
    pub app: App,
    pub base_url: String,
    /// Kept so the data dir lives as long as the server.
    pub data_dir: tempfile::TempDir,
    /// The storage this server runs on.
    pub leg: Leg,
    /// The bucket's objects, on the S3 legs.
    s3: Option<s3_view::S3View>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// One paired device of one user.
#[derive(Debug, Clone)]
pub struct Device {
    pub client: Client,
    pub id: i64,
    pub user: String,
    pub name: String,
    /// The raw token, for hand-built requests (malformed JSON, invalid paths).
    pub token: String,
}

impl TestServer {
    /// A server on defaults.
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// A server whose config `tweak` adjusts (e.g. a small `max_body_bytes`), on the
    /// storage of the running [`backend_matrix!`](crate::backend_matrix) leg (SQLite + dir
    /// outside one).
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        TestServer::start_on(backend::current(), tweak).await
    }

    /// A server on `leg`'s storage (fresh), config adjusted by `tweak`.
    pub async fn start_on(leg: Leg, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let data_dir = tempfile::tempdir().expect("temp data dir");
        let mut config = Config::with_data_dir(data_dir.path());
        let s3 = leg.configure(&mut config);
        tweak(&mut config);
        let app = open_app(config).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("local addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(launch(app.clone(), listener, async move {
            let _ = rx.await;
        }));
        TestServer { app, base_url, data_dir, leg, s3, shutdown: Some(tx), task: Some(task) }
    }

    /// A client with no token and no retries.
    pub fn anonymous(&self) -> Client {
        Client::new(&self.base_url, None)
            .expect("client")
            .with_retry(RetryPolicy::none())
            .with_timeout(DEADLINE)
    }

    /// A client with an arbitrary token and no retries.
    pub fn client_with_token(&self, token: &str) -> Client {
        Client::new(&self.base_url, Some(token.to_owned()))
            .expect("client")
            .with_retry(RetryPolicy::none())
            .with_timeout(DEADLINE)
    }

    /// Pair a new device of `user` (created if missing) through the real pairing flow.
    pub async fn pair(&self, user: &str, name: &str) -> Device {
        let code = self.app.issue_pairing_code(user).expect("issue pairing code");
        let paired = self.anonymous().pair(&code.code, name, "test").await.expect("pair");
        assert_eq!(paired.user, user);
        Device {
            client: self.client_with_token(&paired.token),
            id: paired.device_id,
            user: user.to_owned(),
            name: name.to_owned(),
            token: paired.token,
        }
    }

    /// `<base>/api/v1/<rest>` for hand-built requests.
    pub fn api(&self, rest: &str) -> String {
        format!("{}/api/v1/{rest}", self.base_url)
    }

    /// Every file under the blob store, relative to it (temp files included): on the S3
    /// legs, every object in the bucket (`ab/cd/<hex>`, `tmp/...`).
    pub fn blob_files(&self) -> BTreeSet<PathBuf> {
        if let Some(s3) = &self.s3 {
            return s3.keys();
        }
        let root = self.app.config().blob_dir();
        let mut out = BTreeSet::new();
        walk(&root, &root, &mut out);
        out
    }

    /// Trigger graceful shutdown and wait for `launch` to return; returns how long it took.
    pub async fn shutdown(mut self) -> Duration {
        let started = Instant::now();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let task = self.task.take().expect("server task");
        let result = tokio::time::timeout(DEADLINE, task)
            .await
            .expect("launch did not return within the deadline after shutdown");
        result.expect("server task panicked").expect("launch returned an error");
        started.elapsed()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The app over `config`'s stores. The default leg opens as a default install does
/// (`App::open`); the others as `serve` does (`App::connect`: `database_url`, `blob_url`).
async fn open_app(config: Config) -> App {
    if config.database_url.is_none() && config.blob_url.is_none() {
        return App::open(config).expect("open app");
    }
    App::connect(config).await.expect("connect app")
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, out);
        } else {
            out.insert(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
}

/// Shorthand for a valid save path.
pub fn sp(s: &str) -> SavePath {
    SavePath::parse(s).expect("valid save path")
}

/// Upload `bytes` on top of `base`, expecting success.
pub async fn put(device: &Device, path: &str, base: Rev, bytes: &[u8]) -> SaveMeta {
    device
        .client
        .upload(&sp(path), base, bytes::Bytes::copy_from_slice(bytes))
        .await
        .unwrap_or_else(|e| panic!("upload {path} on base {base}: {e}"))
}

/// Poll `check` until it returns `Some`, or panic after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
