//! A power cut right after saves were closed. The mount pays one disk sync per closed save
//! (the cache file's fdatasync); the DB commit that records the close and queues its upload
//! is not synced, so a power cut may take it back. The next start must find every closed
//! save again (`fs/src/tree/power_cut.rs`).
//!
//! The power cut is simulated on the state DB: after a clean unmount the DB is copied (the
//! WAL is checkpointed into it then); the next session overwrites and creates saves with
//! uploads held back (long debounce), the mount is killed with SIGKILL, and the DB is put
//! back to that copy with the WAL deleted. That takes back every commit of the session:
//! more than a real power cut can (a fully synced commit would survive), never less. The
//! cache files are left as the session wrote and fdatasynced them.

use savesync_core::ContentHash;
use savesync_tests::{Device, RemoteView, TestServer, require_fuse, save_bytes, wait_until};
use std::path::{Path, PathBuf};
use std::time::Duration;

const USER: &str = "erin";
const DEADLINE: Duration = Duration::from_secs(30);

fn name(i: u64) -> String {
    format!("snes/slot-{i:02}.srm")
}

/// Write saves `range` with bytes from `seed` (write, fsync, close each).
fn write_saves(a: &Device, seed: u64, range: std::ops::Range<u64>) -> Vec<(String, Vec<u8>)> {
    std::fs::create_dir_all(a.path("snes")).expect("mkdir snes");
    range
        .map(|i| {
            let bytes = save_bytes(seed * 1000 + i, 2048 + usize::try_from(i).unwrap() * 13);
            let path = a.path(&name(i));
            let mut f = std::fs::File::create(&path).expect("create save");
            std::io::Write::write_all(&mut f, &bytes).expect("write save");
            f.sync_all().expect("fsync save");
            drop(f);
            (name(i), bytes)
        })
        .collect()
}

/// The saves of `expected` the server does not hold with those bytes by the deadline.
fn missing_on_server(view: &RemoteView, expected: &[(String, Vec<u8>)]) -> Vec<String> {
    view.missing_after(DEADLINE, expected)
}

/// The device's profile data dir: where its `state.db` is.
fn data_dir(a: &Device) -> PathBuf {
    fn find(dir: &Path) -> Option<PathBuf> {
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == "state.db") {
                return path.parent().map(Path::to_path_buf);
            }
            if path.is_dir()
                && let Some(found) = find(&path)
            {
                return Some(found);
            }
        }
        None
    }
    find(&a.data_home()).expect("the device has a state.db below its data home")
}

#[test]
fn a_power_cut_after_closed_saves_loses_none_of_them() {
    if !require_fuse() {
        return;
    }
    let server = TestServer::start_blocking();
    let view = RemoteView::new(&server, USER);
    let mut a = Device::pair(&server, USER, "handheld-a");

    // Session 1: ten saves reach the server, then a clean stop.
    a.mount();
    let first = write_saves(&a, 1, 0..10);
    assert_eq!(missing_on_server(&view, &first), Vec::<String>::new(), "session 1 uploads");
    a.unmount();
    let dir = data_dir(&a);
    assert!(!dir.join("unclean").exists(), "a clean stop leaves no unclean marker");
    assert!(!dir.join("state.db-wal").exists(), "a clean stop checkpoints the WAL");
    let saved_db = std::fs::read(dir.join("state.db")).expect("copy of the state DB");

    // Session 2: overwrite the ten and create ten more; nothing is uploaded before the cut.
    a.mount_with_args(&["--debounce-ms", "600000"]);
    wait_until(DEADLINE, "A to be online", || (a.status_json()["online"] == true).then_some(()));
    let second = write_saves(&a, 2, 0..20);
    let on_server = view.saves();
    assert!(
        second.iter().all(|(p, b)| on_server.get(p) != Some(&ContentHash::of(b))),
        "no save of session 2 was uploaded before the cut (long debounce)"
    );
    a.kill9();
    assert!(dir.join("unclean").exists(), "kill -9 leaves the unclean marker");

    // The cut: every commit of session 2 is gone.
    std::fs::write(dir.join("state.db"), &saved_db).expect("roll the state DB back");
    for leftover in ["state.db-wal", "state.db-shm"] {
        let _ = std::fs::remove_file(dir.join(leftover));
    }

    a.mount();
    // The cache is checked while the mount serves: `status --wait` waits for the check too.
    let waited = a.run_cli(&["status", "--wait", "--timeout", "60"]);
    assert!(waited.status.success(), "status --wait: {}", String::from_utf8_lossy(&waited.stderr));
    assert!(a.status_json()["cache_check"].is_null(), "the check ended: {}", a.status_json());
    let last_run = a.last_mount_log();
    let mounted = last_run.find(": mounted ").expect("the mount logs that it serves");
    let checked = last_run.find(": checked the cache").expect("the check logs its end");
    assert!(mounted < checked, "the mount served before the check:\n{last_run}");
    let lost = missing_on_server(&view, &second);
    println!("POWER CUT: {} saves closed before the cut, {} lost", second.len(), lost.len());
    assert!(lost.is_empty(), "{} closed saves lost to the power cut: {lost:?}", lost.len());
    for (p, b) in &second {
        assert_eq!(&std::fs::read(a.path(p)).expect("read after the cut"), b, "{p} reads back");
    }
    let listed = std::fs::read_dir(a.path("snes")).expect("list snes").count();
    assert_eq!(listed, second.len(), "each save is listed once, with no recovered copies");
    a.unmount();
    assert!(!dir.join("unclean").exists(), "the stop after recovery is clean again");
}
