//! A device in conflict keeps backing up. A and B both change a save during a server
//! outage; B ends up showing A's version as `NAME.conflict` and keeping its own as `NAME`.
//! Every further version B closes while in conflict reaches the server's history as a
//! `conflict` version from B, once, and the head stays A's. Resolving works as before,
//! both ways.

use savesync_core::ContentHash;
use savesync_core::wire::VersionKind;
use savesync_tests::{
    Device, DevicePair, RemoteView, TestServer, poll_until, save_bytes, wait_for_absent,
    wait_for_bytes, wait_until,
};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

const USER: &str = "erin";
const SAVE: &str = "gba/Minish Cap.sav";
const CONFLICT: &str = "gba/Minish Cap.sav.conflict";
/// Reconnects after a server restart may go through a backoff: allow for it.
const SYNC_DEADLINE: Duration = Duration::from_secs(20);
const B_NAME: &str = "desktop-b";

struct InConflict {
    a: Device,
    b: Device,
    view: RemoteView,
    _server: TestServer,
    a_bytes: Vec<u8>,
    /// What B closed while in conflict, oldest first (the first is from the outage).
    b_versions: Vec<Vec<u8>>,
}

/// Write, fsync and close, as an emulator saving.
fn save(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
}

/// How many `conflict` versions from B in the server's history hold `bytes`.
fn conflict_copies_from_b(view: &RemoteView, bytes: &[u8]) -> usize {
    let hash = ContentHash::of(bytes);
    view.history(SAVE)
        .versions
        .iter()
        .filter(|v| v.kind == VersionKind::Conflict && v.hash == Some(hash))
        .filter(|v| v.device.as_deref() == Some(B_NAME))
        .count()
}

/// Both devices change the save while the server is down. B is unmounted before the server
/// returns so that A's version deterministically becomes the head; B then mounts, sees the
/// conflict, and writes three more versions while in conflict.
fn b_in_conflict_writes_three_more_versions() -> Option<InConflict> {
    let DevicePair { a, mut b, view, mut server } =
        DevicePair::start_named(USER, "handheld-a", B_NAME)?;
    std::fs::create_dir_all(a.path("gba")).unwrap();
    let v0 = save_bytes(200, 8192);
    save(&a.path(SAVE), &v0);
    wait_for_bytes(&b.path(SAVE), &v0, SYNC_DEADLINE);

    server.stop_blocking();
    let a_bytes = save_bytes(201, 8192);
    save(&a.path(SAVE), &a_bytes);
    let b_first = save_bytes(202, 8192);
    save(&b.path(SAVE), &b_first);
    b.unmount();
    server.restart_blocking();
    wait_until(SYNC_DEADLINE, "A's outage version becomes the head", || {
        view.has(SAVE, &a_bytes).then_some(())
    });
    let head_before = view.head(SAVE).expect("head");

    b.mount();
    wait_for_bytes(&b.path(CONFLICT), &a_bytes, SYNC_DEADLINE);
    let mut b_versions = vec![b_first];
    for seed in 203..206 {
        let bytes = save_bytes(seed, 4096 + seed as usize);
        save(&b.path(SAVE), &bytes);
        wait_until(SYNC_DEADLINE, "B's new version is kept as a conflict version", || {
            (conflict_copies_from_b(&view, &bytes) > 0).then_some(())
        });
        b_versions.push(bytes);
    }
    for (i, bytes) in b_versions.iter().enumerate() {
        assert_eq!(conflict_copies_from_b(&view, bytes), 1, "B's version {i} is kept exactly once");
    }
    assert_eq!(view.head(SAVE), Some(head_before), "the head is untouched");
    assert_eq!(std::fs::read(b.path(CONFLICT)).unwrap(), a_bytes, "the copy still shows A's");
    assert_eq!(&std::fs::read(b.path(SAVE)).unwrap(), b_versions.last().unwrap());
    Some(InConflict { a, b, view, _server: server, a_bytes, b_versions })
}

#[test]
fn versions_written_in_conflict_are_backed_up_and_deleting_the_copy_keeps_the_newest() {
    let Some(t) = b_in_conflict_writes_three_more_versions() else { return };
    std::fs::remove_file(t.b.path(CONFLICT)).unwrap();
    let newest = t.b_versions.last().unwrap();
    wait_until(SYNC_DEADLINE, "B's newest version becomes the head", || {
        t.view.has(SAVE, newest).then_some(())
    });
    wait_for_bytes(&t.a.path(SAVE), newest, SYNC_DEADLINE);
    assert!(t.view.history_has(SAVE, &t.a_bytes), "A's version stays in history");
    for bytes in &t.b_versions {
        assert!(t.view.history_has(SAVE, bytes), "each of B's versions stays in history");
    }
    assert!(!t.b.path(CONFLICT).exists());
}

#[test]
fn versions_written_in_conflict_are_backed_up_and_renaming_the_copy_takes_theirs() {
    let Some(t) = b_in_conflict_writes_three_more_versions() else { return };
    std::fs::rename(t.b.path(CONFLICT), t.b.path(SAVE)).unwrap();
    assert_eq!(std::fs::read(t.b.path(SAVE)).unwrap(), t.a_bytes, "B now reads A's bytes");
    wait_for_absent(&t.b.path(CONFLICT), SYNC_DEADLINE);
    assert!(t.view.has(SAVE, &t.a_bytes), "the head stays A's version");
    for bytes in &t.b_versions {
        assert!(t.view.history_has(SAVE, bytes), "each of B's versions stays in history");
    }
    // Out of conflict, B syncs normally again: its next version is the new head.
    let next = save_bytes(210, 3000);
    save(&t.b.path(SAVE), &next);
    let reached = poll_until(SYNC_DEADLINE, || t.view.has(SAVE, &next).then_some(()));
    assert!(reached.is_some(), "B's next version became the head: {:?}", t.view.history(SAVE));
    wait_for_bytes(&t.a.path(SAVE), &next, SYNC_DEADLINE);
}
