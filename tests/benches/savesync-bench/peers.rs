//! The FUSE peers the mount is measured against in the same run: bindfs (a passthrough that
//! syncs nothing, so the floor for any FUSE filesystem on this kernel) and rclone mount with
//! `--vfs-cache-mode full` over `rclone serve webdav` on loopback (a FUSE mount that syncs
//! to a server, with a write-back cache). Each is a guard: dropping it unmounts
//! (`fusermount3 -u`, then `-uz`) and ends its processes, also when the bench panics.

use savesync_tests::{ProcessGroup, free_loopback_port, is_fuse_mount};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Deadline for a peer's mount or server to come up.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// True if `program --version` runs; prints a "not installed" line otherwise.
pub fn installed(program: &str) -> bool {
    let ok = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("{program}: not installed; its column stays empty (install the Debian package)");
    }
    ok
}

fn temp(prefix: &str) -> TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().expect("peer temp dir")
}

/// A FUSE mount run by a foreground child process (bindfs -f, rclone mount).
struct FuseMount {
    process: Option<ProcessGroup>,
    mountpoint: PathBuf,
}

impl FuseMount {
    fn spawn(mut command: Command, mountpoint: &Path, log: &Path, what: &str) -> FuseMount {
        let log = std::fs::File::create(log).expect("peer log");
        command.stdin(Stdio::null()).stdout(log.try_clone().expect("clone log")).stderr(log);
        let mut process =
            ProcessGroup::spawn(command, what).unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let start = Instant::now();
        while !is_fuse_mount(mountpoint) {
            if let Some(status) = process.exited() {
                panic!("{what} exited with {status} before mounting");
            }
            assert!(start.elapsed() < START_DEADLINE, "{what} did not mount in time");
            std::thread::sleep(Duration::from_millis(5));
        }
        FuseMount { process: Some(process), mountpoint: mountpoint.to_owned() }
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        let clean = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.mountpoint)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        // The process group's own drop ends the daemon (SIGTERM, then SIGKILL).
        drop(self.process.take());
        if !clean && is_fuse_mount(&self.mountpoint) {
            let _ = Command::new("fusermount3").arg("-uz").arg(&self.mountpoint).status();
        }
    }
}

/// `bindfs -f --no-allow-other SRC MNT`: every file operation passed through to SRC.
pub struct Bindfs {
    mount: FuseMount,
    _dirs: TempDir,
}

impl Bindfs {
    pub fn mount() -> Bindfs {
        let dirs = temp("savesync-bench-bindfs-");
        let (src, mnt) = (dirs.path().join("src"), dirs.path().join("mnt"));
        std::fs::create_dir_all(&src).expect("bindfs src");
        std::fs::create_dir_all(&mnt).expect("bindfs mnt");
        let mut cmd = Command::new("bindfs");
        cmd.args(["-f", "--no-allow-other"]).arg(&src).arg(&mnt);
        let mount = FuseMount::spawn(cmd, &mnt, &dirs.path().join("bindfs.log"), "bindfs");
        Bindfs { mount, _dirs: dirs }
    }

    pub fn root(&self) -> &Path {
        &self.mount.mountpoint
    }
}

/// `rclone serve webdav DIR --addr 127.0.0.1:PORT`: the server side of the rclone peer.
pub struct Webdav {
    _process: ProcessGroup,
    dir: TempDir,
    port: u16,
}

impl Webdav {
    pub fn start() -> Webdav {
        let dir = temp("savesync-bench-webdav-");
        std::fs::create_dir_all(dir.path().join("served")).expect("served dir");
        let port = free_loopback_port();
        let log = std::fs::File::create(dir.path().join("webdav.log")).expect("webdav log");
        let mut cmd = Command::new("rclone");
        cmd.args(["serve", "webdav"])
            .arg(dir.path().join("served"))
            .args(["--addr", &format!("127.0.0.1:{port}"), "--config"])
            .arg(dir.path().join("rclone.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log);
        let mut process = ProcessGroup::spawn(cmd, "rclone serve webdav").expect("spawn rclone");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = process.exited() {
                panic!("rclone serve webdav exited with {status}");
            }
            assert!(start.elapsed() < START_DEADLINE, "rclone serve webdav not listening");
            std::thread::sleep(Duration::from_millis(10));
        }
        Webdav { _process: process, dir, port }
    }

    /// The directory the webdav server serves (what "on the server" means for rclone).
    pub fn served(&self) -> PathBuf {
        self.dir.path().join("served")
    }
}

/// `rclone mount :webdav,url=...: MNT --vfs-cache-mode full` with its own empty cache dir
/// (rclone's defaults otherwise, e.g. write-back 5 s after the last close).
pub struct RcloneMount {
    mount: FuseMount,
    _dirs: TempDir,
}

impl RcloneMount {
    pub fn mount(webdav: &Webdav) -> RcloneMount {
        let dirs = temp("savesync-bench-rclone-");
        let (mnt, cache) = (dirs.path().join("mnt"), dirs.path().join("cache"));
        std::fs::create_dir_all(&mnt).expect("rclone mnt");
        std::fs::create_dir_all(&cache).expect("rclone cache");
        let mut cmd = Command::new("rclone");
        cmd.arg("mount")
            .arg(format!(":webdav,url='http://127.0.0.1:{}':", webdav.port))
            .arg(&mnt)
            .args(["--vfs-cache-mode", "full", "--cache-dir"])
            .arg(&cache)
            .arg("--config")
            .arg(dirs.path().join("rclone.conf"));
        let mount = FuseMount::spawn(cmd, &mnt, &dirs.path().join("mount.log"), "rclone mount");
        RcloneMount { mount, _dirs: dirs }
    }

    pub fn root(&self) -> &Path {
        &self.mount.mountpoint
    }
}
