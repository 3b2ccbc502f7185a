//! A conflict made while device B was offline, seen and resolved on B with ordinary file
//! operations. B keeps its bytes as `NAME` and shows A's as `NAME.conflict`:
//! deleting `NAME.conflict` makes B's version win, renaming it over `NAME` makes A's win.
//! Either way the losing bytes stay in the server's history.

use savesync_tests::{
    Device, DevicePair, RemoteView, TestServer, dir_names, poll_until, save_bytes, wait_for_absent,
    wait_for_bytes,
};
use std::time::Duration;

const USER: &str = "carol";
const SAVE: &str = "snes/Secret of Mana.srm";
const CONFLICT: &str = "snes/Secret of Mana.srm.conflict";
/// Reconnects after a server restart may go through a backoff: allow for it.
const SYNC_DEADLINE: Duration = Duration::from_secs(20);

struct Conflicted {
    a: Device,
    b: Device,
    view: RemoteView,
    _server: TestServer,
    a_bytes: Vec<u8>,
    b_bytes: Vec<u8>,
}

/// Both devices agree on v0; with the server down B changes the save and unmounts; with
/// the server back A changes it too; B mounts again and must show the conflict.
fn conflict_made_while_b_was_offline() -> Option<Conflicted> {
    let DevicePair { a, mut b, view, mut server } = DevicePair::start(USER)?;
    std::fs::create_dir_all(a.path("snes")).unwrap();
    let v0 = save_bytes(100, 8192);
    std::fs::write(a.path(SAVE), &v0).unwrap();
    wait_for_bytes(&b.path(SAVE), &v0, SYNC_DEADLINE);

    server.stop_blocking();
    let b_bytes = save_bytes(101, 8192);
    std::fs::write(b.path(SAVE), &b_bytes).unwrap();
    b.unmount();

    server.restart_blocking();
    let a_bytes = save_bytes(102, 8192);
    std::fs::write(a.path(SAVE), &a_bytes).unwrap();
    let reached = poll_until(SYNC_DEADLINE, || view.has(SAVE, &a_bytes).then_some(()));
    assert!(reached.is_some(), "A's change never reached the restarted server");

    b.mount();
    wait_for_bytes(&b.path(CONFLICT), &a_bytes, SYNC_DEADLINE);
    assert_eq!(std::fs::read(b.path(SAVE)).unwrap(), b_bytes, "B keeps its own bytes as NAME");
    let conflicts: Vec<String> = dir_names(&b.path("snes"))
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".conflict"))
        .collect();
    assert_eq!(conflicts, [CONFLICT.trim_start_matches("snes/")], "exactly one .conflict");
    assert!(view.has(SAVE, &a_bytes), "nothing changed on the server before resolving");
    Some(Conflicted { a, b, view, _server: server, a_bytes, b_bytes })
}

#[test]
fn deleting_the_conflict_copy_keeps_bs_version_and_a_stays_in_history() {
    let Some(t) = conflict_made_while_b_was_offline() else { return };
    std::fs::remove_file(t.b.path(CONFLICT)).unwrap();
    let won = poll_until(SYNC_DEADLINE, || t.view.has(SAVE, &t.b_bytes).then_some(()));
    assert!(won.is_some(), "B's version did not become the server head after deleting .conflict");
    assert!(!t.b.path(CONFLICT).exists(), "the .conflict copy stays gone on B");
    assert_eq!(std::fs::read(t.b.path(SAVE)).unwrap(), t.b_bytes);
    assert!(t.view.history_has(SAVE, &t.a_bytes), "A's losing version is in server history");
    // A follows: it now reads B's winning bytes.
    wait_for_bytes(&t.a.path(SAVE), &t.b_bytes, SYNC_DEADLINE);
}

