//! [`Replicas`]: several `savesync-server serve` processes (the real binary) on one
//! Postgres database (a throwaway cluster from `savesync_testenv::postgres`), one bucket
//! (moto on loopback, `savesync_testenv::s3`) and one data directory (the shared pairing
//! key), as an operator runs replicas behind a reverse proxy. Each logs to its own file,
//! printed when a test panics.

use crate::bins::server_bin;
use crate::server_process::loopback_url_in;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use savesync_server::blob::BlobStore;
use savesync_testenv::s3::Bucket;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Key prefix of the blobs in the bucket.
const BLOB_PREFIX: &str = "blobs";
/// Deadline for a replica to log its URL.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// Server processes sharing one database, one bucket and one data directory.
#[derive(Debug)]
pub struct Replicas {
    dir: TempDir,
    database_url: String,
    bucket: Bucket,
    children: Vec<Option<Child>>,
    urls: Vec<String>,
}

impl Replicas {
    /// Start `n` replicas one after another (the first migrates the fresh database) on a
    /// fresh bucket. `None` (after a visible `SKIPPED:` line) when Postgres or moto is not
    /// installed and `CI` is not `true`.
    #[must_use]
    pub fn start(n: usize) -> Option<Replicas> {
        let Some(database_url) = savesync_testenv::postgres::fresh_database() else {
            eprintln!("SKIPPED: {}", savesync_testenv::postgres::MISSING);
            return None;
        };
        let bucket = savesync_testenv::s3::bucket()?;
        let dir = tempfile::Builder::new()
            .prefix("savesync-e2e-replicas-")
            .tempdir()
            .expect("create the replicas directory");
        let mut replicas =
            Replicas { dir, database_url, bucket, children: Vec::new(), urls: Vec::new() };
        for i in 0..n {
            let (child, url) = replicas.spawn(i);
            replicas.children.push(Some(child));
            replicas.urls.push(url);
        }
        Some(replicas)
    }

    fn spawn(&self, i: usize) -> (Child, String) {
        let log = File::create(self.log_path(i)).expect("create the replica log");
        let mut child = self
            .command()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(self.data_dir())
            .env("RUST_LOG", "info,savesync_server::feed_bus=debug")
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn savesync-server serve");
        let start = Instant::now();
        loop {
            if let Some(url) = loopback_url_in(&self.log(i)) {
                return (child, url);
            }
            let exited = child.try_wait().ok().flatten();
            assert!(exited.is_none(), "replica {i} exited at start: {}", self.log(i));
            assert!(
                start.elapsed() < START_DEADLINE,
                "replica {i} logged no URL within {START_DEADLINE:?}: {}",
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `savesync-server` with this set's database and bucket and a clean environment.
    fn command(&self) -> Command {
        let mut command = Command::new(server_bin());
        command
            .env("SAVESYNC_DATABASE_URL", &self.database_url)
            .env("SAVESYNC_BLOB_URL", self.bucket.url(BLOB_PREFIX))
            .env("SAVESYNC_S3_ENDPOINT", &self.bucket.endpoint)
            .env("AWS_REGION", savesync_testenv::s3::REGION)
            .env("AWS_ACCESS_KEY_ID", savesync_testenv::s3::ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", savesync_testenv::s3::SECRET_ACCESS_KEY)
            .env("NO_COLOR", "1")
            .env_remove("SAVESYNC_CONFIG")
            .stdin(Stdio::null());
        command
    }

    /// Replica `i`'s URL, e.g. `http://127.0.0.1:40123`.
    #[must_use]
    pub fn url(&self, i: usize) -> &str {
        &self.urls[i]
    }

    /// The replicas' blob store, opened as they open it (to check what they stored).
    pub async fn blob_store(&self) -> Arc<dyn BlobStore> {
        let mut config = savesync_server::Config::with_data_dir(self.data_dir());
        config.blob_url = Some(self.bucket.url(BLOB_PREFIX));
        config.s3.endpoint = Some(self.bucket.endpoint.clone());
        config.s3.region = Some(savesync_testenv::s3::REGION.to_owned());
        config.s3.access_key_id = Some(savesync_testenv::s3::ACCESS_KEY_ID.to_owned());
        config.s3.secret_access_key = Some(savesync_testenv::s3::SECRET_ACCESS_KEY.to_owned());
        savesync_server::blob::open_from_config(&config).await.expect("open the replicas' bucket")
    }

    /// The shared data directory.
    #[must_use]
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A one-time code from `savesync-server pair` (another process on the same database
    /// and data directory); any replica redeems it.
    #[must_use]
    pub fn pairing_code(&self, user: &str) -> String {
        let out = self
            .command()
            .args(["pair", "--user", user, "--quiet", "--data-dir"])
            .arg(self.data_dir())
            .output()
            .expect("run savesync-server pair");
        assert!(
            out.status.success(),
            "savesync-server pair failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// SIGKILL replica `i` and reap it.
    pub fn kill9(&mut self, i: usize) {
        let mut child = self.children[i].take().expect("replica is running");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits in i32"));
        let _ = kill(pid, Signal::SIGKILL);
        let _ = child.wait();
    }

    /// Whether replica `i` is still running.
    #[must_use]
    pub fn is_running(&mut self, i: usize) -> bool {
        self.children[i].as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Everything replica `i` logged so far.
    #[must_use]
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("replica-{i}.log"))
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for child in self.children.iter_mut().filter_map(Option::take) {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for i in 0..self.urls.len() {
                eprintln!("replica {i} log:\n{}", self.log(i));
            }
        }
    }
}
