//! `savesync status --wait` on a synced folder: a file closed just before the command is
//! reported by the folder's watcher a moment later, and the wait still covers it.

use savesync_tests::{FolderDevice, RemoteView, TestServer, save_bytes};

#[test]
fn status_wait_covers_a_folder_file_closed_just_before_it() {
    let server = TestServer::start_blocking();
    let view = RemoteView::new(&server, "ash");
    let mut dev = FolderDevice::pair(&server, "ash", "handheld");
    dev.start();
    for round in 0..3u64 {
        let (path, bytes) = (format!("round-{round}.srm"), save_bytes(700 + round, 3000));
        std::fs::write(dev.path(&path), &bytes).unwrap();
        let out = dev.run_cli(&["status", "--wait", "--timeout", "25"]);
        assert!(
            out.status.success(),
            "status --wait: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        // No polling: the wait returned, so the server holds the file now.
        assert!(view.has(&path, &bytes), "{path} is on the server once status --wait returned");
    }
    dev.stop();
}

/// A profile used for a mount that stopped uncleanly, then for a synced folder: the row
/// noting the mount's due cache check (`kv` `cache_check`) waits for the next mount, and
/// neither `status` nor `status --wait` hang on it while the folder runs.
#[test]
fn a_mounts_unfinished_cache_check_does_not_hold_up_a_synced_folders_wait() {
    let server = TestServer::start_blocking();
    let view = RemoteView::new(&server, "ash");
    let mut dev = FolderDevice::pair(&server, "ash", "handheld");
    dev.start();
    let db_path = dev.device().data_home().join("savesync").join("default").join("state.db");
    let db = savesync_fs::state::StateDb::open_existing(&db_path).expect("the folder's state DB");
    db.set_kv("cache_check", "3/10").unwrap();
    drop(db);
    let (path, bytes) = ("after.srm", save_bytes(710, 3000));
    std::fs::write(dev.path(path), &bytes).unwrap();
    let out = dev.run_cli(&["status", "--wait", "--timeout", "25"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "status --wait: {}\n{stderr}", out.status);
    assert!(!stderr.contains("cache is checked"), "no cache check shown for a folder: {stderr}");
    assert!(view.has(path, &bytes), "{path} is on the server once status --wait returned");
    assert!(dev.status_json()["cache_check"].is_null(), "{}", dev.status_json());
    dev.stop();
}
