//! Deletes with tombstones in a synced folder, and "a change beats a delete" both ways:
//! the folder deletes a save the server changed meanwhile (the change comes back), and the
//! folder edits a save another device deleted meanwhile (the edit is uploaded over the
//! tombstone). The other device is the observer client; the folder's daemon is stopped
//! while both sides act, so the order is fixed.

use bytes::Bytes;
use savesync_core::SavePath;
use savesync_tests::{
    FolderDevice, RemoteView, TestServer, save_bytes, wait_for_bytes, wait_until,
};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(20);

#[test]
fn a_change_beats_a_delete_both_ways_in_a_folder() {
    let server = TestServer::start_blocking();
    let view = RemoteView::new(&server, "cvd");
    let mut b = FolderDevice::pair(&server, "cvd", "handheld");
    b.start();
    let (one, two) = (save_bytes(1, 500), save_bytes(2, 500));
    std::fs::write(b.path("one.srm"), &one).unwrap();
    std::fs::write(b.path("two.srm"), &two).unwrap();
    wait_until(DEADLINE, "both saves on the server", || {
        (view.has("one.srm", &one) && view.has("two.srm", &two)).then_some(())
    });
    b.stop();

    // one.srm: changed on the server, deleted in the folder.
    let newer = save_bytes(3, 600);
    let head = view.head("one.srm").unwrap();
    let p1 = SavePath::parse("one.srm").unwrap();
    view.block_on(view.client().upload(&p1, head.rev, Bytes::from(newer.clone()))).unwrap();
    std::fs::remove_file(b.path("one.srm")).unwrap();
    // two.srm: deleted on the server, changed in the folder.
    let head = view.head("two.srm").unwrap();
    let p2 = SavePath::parse("two.srm").unwrap();
    view.block_on(view.client().delete(&p2, head.rev)).unwrap();
    let edited = save_bytes(4, 700);
    std::fs::write(b.path("two.srm"), &edited).unwrap();

    b.start();
    wait_for_bytes(&b.path("one.srm"), &newer, DEADLINE);
    wait_until(DEADLINE, "the edit uploaded over the tombstone", || {
        view.has("two.srm", &edited).then_some(())
    });
    assert!(view.has("one.srm", &newer), "the server kept the change");

    // A plain delete in the folder becomes a tombstone; one on the server removes the file.
    std::fs::remove_file(b.path("two.srm")).unwrap();
    wait_until(DEADLINE, "a tombstone for two.srm", || {
        view.head("two.srm").filter(|h| h.deleted).map(|_| ())
    });
    let head = view.head("one.srm").unwrap();
    view.block_on(view.client().delete(&p1, head.rev)).unwrap();
    wait_until(DEADLINE, "one.srm removed from the folder", || {
        (!b.path("one.srm").exists()).then_some(())
    });
    assert_eq!(b.status_json()["conflicts"].as_u64(), Some(0));
    b.stop();
}
