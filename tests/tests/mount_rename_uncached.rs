//! Renaming a directory whose saves were never downloaded (too big to prefetch) downloads
//! nothing while the kernel holds its rename lock: the rename works even with the server
//! down, and once the server is back the saves move there with their bytes intact.

use savesync_core::{Rev, SavePath};
use savesync_server::RetentionConfig;
use savesync_tests::{
    Device, RemoteView, TestServer, dir_names, require_fuse, save_bytes, wait_until,
};
use std::time::Duration;

const USER: &str = "rory";
const SYNC_DEADLINE: Duration = Duration::from_secs(30);
const SAVES: u64 = 6;
/// Bigger than the prefetch limit the mount runs with, so the bytes stay on the server.
const SAVE_LEN: usize = 64 * 1024;

fn bytes(i: u64) -> Vec<u8> {
    save_bytes(4000 + i, SAVE_LEN)
}

#[test]
fn renaming_a_directory_of_saves_never_downloaded_downloads_nothing() {
    if !require_fuse() {
        return;
    }
    rename_uncached_saves_offline(TestServer::start_blocking(), "ps1");
}

/// The server keeps one version per save and nothing by age, so the tombstone that deletes
/// an old path prunes the version the moved save's bytes are: they must be fetched first.
/// `snes/` sorts after `psx/`, so the deletes of the old paths are queued first.
#[test]
fn a_moved_save_keeps_its_bytes_when_the_server_prunes_every_old_version() {
    if !require_fuse() {
        return;
    }
    let server = TestServer::start_with_config(|c| {
        c.retention = RetentionConfig { keep_versions: 1, keep_days: 0 };
    });
    rename_uncached_saves_offline(server, "snes");
}

/// Saves on the server, listed on a device that never downloaded them, renamed from `psx/`
/// to `to/` while the server is down: once it is back, they are there with their bytes.
fn rename_uncached_saves_offline(mut server: TestServer, to: &str) {
    let view = RemoteView::new(&server, USER);
    for i in 0..SAVES {
        let path = SavePath::parse(&format!("psx/card-{i}.mcd")).unwrap();
        view.block_on(view.client().upload(&path, Rev::NONE, bytes(i).into())).unwrap();
    }
    let mut a = Device::pair(&server, USER, "handheld-m");
    a.mount_with_args(&["--prefetch-max-bytes", "1024"]);
    wait_until(SYNC_DEADLINE, "the server's saves listed", || {
        (dir_names(&a.path("psx")).ok()?.len() as u64 == SAVES).then_some(())
    });
    wait_until(SYNC_DEADLINE, "the start-up sync done", || {
        (a.status_json()["pending"] == serde_json::json!(0)).then_some(())
    });

    // With the server down, a rename that had to download first could only fail.
    server.stop_blocking();
    std::fs::rename(a.path("psx"), a.path(to)).expect("rename without downloading");
    assert_eq!(dir_names(&a.path(to)).unwrap().len() as u64, SAVES);

    server.restart_blocking();
    wait_until(SYNC_DEADLINE, "the saves moved on the server", || {
        let saves = view.try_saves()?;
        let moved = (0..SAVES).all(|i| saves.contains_key(&format!("{to}/card-{i}.mcd")));
        let gone = saves.keys().all(|p| !p.starts_with("psx/"));
        (moved && gone).then_some(())
    });
    for i in 0..SAVES {
        assert!(view.has(&format!("{to}/card-{i}.mcd"), &bytes(i)), "bytes of card-{i} intact");
    }
    assert_eq!(std::fs::read(a.path(&format!("{to}/card-0.mcd"))).unwrap(), bytes(0));
}
