//! [`Device`]: one paired device with its own HOME/XDG directories, profile, data dir and
//! mountpoint, driven only through the `savesync` CLI (the black box under test).
//!
//! The mount runs as a child process (`mount MP --foreground`); its stdout and stderr go to
//! `mount.log` in the device directory, printed when a test panics. Drop always leaves no
//! mount behind: SIGTERM, then SIGKILL, then `fusermount3 -uz` if the kernel still lists it.

use crate::bins::mount_bin;
use crate::mountinfo::{fuse_mount_ids, is_fuse_mount};
use crate::server::TestServer;
use crate::wait::wait_until;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Upload debounce the harness mounts with, so tests see uploads quickly.
pub const TEST_DEBOUNCE_MS: u32 = 20;
/// Longest wait between reachability probes while offline the harness mounts with (the
/// default is minutes), so a restarted server is found quickly.
pub const TEST_OFFLINE_BACKOFF_MAX_MS: u32 = 1000;
/// Deadline for a mount to show up in /proc/self/mountinfo.
const MOUNT_DEADLINE: Duration = Duration::from_secs(20);
/// Deadline for a SIGTERMed mount to exit and disappear.
const UNMOUNT_DEADLINE: Duration = Duration::from_secs(20);
/// Deadline for a one-shot CLI command (`pair`, `status`, ...).
const CLI_DEADLINE: Duration = Duration::from_secs(30);
/// Lines of the mount log printed when a test panics.
const LOG_TAIL_LINES: usize = 80;

/// One device: its own directories, a paired profile, and (while mounted) a mount process.
#[derive(Debug)]
pub struct Device {
    name: String,
    dir: TempDir,
    mountpoint: PathBuf,
    child: Option<Child>,
    mounts_started: u32,
}

impl Device {
    /// Create the device's directories and run `savesync pair URL CODE --name NAME`.
    #[must_use]
    pub fn pair(server: &TestServer, user: &str, name: &str) -> Device {
        Device::pair_with_code(&server.url(), &server.pairing_code(user), name)
    }

    /// Like [`Device::pair`] for a server the harness does not run in-process (e.g. a
    /// [`crate::ServerProcess`]): pair with `url` and a one-time `code`.
    #[must_use]
    pub fn pair_with_code(url: &str, code: &str, name: &str) -> Device {
        let dir = tempfile::Builder::new()
            .prefix(&format!("savesync-e2e-{name}-"))
            .tempdir()
            .expect("create the device directory");
        let mountpoint = dir.path().join("mnt");
        for sub in ["home", "config", "data", "cache", "runtime"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("create device dirs");
        }
        std::fs::create_dir_all(&mountpoint).expect("create the mountpoint");
        let device =
            Device { name: name.to_owned(), dir, mountpoint, child: None, mounts_started: 0 };
        let out = device.run_cli(&["pair", url, code, "--name", name]);
        assert!(
            out.status.success(),
            "`savesync pair` failed for device {name}: {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        device
    }

    /// The device's name (as paired).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The mountpoint directory.
    #[must_use]
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// A path inside the mount.
    #[must_use]
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mountpoint.join(rel)
    }

    /// `$XDG_DATA_HOME` of this device (the profile's data dir lives below it).
    #[must_use]
    pub fn data_home(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `$XDG_CONFIG_HOME` of this device (profiles live below it).
    #[must_use]
    pub fn config_home(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    /// Where the mount process writes its stdout and stderr.
    #[must_use]
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("mount.log")
    }

    /// True while the mount process runs.
    #[must_use]
    pub fn is_mounted(&self) -> bool {
        self.child.is_some()
    }

    /// Process id of the running mount, if any.
    #[must_use]
    pub fn mount_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A `savesync` command with this device's environment (HOME, XDG dirs).
    #[must_use]
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(mount_bin());
        let d = self.dir.path();
        cmd.env("HOME", d.join("home"))
            .env("XDG_CONFIG_HOME", d.join("config"))
            .env("XDG_DATA_HOME", d.join("data"))
            .env("XDG_CACHE_HOME", d.join("cache"))
            .env("XDG_RUNTIME_DIR", d.join("runtime"))
            .env("RUST_BACKTRACE", "1")
            .env(
                "RUST_LOG",
                std::env::var("SAVESYNC_E2E_LOG")
                    .unwrap_or_else(|_| "info,savesync_fs=debug,savesync_client=debug".into()),
            )
            .stdin(Stdio::null());
        cmd
    }

