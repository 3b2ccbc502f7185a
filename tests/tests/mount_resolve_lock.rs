//! `savesync resolve` on an unmounted profile changes the state directly, so it takes the
//! daemon's lock (`data_dir/daemon.lock`): it refuses clearly while a daemon holds it
//! (e.g. one starting up, whose temp files it must not delete), and a daemon cannot start
//! while the lock is held.

use nix::fcntl::{Flock, FlockArg};
use savesync_tests::SoloDevice;
use std::path::PathBuf;

const USER: &str = "rita";

/// Hold an exclusive flock on `path` for as long as the file stays open.
fn hold_lock(path: &PathBuf) -> Flock<std::fs::File> {
    let file =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).unwrap();
    Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .unwrap_or_else(|(_, e)| panic!("lock {}: {e}", path.display()))
}

#[test]
fn resolve_refuses_while_the_daemon_lock_is_held_and_leaves_its_files_alone() {
    let Some(SoloDevice { server: _server, view: _view, mut a }) =
        SoloDevice::start(USER, "handheld-r")
    else {
        return;
    };
    std::fs::write(a.path("x.srm"), b"x").unwrap();
    a.unmount();
    let data_dir = PathBuf::from(a.status_json()["data_dir"].as_str().unwrap());
    // A daemon that is starting: it holds the lock and has a download in flight.
    let lock = hold_lock(&data_dir.join("daemon.lock"));
    let in_flight = data_dir.join("tmp").join("download-in-flight");
    std::fs::write(&in_flight, b"partial").unwrap();

    let out = a.run_cli(&["resolve", "x.srm", "--keep", "mine"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "resolve must not run under a daemon's lock: {stderr}");
    assert!(stderr.contains("in use by another savesync process"), "clear refusal: {stderr}");
    assert!(in_flight.exists(), "resolve deleted the daemon's temp file");

    // While the lock is held (by resolve or anyone), no daemon starts on this profile.
    let mp = a.mountpoint().to_str().unwrap().to_owned();
    let mount = a.run_cli(&["mount", &mp, "--foreground"]);
    let mount_err = String::from_utf8_lossy(&mount.stderr);
    assert!(!mount.status.success(), "a daemon started under the lock");
    assert!(mount_err.contains("in use by another savesync process"), "{mount_err}");

    // Without the lock, resolve runs (and reports that there is nothing to resolve).
    drop(lock);
    let out = a.run_cli(&["resolve", "x.srm", "--keep", "mine"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has no conflict"), "{stderr}");
}
