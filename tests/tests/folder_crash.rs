//! kill -9 of the synced-folder daemon in the middle of a burst of 200 saves: after a
//! restart, every closed save is on the server with its final bytes (0 lost), whether it
//! was written before the kill, while the daemon was dead, or after the restart.

use savesync_tests::{FolderDevice, RemoteView, TestServer, poll_until, save_bytes};
use std::collections::BTreeMap;
use std::time::Duration;

const USER: &str = "kai";
const SAVES: usize = 200;
const DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn kill_9_mid_burst_loses_no_closed_save() {
    let server = TestServer::start_blocking();
    let view = RemoteView::new(&server, USER);
    let mut b = FolderDevice::pair(&server, USER, "handheld");
    b.start();
    std::fs::create_dir_all(b.path("burst")).unwrap();
    let mut want = BTreeMap::new();
    for i in 0..SAVES {
        let rel = format!("burst/save-{i:03}.srm");
        let bytes = save_bytes(1000 + i as u64, 512 + i);
        std::fs::write(b.path(&rel), &bytes).unwrap();
        want.insert(rel, savesync_core::ContentHash::of(&bytes));
        if i == SAVES / 2 {
            // Mid-burst: some saves are uploaded, some queued, some not even seen yet.
            b.kill9();
        }
    }
    // Rewrite a few that may already be on the server, with the daemon dead.
    for i in (0..SAVES).step_by(40) {
        let rel = format!("burst/save-{i:03}.srm");
        let bytes = save_bytes(5000 + i as u64, 700);
        std::fs::write(b.path(&rel), &bytes).unwrap();
        want.insert(rel, savesync_core::ContentHash::of(&bytes));
    }
    b.start();
    let done = poll_until(DEADLINE, || (view.try_saves()? == want).then_some(()));
    let have = view.saves();
    let lost: Vec<&String> = want.keys().filter(|p| have.get(*p) != want.get(*p)).collect();
    assert!(
        done.is_some() && lost.is_empty(),
        "{} of {SAVES} closed saves lost after kill -9: {lost:?}",
        lost.len()
    );
    println!("kill -9 mid-burst: 0 of {SAVES} closed saves lost");
    b.stop();
}
