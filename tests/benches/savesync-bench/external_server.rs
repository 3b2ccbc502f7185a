//! A `savesync-server serve` child process, only for measuring the server's own peak RSS:
//! the harness's `TestServer` runs in the benchmark's process, where its memory cannot be
//! told apart from the benchmark's.

use savesync_tests::server_bin;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const START_DEADLINE: Duration = Duration::from_secs(30);

pub struct ExternalServer {
    child: Child,
    data_dir: TempDir,
    pub url: String,
}

impl ExternalServer {
    pub fn start() -> ExternalServer {
        let data_dir = tempfile::Builder::new()
            .prefix("savesync-bench-server-")
            .tempdir()
            .expect("server data dir");
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
            probe.local_addr().expect("local addr").port()
        };
        let log = std::fs::File::create(data_dir.path().join("server.log")).expect("server log");
        let child = Command::new(server_bin())
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir.path())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("spawn savesync-server serve");
        let mut server =
            ExternalServer { child, data_dir, url: format!("http://127.0.0.1:{port}") };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("savesync-server exited with {status}: {}", server.log());
            }
            assert!(start.elapsed() < START_DEADLINE, "server not listening: {}", server.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// A one-time pairing code from `savesync-server pair --quiet` on the same data dir.
    pub fn pairing_code(&self, user: &str) -> String {
        let out = Command::new(server_bin())
            .args(["pair", "--user", user, "--quiet", "--data-dir"])
            .arg(self.data_dir.path())
            .output()
            .expect("run savesync-server pair");
        assert!(out.status.success(), "pair failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for ExternalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
