//! A real S3-compatible server on loopback for tests and benchmarks: moto's server mode
//! (`moto_server`, PyPI `moto[server]`), started once per process on a free port, with a
//! fresh bucket per caller ([`bucket`]); and private instances a test may kill
//! ([`S3Server::start`], [`S3Server::kill`]).
//!
//! Why moto: CI installs it from PyPI in seconds (`.ci/install-deps`, a venv), with no
//! compile step; it implements the S3 calls the blob store makes (PUT, multipart uploads,
//! server-side copy, HEAD, ranged GET, ListObjectsV2, DELETE) with real HTTP and real
//! XML, and keeps objects in memory, so each test process starts clean. Garage needs a
//! long `cargo install` and a cluster layout step; `s3s-fs` is a crate compile too. Moto
//! does not check request signatures, so the store's credentials are exercised for
//! shape only; the Debug redaction tests cover their handling.
//!
//! The server runs under a small `sh` wrapper that reads its stdin: when this process
//! exits, however it exits, the pipe closes and the wrapper kills moto. Where
//! `moto_server` is missing, [`bucket`] and [`S3Server::start`] return `None` (the caller
//! prints `SKIPPED:`), except under `CI=true`, where they panic.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Moto accepts any credentials; these are what tests configure.
pub const ACCESS_KEY_ID: &str = "savesync-test-key";
pub const SECRET_ACCESS_KEY: &str = "savesync-test-secret";
pub const REGION: &str = "us-east-1";

const START_DEADLINE: Duration = Duration::from_secs(30);

/// One fresh, empty bucket on a running server.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
    pub name: String,
}

impl Bucket {
    /// `s3://<name>/<prefix>`
    #[must_use]
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.name)
    }
}

/// A running moto server. Dropping it (or [`S3Server::kill`]) stops it.
#[derive(Debug)]
pub struct S3Server {
    addr: SocketAddr,
    wrapper: Child,
    /// Closing it makes the wrapper kill moto.
    stdin: Option<ChildStdin>,
    log: PathBuf,
}

/// This process's shared server, started on first use; `None` (after printing why) when
/// moto is not installed and `CI` is not `true`.
#[must_use]
pub fn shared() -> Option<&'static S3Server> {
    static SHARED: OnceLock<Option<S3Server>> = OnceLock::new();
    SHARED.get_or_init(S3Server::start).as_ref()
}

/// A fresh bucket on the shared server (see [`shared`]).
#[must_use]
pub fn bucket() -> Option<Bucket> {
    shared().map(S3Server::bucket)
}

impl S3Server {
    /// Start a private server; `None` when moto is missing outside CI.
    #[must_use]
    pub fn start() -> Option<S3Server> {
        let Some(program) = moto_server() else {
            let why = "moto_server not found (pip install 'moto[server]', or run .ci/install-deps)";
            assert!(!in_ci(), "{why}; CI=true requires it");
            eprintln!("SKIPPED: {why}");
            return None;
        };
        let mut last_error = String::new();
        for _ in 0..3 {
            match S3Server::spawn(&program) {
                Ok(server) => return Some(server),
                Err(e) => last_error = e,
            }
        }
        panic!("moto_server ({}) did not start: {last_error}", program.display());
    }

    fn spawn(program: &std::path::Path) -> Result<S3Server, String> {
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let log =
            std::env::temp_dir().join(format!("savesync-moto-{}-{port}.log", std::process::id()));
        let script = r#"prog=$1; port=$2; log=$3
"$prog" -H 127.0.0.1 -p "$port" >"$log" 2>&1 </dev/null &
child=$!
read -r _ignored
kill "$child" 2>/dev/null
wait "$child" 2>/dev/null
rm -f "$log"
"#;
        let mut wrapper = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(program)
            .arg(port.to_string())
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawning sh: {e}"))?;
        let stdin = wrapper.stdin.take();
        let mut server =
            S3Server { addr: SocketAddr::from(([127, 0, 0, 1], port)), wrapper, stdin, log };
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let log_text = std::fs::read_to_string(&server.log).unwrap_or_default();
            if log_text.contains("Running on") && TcpStream::connect(server.addr).is_ok() {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.wrapper.try_wait() {
                return Err(format!("wrapper exited ({status}): {log_text}"));
            }
            if Instant::now() > deadline || log_text.contains("Address already in use") {
                server.kill();
                return Err(format!("not up on port {port} in time: {log_text}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:<port>`
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Create a fresh bucket with a name unique in this process.
    #[must_use]
    pub fn bucket(&self) -> Bucket {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name =
            format!("savesync-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let status = self.request(&format!("PUT /{name} HTTP/1.1"));
        assert!(
            status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200"),
            "creating bucket {name}: {status}"
        );
        Bucket { endpoint: self.endpoint(), name }
    }

    /// Send an unsigned request with no body; returns the status line.
    fn request(&self, request_line: &str) -> String {
        let mut stream = TcpStream::connect(self.addr).expect("connect to moto");
        stream.set_read_timeout(Some(START_DEADLINE)).expect("read timeout");
        let request = format!(
            "{request_line}\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        );
        stream.write_all(request.as_bytes()).expect("send to moto");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.lines().next().unwrap_or_default().to_owned()
    }

    /// Stop the server and wait until it is gone (connections are refused afterwards).
    pub fn kill(&mut self) {
        drop(self.stdin.take());
        let _ = self.wrapper.wait();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `SAVESYNC_MOTO_SERVER`, else `moto_server` on `PATH`, else the venv `.ci/install-deps`
/// creates.
fn moto_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SAVESYNC_MOTO_SERVER") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("moto_server"));
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")));
    let venv = cache.map(|dir| dir.join("savesync-moto/venv/bin/moto_server"));
    on_path.chain(venv).find(|path| path.is_file())
}
