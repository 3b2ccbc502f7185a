//! kill -9 of the real `savesync-server` binary: a server killed mid-upload leaves no blob
//! visible, restarts with its staging directory swept and its SQLite file intact, and
//! every commit it acknowledged before dying is still there afterwards.
//!
//! These tests run the built binary as a child process (the only way to SIGKILL it) on
//! `127.0.0.1:0`; the bound address is read from its log line.

use bytes::Bytes;
use savesync_client::{Client, RetryPolicy};
use savesync_core::wire::HASH_HEADER;
use savesync_core::{ContentHash, Rev, SavePath};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(20);
const BIN: &str = env!("CARGO_BIN_EXE_savesync-server");

/// A running server process; SIGKILLed when dropped.
struct ServerProcess {
    child: Child,
    base_url: String,
}

impl ServerProcess {
    fn start(data_dir: &Path) -> ServerProcess {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "info")
            // The only server on this data dir: no other replica's upload to spare, so the
            // start-up sweep may take every staging leftover at once.
            .env("SAVESYNC_GC_GRACE_SECS", "0")
            .env_remove("SAVESYNC_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn savesync-server");
        let stderr = child.stderr.take().expect("stderr pipe");
        let (tx, rx) = mpsc::channel();
        // Keep draining the log for the life of the process so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[server] {line}");
                if line.contains("serving savesync API")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(line);
                }
            }
        });
        let line = rx.recv_timeout(DEADLINE).expect("server did not report its address");
        // No NO_COLOR here: a log that goes to a pipe or a file has no colour codes.
        assert!(!line.contains('\u{1b}'), "colour codes in a piped log line: {line:?}");
        let addr = line.split("addr=").nth(1).expect("addr= in the serving line").trim();
        ServerProcess { child, base_url: format!("http://{addr}") }
    }

    /// SIGKILL: no shutdown code runs.
    fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    fn client(&self, token: Option<&str>) -> Client {
        Client::new(&self.base_url, token.map(str::to_owned))
            .expect("client")
            .with_retry(RetryPolicy::none())
            .with_timeout(DEADLINE)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pair a device through the admin CLI (a second process on the same data dir) and the API.
async fn pair(server: &ServerProcess, data_dir: &Path) -> String {
    let out = Command::new(BIN)
        .args(["pair", "--user", "alice", "--quiet", "--data-dir"])
        .arg(data_dir)
        .env_remove("SAVESYNC_CONFIG")
        .output()
        .expect("run pair");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let code = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    server.client(None).pair(&code, "deck", "test").await.expect("pair").token
}

fn sp(s: &str) -> SavePath {
    SavePath::parse(s).unwrap()
}

fn staging_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("blobs").join("tmp")
}

fn staged_files(data_dir: &Path) -> usize {
    std::fs::read_dir(staging_dir(data_dir)).map(Iterator::count).unwrap_or(0)
}

fn blob_path(data_dir: &Path, hash: &ContentHash) -> PathBuf {
    let hex = hash.to_hex();
    data_dir.join("blobs").join(&hex[..2]).join(&hex[2..4]).join(&hex)
}

