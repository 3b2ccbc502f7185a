//! `savesync sync DIR` as a daemon: without `--foreground` it returns once the daemon
//! runs, in its own session; `status` shows the synced folder; `history` takes a file path
//! in the folder; the profile is held by that one daemon (a second one is refused) and,
//! once stopped with SIGTERM, still belongs to its folder (syncing it to another folder
//! is refused).

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use savesync_tests::{
    FolderDevice, RemoteView, TestServer, is_running, save_bytes, session_of, wait_until,
};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(20);

#[test]
fn a_detached_folder_daemon_owns_its_profile_and_stops_on_sigterm() {
    let server = TestServer::start_blocking();
    let view = RemoteView::new(&server, "dee");
    let dev = FolderDevice::pair(&server, "dee", "detached-handheld");
    let folder = dev.folder().to_str().unwrap().to_owned();
    let out = dev.run_cli(&["sync", &folder]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "savesync sync exits 0 once running: {out:?}");
    let rest = &stdout[stdout.find("(pid ").expect("a pid in the output") + 5..];
    let pid: u32 = rest[..rest.find(',').unwrap()].parse().unwrap();
    assert_eq!(session_of(pid), Some(pid), "the daemon leads its own session");

    let text = String::from_utf8(dev.run_cli(&["status"]).stdout).unwrap();
    assert!(text.contains(&format!("synced:     folder {folder}")), "{text}");
    let bytes = save_bytes(1, 1000);
    std::fs::write(dev.path("a.srm"), &bytes).unwrap();
    wait_until(DEADLINE, "the save on the server", || view.has("a.srm", &bytes).then_some(()));
    let path = dev.path("a.srm");
    let out = dev.run_cli(&["history", path.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "history by a file path in the folder: {out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("a.srm"));

    // The profile is taken: a second daemon is refused.
    let other = dev.folder().with_file_name("other-folder");
    let out = dev.run_cli(&["sync", other.to_str().unwrap(), "--foreground"]);
    assert!(!out.status.success(), "a second daemon on one profile was not refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use"), "{out:?}");

    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    wait_until(DEADLINE, "the daemon to exit on SIGTERM", || (!is_running(pid)).then_some(()));
    let text = String::from_utf8(dev.run_cli(&["status"]).stdout).unwrap();
    assert!(text.contains("mounted:    no"), "{text}");
    // Stopped, the profile still belongs to its folder.
    let out = dev.run_cli(&["sync", other.to_str().unwrap(), "--foreground"]);
    assert!(!out.status.success(), "syncing a profile to a second folder was not refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("syncs the folder"), "{out:?}");
    // Nor can it be mounted: its records describe the folder.
    let mnt = dev.folder().with_file_name("mnt");
    let out = dev.run_cli(&["mount", mnt.to_str().unwrap(), "--foreground"]);
    assert!(!out.status.success(), "mounting a folder's profile was not refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("syncs the folder"), "{out:?}");
}