#[test]
fn renaming_the_conflict_copy_over_the_save_takes_as_version_and_b_stays_in_history() {
    let Some(t) = conflict_made_while_b_was_offline() else { return };
    std::fs::rename(t.b.path(CONFLICT), t.b.path(SAVE)).unwrap();
    assert_eq!(std::fs::read(t.b.path(SAVE)).unwrap(), t.a_bytes, "B now reads A's bytes");
    wait_for_absent(&t.b.path(CONFLICT), SYNC_DEADLINE);
    // The server head stays (or becomes again) A's bytes, and B's losing bytes are kept.
    let settled = poll_until(SYNC_DEADLINE, || {
        (t.view.has(SAVE, &t.a_bytes) && t.view.history_has(SAVE, &t.b_bytes)).then_some(())
    });
    assert!(t.view.has(SAVE, &t.a_bytes), "the server head is A's version");
    assert!(
        settled.is_some(),
        "B's losing version never appeared in the server history of {SAVE}: {:?}",
        t.view.history(SAVE)
    );
    assert_eq!(std::fs::read(t.a.path(SAVE)).unwrap(), t.a_bytes, "A still reads its bytes");
}

#[test]
fn a_newer_version_from_a_replaces_the_single_conflict_copy_on_b() {
    let Some(t) = conflict_made_while_b_was_offline() else { return };
    let newer = save_bytes(103, 4096);
    std::fs::write(t.a.path(SAVE), &newer).unwrap();
    wait_for_bytes(&t.b.path(CONFLICT), &newer, SYNC_DEADLINE);
    assert_eq!(std::fs::read(t.b.path(SAVE)).unwrap(), t.b_bytes, "B still keeps its bytes");
    let conflicts: Vec<String> = dir_names(&t.b.path("snes"))
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".conflict"))
        .collect();
    assert_eq!(conflicts.len(), 1, "at most one .conflict per save: {conflicts:?}");
}

#[test]
fn savesync_conflicts_lists_the_conflict_and_savesync_resolve_keep_mine_uploads_bs_version() {
    let Some(t) = conflict_made_while_b_was_offline() else { return };
    let counted = poll_until(SYNC_DEADLINE, || (t.b.status_json()["conflicts"] == 1).then_some(()));
    assert!(counted.is_some(), "status counts one conflict: {}", t.b.status_json());
    let out = t.b.run_cli(&["conflicts", "--json"]);
    assert!(out.status.success(), "savesync conflicts --json: {out:?}");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = listed.to_string();
    assert!(text.contains(SAVE), "savesync conflicts names {SAVE}: {text}");

    let out = t.b.run_cli(&["resolve", SAVE, "--keep", "mine"]);
    assert!(out.status.success(), "savesync resolve --keep mine: {out:?}");
    let won = poll_until(SYNC_DEADLINE, || t.view.has(SAVE, &t.b_bytes).then_some(()));
    assert!(won.is_some(), "B's version became the server head after resolve --keep mine");
    wait_for_absent(&t.b.path(CONFLICT), SYNC_DEADLINE);
    assert!(t.view.history_has(SAVE, &t.a_bytes), "A's losing version is in server history");
    let cleared = poll_until(SYNC_DEADLINE, || (t.b.status_json()["conflicts"] == 0).then_some(()));
    assert!(cleared.is_some(), "status shows no conflict after resolving");
}

#[test]
fn savesync_resolve_on_an_unmounted_device_keeps_its_choice_and_the_next_mount_starts_clean() {
    let Some(mut t) = conflict_made_while_b_was_offline() else { return };
    t.b.unmount();
    let data_dir = t.b.data_home().join("savesync").join("default");
    assert!(data_dir.join("state.db").exists(), "B's profile data dir is {}", data_dir.display());

    let out = t.b.run_cli(&["resolve", SAVE, "--keep", "mine"]);
    assert!(out.status.success(), "savesync resolve --keep mine, unmounted: {out:?}");
    // Resolving without a mount ends like a mount's clean stop: the next mount must not
    // take it for a crash (and check every cached save again).
    assert!(!data_dir.join("unclean").exists(), "an offline resolve leaves no unclean marker");

    t.b.mount();
    let won = poll_until(SYNC_DEADLINE, || t.view.has(SAVE, &t.b_bytes).then_some(()));
    assert!(won.is_some(), "B's kept version reaches the server once mounted again");
    assert!(!t.b.path(CONFLICT).exists(), "no .conflict after resolving");
    let last_run = t.b.last_mount_log();
    assert!(!last_run.contains("did not stop cleanly"), "the mount after resolve:\n{last_run}");
}
