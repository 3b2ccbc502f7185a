//! Offline start: the server is down when the synced-folder daemon starts; saves written
//! meanwhile are kept, and everything syncs both ways once the server is back.

use savesync_tests::{
    FolderDevice, RemoteView, TestServer, save_bytes, wait_for_bytes, wait_until,
};
use std::time::Duration;

const USER: &str = "olly";
const DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn a_folder_started_offline_catches_up_when_the_server_returns() {
    let mut server = TestServer::start_blocking();
    let view = RemoteView::new(&server, USER);
    let mut b = FolderDevice::pair(&server, USER, "handheld");
    // A save from another device the folder has never seen.
    let remote = save_bytes(1, 4096);
    let path = savesync_core::SavePath::parse("n64/mario.eep").unwrap();
    view.block_on(view.client().upload(&path, savesync_core::Rev::NONE, remote.clone().into()))
        .unwrap();
    // A save in the folder from before the first start.
    let before = save_bytes(2, 1000);
    std::fs::create_dir_all(b.path("gb")).unwrap();
    std::fs::write(b.path("gb/before.sav"), &before).unwrap();
    server.stop_blocking();

    b.start();
    let st = b.status_json();
    assert_eq!(st["online"], false, "the server is down: {st}");
    let during = save_bytes(3, 2000);
    std::fs::write(b.path("gb/during.sav"), &during).unwrap();
    wait_until(DEADLINE, "the offline edits queued", || {
        (b.status_json()["pending"].as_u64()? >= 2).then_some(())
    });

    server.restart_blocking();
    wait_until(DEADLINE, "the folder's saves on the server", || {
        (view.has("gb/before.sav", &before) && view.has("gb/during.sav", &during)).then_some(())
    });
    wait_for_bytes(&b.path("n64/mario.eep"), &remote, DEADLINE);
    wait_until(DEADLINE, "online and drained", || {
        let st = b.status_json();
        (st["online"] == true && st["pending"] == 0).then_some(())
    });
    b.stop();
}
