//! `savesync mount MOUNTPOINT` without `--foreground`: the command returns once the mount
//! is live, and the daemon it leaves behind runs in its own session (setsid), so closing
//! the terminal that started it does not hang it up.

use savesync_tests::{
    Device, TestServer, is_fuse_mount, is_running, require_fuse, session_of, wait_until,
};
use std::process::Command;
use std::time::Duration;

/// The daemon pid from "Mounted MP (pid N, log ...)".
fn daemon_pid(stdout: &str) -> Option<u32> {
    let rest = &stdout[stdout.find("(pid ")? + 5..];
    rest[..rest.find(',')?].parse().ok()
}

/// The daemon's log file from "Mounted MP (pid N, log PATH).".
fn daemon_log(stdout: &str) -> Option<std::path::PathBuf> {
    let rest = &stdout[stdout.find(", log ")? + 6..];
    Some(rest[..rest.find(").")?].into())
}

#[test]
fn a_detached_mount_daemon_leads_its_own_session() {
    if !require_fuse() {
        return;
    }
    let server = TestServer::start_blocking();
    let dev = Device::pair(&server, "detach", "detached-pc");
    let out = dev
        .command()
        .args(["mount", dev.mountpoint().to_str().expect("utf-8 temp path")])
        .output()
        .expect("run savesync mount");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "savesync mount exits 0 once mounted: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = daemon_pid(&stdout).unwrap_or_else(|| panic!("no daemon pid in {stdout:?}"));
    assert!(is_fuse_mount(dev.mountpoint()), "the mount is live when the command returns");
    assert_eq!(session_of(pid), Some(pid), "the daemon leads its own session (setsid)");
    assert_ne!(
        session_of(std::process::id()),
        Some(pid),
        "the test process stays in its own session"
    );

    let status = Command::new("fusermount3")
        .arg("-u")
        .arg(dev.mountpoint())
        .status()
        .expect("run fusermount3 -u");
    assert!(status.success(), "fusermount3 -u the detached mount");
    wait_until(Duration::from_secs(20), "the daemon to exit after the unmount", || {
        // A zombie counts as gone: its parent (the mount command) already exited.
        (!is_running(pid)).then_some(())
    });
    let log_path = daemon_log(&stdout).unwrap_or_else(|| panic!("no log path in {stdout:?}"));
    let log = std::fs::read_to_string(&log_path)
        .unwrap_or_else(|e| panic!("read the daemon's log {}: {e}", log_path.display()));
    assert!(log.contains("unmounted from outside"), "the daemon saw the unmount:\n{log}");
    assert!(log.contains("stopped"), "the daemon stopped cleanly:\n{log}");
    assert!(!log.contains('\u{1b}'), "the log file has no colour codes:\n{log}");
    assert!(
        !log.contains("WARN") && !log.contains("ERROR"),
        "an unmount from outside is a normal stop, not a warning:\n{log}"
    );
}
