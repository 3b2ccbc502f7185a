//! Concurrent edits that are not plain conflicts, end to end: a change made on one device
//! beats a delete made on the other (whichever happened "first"), and a change that is
//! still queued on B when A's newer version arrives becomes a conflict on B, not an
//! overwrite.

use savesync_tests::{
    Device, DevicePair, RemoteView, TestServer, poll_until, save_bytes, wait_for_absent,
    wait_for_bytes,
};
use std::time::Duration;

const USER: &str = "hank";
const SAVE: &str = "gbc/Pokemon Crystal.sav";
const SYNC_DEADLINE: Duration = Duration::from_secs(20);

struct Agreed {
    a: Device,
    b: Device,
    view: RemoteView,
    server: TestServer,
    v0: Vec<u8>,
}

/// A and B mounted, both holding v0 of SAVE.
fn both_agree_on_v0() -> Option<Agreed> {
    let DevicePair { a, b, view, server } = DevicePair::start(USER)?;
    std::fs::create_dir_all(a.path("gbc")).unwrap();
    let v0 = save_bytes(700, 32 * 1024);
    std::fs::write(a.path(SAVE), &v0).unwrap();
    wait_for_bytes(&b.path(SAVE), &v0, SYNC_DEADLINE);
    Some(Agreed { a, b, view, server, v0 })
}

#[test]
fn a_change_made_offline_on_b_beats_a_delete_made_on_a() {
    let Some(mut t) = both_agree_on_v0() else { return };
    t.server.stop_blocking();
    let b_bytes = save_bytes(701, 32 * 1024);
    std::fs::write(t.b.path(SAVE), &b_bytes).unwrap();
    t.b.unmount();
    t.server.restart_blocking();

    std::fs::remove_file(t.a.path(SAVE)).unwrap();
    let deleted = poll_until(SYNC_DEADLINE, || t.view.head(SAVE).filter(|h| h.deleted));
    assert!(deleted.is_some(), "A's delete reached the server");

    t.b.mount();
    let revived = poll_until(SYNC_DEADLINE, || t.view.has(SAVE, &b_bytes).then_some(()));
    assert!(revived.is_some(), "B's offline change was uploaded over the tombstone");
    assert!(!t.b.path(&format!("{SAVE}.conflict")).exists(), "change vs delete is no conflict");
    wait_for_bytes(&t.a.path(SAVE), &b_bytes, SYNC_DEADLINE);
}

#[test]
fn a_delete_made_offline_on_b_loses_to_a_change_made_on_a() {
    let Some(mut t) = both_agree_on_v0() else { return };
    t.server.stop_blocking();
    std::fs::remove_file(t.b.path(SAVE)).unwrap();
    t.b.unmount();
    t.server.restart_blocking();

    let a_bytes = save_bytes(702, 32 * 1024);
    std::fs::write(t.a.path(SAVE), &a_bytes).unwrap();
    let reached = poll_until(SYNC_DEADLINE, || t.view.has(SAVE, &a_bytes).then_some(()));
    assert!(reached.is_some(), "A's change reached the server");

    t.b.mount();
    wait_for_bytes(&t.b.path(SAVE), &a_bytes, SYNC_DEADLINE);
    assert!(t.view.has(SAVE, &a_bytes), "the server still holds A's change");
    assert!(t.view.history_has(SAVE, &t.v0), "v0 stays in history");
}

#[test]
fn a_newer_version_arriving_while_bs_change_is_still_queued_becomes_a_conflict_on_b() {
    let Some(mut t) = both_agree_on_v0() else { return };
    // Remount B with an upload debounce longer than the test, so its change stays queued.
    t.b.unmount();
    t.b.mount_with_args(&["--debounce-ms", "600000"]);
    // B follows the feed only after negotiating, so once a save new on A shows up on B,
    // B's negotiation is over: it cannot pick up the change below (and upload it at once,
    // as negotiation does) instead of leaving it queued.
    let marker = save_bytes(705, 1024);
    std::fs::write(t.a.path("gbc/marker.sav"), &marker).unwrap();
    wait_for_bytes(&t.b.path("gbc/marker.sav"), &marker, SYNC_DEADLINE);
    let b_bytes = save_bytes(703, 32 * 1024);
    std::fs::write(t.b.path(SAVE), &b_bytes).unwrap();

    let a_bytes = save_bytes(704, 32 * 1024);
    std::fs::write(t.a.path(SAVE), &a_bytes).unwrap();
    let conflict = t.b.path(&format!("{SAVE}.conflict"));
    wait_for_bytes(&conflict, &a_bytes, SYNC_DEADLINE);
    assert_eq!(std::fs::read(t.b.path(SAVE)).unwrap(), b_bytes, "B's queued bytes are kept");
    assert!(t.view.has(SAVE, &a_bytes), "A's version is the server head");

    // Back to the normal debounce (the conflict copy must survive the remount), then keep
    // B's version.
    t.b.unmount();
    t.b.mount();
    wait_for_bytes(&conflict, &a_bytes, SYNC_DEADLINE);
    std::fs::remove_file(&conflict).unwrap();
    let won = poll_until(SYNC_DEADLINE, || t.view.has(SAVE, &b_bytes).then_some(()));
    assert!(won.is_some(), "keeping B's version uploads it");
    wait_for_absent(&conflict, SYNC_DEADLINE);
    assert!(t.view.history_has(SAVE, &a_bytes), "A's losing version is in history");
}
