//! A conflict made during a server outage (a mount on A and a synced folder on B both
//! edit while the server is down), shown in the folder as a real `NAME.conflict` file and
//! resolved from the folder every way: deleting the copy (keep mine), renaming it over
//! the save (take theirs), and `savesync resolve --keep mine|theirs`, once with the
//! daemon stopped (the next start applies it). Nothing is ever overwritten.

use savesync_tests::{
    Device, FolderDevice, RemoteView, TestServer, poll_until, require_fuse, save_bytes,
    wait_for_absent, wait_for_bytes, wait_until,
};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const USER: &str = "cleo";
const DEADLINE: Duration = Duration::from_secs(30);
const SAVES: [&str; 4] =
    ["gba/delete-copy.sav", "gba/rename-over.sav", "gba/cli-mine.sav", "gba/cli-theirs.sav"];

fn copy_of(p: &str) -> String {
    format!("{p}.conflict")
}

#[test]
fn an_outage_conflict_is_shown_as_a_file_and_resolved_from_the_folder_every_way() {
    if !require_fuse() {
        return;
    }
    let mut server = TestServer::start_blocking();
    let view = RemoteView::new(&server, USER);
    let mut a = Device::pair(&server, USER, "desktop-a");
    a.mount();
    let mut b = FolderDevice::pair(&server, USER, "handheld-b");
    b.start();
    std::fs::create_dir_all(a.path("gba")).unwrap();
    let base: Vec<Vec<u8>> = (0..4).map(|i| save_bytes(10 + i, 2048)).collect();
    for (p, bytes) in SAVES.iter().zip(&base) {
        std::fs::write(a.path(p), bytes).unwrap();
    }
    for (p, bytes) in SAVES.iter().zip(&base) {
        wait_for_bytes(&b.path(p), bytes, DEADLINE);
    }

    // The outage: both sides edit every save.
    server.stop_blocking();
    let theirs: Vec<Vec<u8>> = (0..4).map(|i| save_bytes(20 + i, 3000)).collect();
    let mine: Vec<Vec<u8>> = (0..4).map(|i| save_bytes(30 + i, 3100)).collect();
    for i in 0..4 {
        std::fs::write(a.path(SAVES[i]), &theirs[i]).unwrap();
        std::fs::write(b.path(SAVES[i]), &mine[i]).unwrap();
    }
    // B's daemon goes down with its edits queued; A reaches the server first once it is
    // back, so the conflict lands on B deterministically.
    let quiet = poll_until(Duration::from_secs(5), || {
        (b.status_json()["pending"].as_u64()? >= 4).then_some(())
    });
    assert!(quiet.is_some(), "B queued its four offline edits: {}", b.status_json());
    b.stop();
    server.restart_blocking();
    for i in 0..4 {
        wait_until(DEADLINE, "A's outage edits on the server", || {
            view.has(SAVES[i], &theirs[i]).then_some(())
        });
    }
    b.start();
    for i in 0..4 {
        wait_for_bytes(&b.path(&copy_of(SAVES[i])), &theirs[i], DEADLINE);
        assert_eq!(std::fs::read(b.path(SAVES[i])).unwrap(), mine[i], "B's bytes are kept");
        let mode = std::fs::metadata(b.path(&copy_of(SAVES[i]))).unwrap().permissions().mode();
        assert_eq!(mode & 0o222, 0, "a conflict copy is read-only");
        assert!(view.has(SAVES[i], &theirs[i]), "the server head is untouched by a conflict");
    }
    let n = b.status_json()["conflicts"].as_u64();
    assert_eq!(n, Some(4), "status counts four conflicts");

    // Keep mine by deleting the copy; take theirs by renaming it over the save.
    std::fs::remove_file(b.path(&copy_of(SAVES[0]))).unwrap();
    std::fs::rename(b.path(&copy_of(SAVES[1])), b.path(SAVES[1])).unwrap();
    // Keep mine through the CLI while the daemon runs.
    let out = b.run_cli(&["resolve", SAVES[2], "--keep", "mine"]);
    assert!(out.status.success(), "resolve --keep mine: {out:?}");
    wait_until(DEADLINE, "keep-mine resolutions on the server", || {
        (view.has(SAVES[0], &mine[0]) && view.has(SAVES[2], &mine[2])).then_some(())
    });
    wait_for_bytes(&a.path(SAVES[0]), &mine[0], DEADLINE);
    wait_for_bytes(&a.path(SAVES[2]), &mine[2], DEADLINE);
    wait_for_absent(&b.path(&copy_of(SAVES[2])), DEADLINE);
    // Take theirs: the folder keeps their bytes, writable, and the server keeps them.
    wait_until(DEADLINE, "three conflicts resolved", || {
        (b.status_json()["conflicts"].as_u64()? == 1).then_some(())
    });
    assert_eq!(std::fs::read(b.path(SAVES[1])).unwrap(), theirs[1]);
    let mode = std::fs::metadata(b.path(SAVES[1])).unwrap().permissions().mode();
    assert_ne!(mode & 0o200, 0, "a save taken from its conflict copy is writable again");
    assert!(view.has(SAVES[1], &theirs[1]));

    // Take theirs through the CLI with the daemon stopped: the next start applies it.
    b.stop();
    let out = b.run_cli(&["resolve", SAVES[3], "--keep", "theirs"]);
    assert!(out.status.success(), "resolve --keep theirs offline: {out:?}");
    assert_eq!(std::fs::read(b.path(SAVES[3])).unwrap(), theirs[3]);
    b.start();
    wait_until(DEADLINE, "no conflict left", || {
        (b.status_json()["conflicts"].as_u64()? == 0).then_some(())
    });
    // Everything converged: the losing versions are in the server's history.
    for i in 0..4 {
        let want = if i % 2 == 0 { &mine[i] } else { &theirs[i] };
        wait_until(DEADLINE, "the chosen versions everywhere", || {
            (view.has(SAVES[i], want) && std::fs::read(a.path(SAVES[i])).ok()? == *want)
                .then_some(())
        });
        assert_eq!(std::fs::read(b.path(SAVES[i])).unwrap(), *want, "{}", SAVES[i]);
        assert!(!b.path(&copy_of(SAVES[i])).exists());
    }
    assert!(view.history_has(SAVES[0], &theirs[0]), "A's losing version is kept in history");
    b.stop();
    a.unmount();
}
