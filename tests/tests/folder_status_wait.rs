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