/// `PRAGMA integrity_check` on the server's database, from a separate connection.
fn integrity(data_dir: &Path) -> String {
    let db = rusqlite::Connection::open(data_dir.join("savesync.db")).unwrap();
    db.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)).unwrap()
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn killed_mid_upload_no_half_blob_is_visible_and_restart_sweeps_staging() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let token = pair(&server, dir.path()).await;
    let deck = server.client(Some(&token));
    let kept = deck.upload(&sp("snes/zelda.srm"), Rev::NONE, Bytes::from_static(b"link")).await;
    assert_eq!(kept.unwrap().rev, Rev(1));

    // Stream a 4 MiB upload but send only the first 1 MiB, then kill the server.
    let whole = vec![0x5au8; 4 << 20];
    let whole_hash = ContentHash::of(&whole);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let url = format!("{}/api/v1/saves/content?path=psx%2Fcard1.mcd&base_rev=0", server.base_url);
    let upload = tokio::spawn(
        reqwest::Client::new()
            .put(url)
            .bearer_auth(&token)
            .header(HASH_HEADER, whole_hash.to_hex())
            .header(reqwest::header::CONTENT_LENGTH, whole.len())
            .body(reqwest::Body::wrap_stream(tokio_stream_from(rx)))
            .send(),
    );
    for chunk in whole[..1 << 20].chunks(64 << 10) {
        tx.send(Ok(Bytes::copy_from_slice(chunk))).await.unwrap();
    }
    wait_for("the upload to be staged", || staged_files(dir.path()) > 0).await;
    server.kill_9();
    drop(tx);
    assert!(upload.await.unwrap().is_err(), "the upload cannot have succeeded");

    // Dead server: the partial body sits in staging, nothing under its hash.
    assert!(staged_files(dir.path()) > 0);
    assert!(!blob_path(dir.path(), &whole_hash).exists());
    assert_eq!(integrity(dir.path()), "ok");

    let server = ServerProcess::start(dir.path());
    assert_eq!(staged_files(dir.path()), 0, "restart did not sweep the staging directory");
    assert_eq!(integrity(dir.path()), "ok");
    let deck = server.client(Some(&token));
    let saves = deck.list(None, true).await.unwrap().saves;
    assert_eq!(saves.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(), ["snes/zelda.srm"]);
    let got = deck.download(&sp("snes/zelda.srm"), None).await.unwrap();
    assert_eq!((got.rev, &got.bytes[..]), (Rev(1), &b"link"[..]));
    // The interrupted save can simply be uploaded again.
    let again = deck.upload(&sp("psx/card1.mcd"), Rev::NONE, Bytes::from(whole)).await.unwrap();
    assert_eq!(again.rev, Rev(1));
    assert!(blob_path(dir.path(), &whole_hash).exists());
}

/// A `Stream` over an mpsc receiver (what `reqwest::Body::wrap_stream` takes).
fn tokio_stream_from<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Per path: the last (rev, bytes) the server acknowledged.
type Acknowledged = HashMap<String, (Rev, Vec<u8>)>;

#[tokio::test]
async fn every_acknowledged_commit_survives_kill_9_during_concurrent_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let token = pair(&server, dir.path()).await;
    let acked: Arc<Mutex<Acknowledged>> = Arc::default();
    let mut writers = Vec::new();
    for writer in 0..4 {
        let (client, acked) = (server.client(Some(&token)), Arc::clone(&acked));
        writers.push(tokio::spawn(async move {
            let path = format!("gba/slot{writer}.sav");
            let mut base = Rev::NONE;
            for n in 0..10_000u32 {
                let bytes = format!("{path} version {n}").into_bytes();
                match client.upload(&sp(&path), base, Bytes::from(bytes.clone())).await {
                    Ok(meta) => {
                        base = meta.rev;
                        acked.lock().unwrap().insert(path.clone(), (meta.rev, bytes));
                    }
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    let total = || acked.lock().unwrap().values().map(|(rev, _)| rev.0).sum::<u64>();
    wait_for("uploads to get going", || total() >= 40).await;
    server.kill_9();
    for writer in writers {
        tokio::time::timeout(DEADLINE, writer).await.expect("writer stopped").unwrap();
    }

    assert_eq!(integrity(dir.path()), "ok");
    let server = ServerProcess::start(dir.path());
    let deck = server.client(Some(&token));
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), 4);
    for (path, (rev, bytes)) in acked {
        let head = deck.download(&sp(&path), None).await.unwrap();
        // One more commit may have landed without its acknowledgement reaching us.
        assert!(head.rev == rev || head.rev == rev.next(), "{path}: head {} acked {rev}", head.rev);
        if head.rev == rev {
            assert_eq!(head.bytes, bytes, "{path}: acknowledged content lost");
        }
        assert_eq!(head.hash, ContentHash::of(&head.bytes), "{path}: served bytes do not match");
    }
    assert_eq!(staged_files(dir.path()), 0);
}
