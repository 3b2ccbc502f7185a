//! [`FolderDevice`]: one paired device that keeps an ordinary folder in sync with
//! `savesync sync DIR --foreground` (no FUSE), driven only through the CLI like
//! [`Device`]. Its log (stdout and stderr of every run) is printed when a test panics;
//! drop stops the daemon (SIGTERM, then SIGKILL).

use crate::device::Device;
use crate::server::TestServer;
use crate::wait::poll_until;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

/// Quiet time the harness syncs folders with (`--debounce-ms`).
pub const FOLDER_DEBOUNCE_MS: u32 = 50;
/// Deadline for the daemon to report itself running.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Deadline for a SIGTERMed daemon to exit.
const STOP_DEADLINE: Duration = Duration::from_secs(20);

/// A device syncing a folder.
#[derive(Debug)]
pub struct FolderDevice {
    device: Device,
    folder: PathBuf,
    child: Option<Child>,
    runs: u32,
}

impl FolderDevice {
    /// Pair a device (own HOME/XDG dirs) whose folder is `<device dir>/folder` (created,
    /// empty).
    #[must_use]
    pub fn pair(server: &TestServer, user: &str, name: &str) -> FolderDevice {
        let device = Device::pair(server, user, name);
        let folder = device.data_home().parent().expect("device dir").join("folder");
        std::fs::create_dir_all(&folder).expect("create the folder");
        let folder = std::fs::canonicalize(&folder).expect("canonical folder");
        FolderDevice { device, folder, child: None, runs: 0 }
    }

    /// The synced folder.
    #[must_use]
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// A path inside the folder.
    #[must_use]
    pub fn path(&self, rel: &str) -> PathBuf {
        self.folder.join(rel)
    }

    /// The paired device (its CLI environment, data dir).
    #[must_use]
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Run a one-shot CLI command with this device's environment.
    #[must_use]
    pub fn run_cli(&self, args: &[&str]) -> Output {
        self.device.run_cli(args)
    }

    /// `savesync status --json`, parsed.
    #[must_use]
    pub fn status_json(&self) -> serde_json::Value {
        self.device.status_json()
    }

    /// Process id of the running `savesync sync`, if any.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// True while the daemon runs.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Start `savesync sync FOLDER --foreground --debounce-ms 50
    /// --offline-backoff-max-ms 1000` and wait until `status` shows the synced folder.
    pub fn start(&mut self) {
        self.start_with_args(&[]);
    }

    /// [`FolderDevice::start`] with extra flags (a flag given here replaces the default).
    pub fn start_with_args(&mut self, extra: &[&str]) {
        assert!(self.child.is_none(), "{} already syncs", self.device.name());
        self.runs += 1;
        let log = self.open_log();
        let _ = writeln!(&log, "==== sync #{} ====", self.runs);
        let mut cmd = self.device.command();
        cmd.arg("sync").arg(&self.folder).arg("--foreground");
        if !extra.contains(&"--debounce-ms") {
            cmd.args(["--debounce-ms", &FOLDER_DEBOUNCE_MS.to_string()]);
        }
        if !extra.contains(&"--offline-backoff-max-ms") {
            cmd.args(["--offline-backoff-max-ms", "1000"]);
        }
        cmd.args(extra).stdout(log.try_clone().expect("clone log")).stderr(log);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn savesync sync: {e}"));
        self.child = Some(child);
        let want = self.folder.display().to_string();
        let started = poll_until(START_DEADLINE, || {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("savesync sync exited with {status} while starting\n{}", self.log_tail());
            }
            // A killed run's row names a dead pid, which `status` does not count. The state
            // DB may still be being created: a failing `status` means "not yet".
            let out = self.run_cli(&["status", "--json"]);
            let s: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            (s["synced_folder"].as_str() == Some(want.as_str())).then_some(())
        });
        if started.is_none() {
            panic!(
                "savesync sync did not report running within {START_DEADLINE:?}\n{}",
                self.log_tail()
            );
        }
    }

    /// SIGTERM the daemon and require exit status 0.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("the folder daemon runs");
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().ok().flatten() {
                break status;
            }
            if start.elapsed() > STOP_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("savesync sync ignored SIGTERM for {STOP_DEADLINE:?}\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(status.success(), "savesync sync exited with {status}\n{}", self.log_tail());
    }

    /// SIGKILL the daemon (nothing gets flushed).
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("the folder daemon runs");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Where the daemon's output goes.
    #[must_use]
    pub fn log_path(&self) -> PathBuf {
        self.device.data_home().parent().expect("device dir").join("sync.log")
    }

    /// The last lines of the log.
    #[must_use]
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(80);
        format!(
            "---- last lines of {} ----\n{}\n---- end ----",
            self.log_path().display(),
            lines[from..].join("\n")
        )
    }

    fn open_log(&self) -> std::fs::File {
        OpenOptions::new().create(true).append(true).open(self.log_path()).expect("open the log")
    }
}

impl Drop for FolderDevice {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("folder device {}: {}", self.device.name(), self.log_tail());
        }
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let start = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if start.elapsed() > STOP_DEADLINE {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Write `bytes` to `path` the way a careful emulator does: a temp file in the same
/// directory (a local-only `*.tmp` name), then a rename over. Creates parent directories.
pub fn write_via_rename(path: &Path, bytes: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create parent dirs");
    }
    let tmp = path.with_extension("savesync-test.tmp");
    std::fs::write(&tmp, bytes).expect("write the temp file");
    std::fs::rename(&tmp, path).expect("rename over the save");
}