    /// Run a one-shot CLI command (`status`, `conflicts`, `resolve`, ...) and return its
    /// output; panics only if it cannot be run or overruns its deadline.
    #[must_use]
    pub fn run_cli(&self, args: &[&str]) -> Output {
        let mut child = self
            .command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run savesync {args:?}: {e}"));
        // Drain both pipes while waiting: a command printing more than a pipe holds
        // (`cat` of a big save) would otherwise block forever.
        let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut bytes);
                }
                bytes
            })
        };
        let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the CLI") {
                break status;
            }
            if start.elapsed() > CLI_DEADLINE {
                let _ = child.kill();
                panic!("`savesync {args:?}` on {} ran longer than {CLI_DEADLINE:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stdout = stdout.join().expect("stdout reader");
        let stderr = stderr.join().expect("stderr reader");
        Output { status, stdout, stderr }
    }

    /// `savesync status --json`, parsed.
    #[must_use]
    pub fn status_json(&self) -> serde_json::Value {
        let out = self.run_cli(&["status", "--json"]);
        assert!(
            out.status.success(),
            "`savesync status --json` failed on {}: {}\nstderr: {}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "`savesync status --json` printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Mount with the harness defaults (`--foreground --debounce-ms 20
    /// --offline-backoff-max-ms 1000`) and wait until the
    /// kernel lists the FUSE mount.
    pub fn mount(&mut self) {
        self.mount_with_args(&[]);
    }

    /// Like [`Device::mount`] with extra `savesync mount` flags (e.g. `--uid`, `--file-mode`,
    /// or `--debounce-ms N` to replace the harness default).
    pub fn mount_with_args(&mut self, extra: &[&str]) {
        assert!(self.child.is_none(), "device {} is already mounted", self.name);
        let before = fuse_mount_ids(&self.mountpoint);
        self.mounts_started += 1;
        let log = self.open_log();
        let _ = writeln!(&log, "==== mount #{} ====", self.mounts_started);
        let debounce = TEST_DEBOUNCE_MS.to_string();
        let mut cmd = self.command();
        cmd.arg("mount").arg(&self.mountpoint).arg("--foreground");
        // The caller may choose its own debounce (clap refuses a flag given twice).
        if !extra.contains(&"--debounce-ms") {
            cmd.args(["--debounce-ms", &debounce]);
        }
        if !extra.contains(&"--offline-backoff-max-ms") {
            cmd.args(["--offline-backoff-max-ms", &TEST_OFFLINE_BACKOFF_MAX_MS.to_string()]);
        }
        cmd.args(extra).stdout(log.try_clone().expect("clone log handle")).stderr(log);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn the mount of {}: {e}", self.name));
        self.child = Some(child);
        let name = self.name.clone();
        let mountpoint = self.mountpoint.clone();
        let start = Instant::now();
        loop {
            if mount_is_new(&mountpoint, &before) {
                break;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                panic!(
                    "mount process of {name} exited with {status} before mounting\n{}",
                    self.log_tail()
                );
            }
            if start.elapsed() > MOUNT_DEADLINE {
                panic!(
                    "{name}: {} is not a FUSE mount {MOUNT_DEADLINE:?} after starting the \
                     mount\n{}",
                    mountpoint.display(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM the mount, wait for a clean exit (status 0) and for the mount to disappear.
    pub fn unmount(&mut self) {
        let Some(mut child) = self.child.take() else {
            panic!("device {} is not mounted", self.name);
        };
        let _ = kill(Pid::from_raw(pid_of(&child)), Signal::SIGTERM);
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().ok().flatten() {
                break status;
            }
            if start.elapsed() > UNMOUNT_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                lazy_unmount(&self.mountpoint);
                panic!(
                    "mount of {} did not exit within {UNMOUNT_DEADLINE:?} of SIGTERM\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mountpoint = self.mountpoint.clone();
        let gone = wait_for_unmounted(&mountpoint, Duration::from_secs(5));
        if !gone {
            lazy_unmount(&mountpoint);
        }
        assert!(
            status.success(),
            "mount of {} exited with {status} after SIGTERM (expected 0)\n{}",
            self.name,
            self.log_tail()
        );
        assert!(
            gone,
            "{} was still a FUSE mount after the mount process exited on SIGTERM",
            mountpoint.display()
        );
    }

    /// SIGKILL the mount (no chance to flush anything), then clean the dead mount with
    /// `fusermount3 -uz` as an admin would.
    pub fn kill9(&mut self) {
        self.kill9_leave_stale_mount();
        lazy_unmount(&self.mountpoint);
        let mountpoint = self.mountpoint.clone();
        wait_until(UNMOUNT_DEADLINE, "the killed mount to be detached", || {
            (!is_fuse_mount(&mountpoint)).then_some(())
        });
    }

    /// SIGKILL the mount and leave the dead mount in place (stat gives ENOTCONN), to test
    /// that the next `mount` cleans a stale mount by itself.
    pub fn kill9_leave_stale_mount(&mut self) {
        let Some(mut child) = self.child.take() else {
            panic!("device {} is not mounted", self.name);
        };
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The mount log since the harness started the latest mount.
    #[must_use]
    pub fn last_mount_log(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let from = text.rfind("==== mount #").expect("the harness marks each mount in the log");
        text[from..].to_owned()
    }

    /// The last lines of the mount log.
    #[must_use]
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(LOG_TAIL_LINES);
        format!(
            "---- last lines of {} ----\n{}\n---- end ----",
            self.log_path().display(),
            lines[from..].join("\n")
        )
    }

    fn open_log(&self) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the mount log")
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("device {}: {}", self.name, self.log_tail());
        }
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(pid_of(&child)), Signal::SIGTERM);
            let start = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if start.elapsed() > UNMOUNT_DEADLINE {
                    eprintln!("device {}: mount ignored SIGTERM; killing it", self.name);
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if !wait_for_unmounted(&self.mountpoint, Duration::from_secs(2)) {
            lazy_unmount(&self.mountpoint);
            wait_for_unmounted(&self.mountpoint, Duration::from_secs(5));
        }
    }
}

/// True once a FUSE mount at `mountpoint` is listed that is not the (stale) one seen before
/// spawning. Mount ids are reused once freed, so when the only listed id was already there,
/// the mount counts as new only if it answers `stat` (a stale mount gives ENOTCONN).
fn mount_is_new(mountpoint: &Path, before: &[u64]) -> bool {
    let ids = fuse_mount_ids(mountpoint);
    if ids.is_empty() {
        return false;
    }
    ids.iter().any(|id| !before.contains(id)) || std::fs::metadata(mountpoint).is_ok()
}

fn pid_of(child: &Child) -> i32 {
    i32::try_from(child.id()).expect("pid fits in i32")
}

/// `fusermount3 -uz`: lazy unmount; errors ignored (the mount may already be gone).
fn lazy_unmount(mountpoint: &Path) {
    let _ = Command::new("fusermount3")
        .arg("-uz")
        .arg(mountpoint)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn wait_for_unmounted(mountpoint: &Path, timeout: Duration) -> bool {
    let start = Instant::now();
    while is_fuse_mount(mountpoint) {
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}
