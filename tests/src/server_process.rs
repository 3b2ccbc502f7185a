//! [`ServerProcess`]: the `savesync-server` binary as a separate process, as a user runs it
//! (`serve --listen 127.0.0.1:0`, `pair --quiet`). It learns its port from the URL the
//! server logs at start, so no port is ever chosen by the test.

use crate::bins::server_bin;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Deadline for the server process to log its URL, and to exit after SIGTERM.
const PROCESS_DEADLINE: Duration = Duration::from_secs(20);

/// A `savesync-server serve` child process with its own data directory.
#[derive(Debug)]
pub struct ServerProcess {
    dir: TempDir,
    child: Option<Child>,
    url: String,
}

impl ServerProcess {
    /// Run `savesync-server serve --data-dir DIR --listen 127.0.0.1:0` and wait until it
    /// logs the URL it serves on.
    #[must_use]
    pub fn start() -> ServerProcess {
        let dir = tempfile::Builder::new()
            .prefix("savesync-e2e-server-proc-")
            .tempdir()
            .expect("create the server process directory");
        let log = File::create(dir.path().join("server.log")).expect("create the server log");
        let child = Command::new(server_bin())
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn savesync-server serve");
        let mut server = ServerProcess { dir, child: Some(child), url: String::new() };
        let start = Instant::now();
        loop {
            if let Some(url) = loopback_url_in(&server.log()) {
                server.url = url;
                return server;
            }
            let exited = server.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            assert!(exited.is_none(), "savesync-server exited at start: {}", server.log());
            assert!(
                start.elapsed() < PROCESS_DEADLINE,
                "savesync-server logged no http://127.0.0.1:PORT URL within \
                 {PROCESS_DEADLINE:?}: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The URL devices use, e.g. `http://127.0.0.1:40123`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's data directory.
    #[must_use]
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `savesync-server pair --user USER --data-dir DIR --quiet`: a one-time code, issued
    /// by a second process while `serve` runs.
    #[must_use]
    pub fn pairing_code(&self, user: &str) -> String {
        let out = Command::new(server_bin())
            .args(["pair", "--user", user, "--quiet", "--data-dir"])
            .arg(self.data_dir())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run savesync-server pair");
        assert!(
            out.status.success(),
            "savesync-server pair failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let code = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(!code.is_empty() && !code.contains('\n'), "--quiet prints one code: {code:?}");
        code
    }

    /// SIGTERM and wait for the exit status (panics past the deadline).
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the server process is running");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits in i32"));
        let _ = kill(pid, Signal::SIGTERM);
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().ok().flatten() {
                return status;
            }
            if start.elapsed() > PROCESS_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("savesync-server ignored SIGTERM for {PROCESS_DEADLINE:?}: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything the server logged so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("savesync-server log ({}):\n{}", self.log_path().display(), self.log());
        }
    }
}

/// The first `http://127.0.0.1:PORT` in `text`.
pub(crate) fn loopback_url_in(text: &str) -> Option<String> {
    const PREFIX: &str = "http://127.0.0.1:";
    let at = text.find(PREFIX)?;
    let port: String = text[at + PREFIX.len()..].chars().take_while(char::is_ascii_digit).collect();
    (!port.is_empty() && port != "0").then(|| format!("{PREFIX}{port}"))
}

#[cfg(test)]
mod tests {
    use super::loopback_url_in;

    #[test]
    fn finds_the_loopback_url_in_a_log_line() {
        let line = "INFO savesync-server starting data_dir=/x url=http://127.0.0.1:40123/ ok";
        assert_eq!(loopback_url_in(line).as_deref(), Some("http://127.0.0.1:40123"));
        assert_eq!(loopback_url_in("listen=http://127.0.0.1:0"), None);
        assert_eq!(loopback_url_in("nothing"), None);
    }
}
