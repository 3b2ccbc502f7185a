//! Conflicts follow core::decide: mine stays as NAME, theirs appears as NAME.conflict;
//! unlink the copy to keep mine, rename it over NAME to take theirs.

mod common;

use common::{DEADLINE, Device, wait_until};
use savesync_fs::fake_remote::FakeRemote;

/// Both sides change the same save while this device is offline.
fn make_conflict(remote: &FakeRemote, dev: &Device) {
    dev.write_file("snes/ct.srm", b"base");
    wait_until(DEADLINE, "base uploaded", || remote.head("snes/ct.srm"));
    wait_until(DEADLINE, "queue drained", || (dev.pending() == 0).then_some(()));
    remote.set_offline(true);
    dev.write_file("snes/ct.srm", b"mine");
    remote.set_offline(false);
    remote.put("snes/ct.srm", b"theirs");
    wait_until(DEADLINE, "conflict copy", || {
        dev.is_conflict_copy("snes/ct.srm.conflict").then_some(())
    });
}

#[test]
fn a_conflict_keeps_my_bytes_and_shows_theirs_as_a_read_only_copy() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    make_conflict(&remote, &dev);
    assert_eq!(dev.read_file("snes/ct.srm").unwrap(), b"mine");
    assert_eq!(dev.read_file("snes/ct.srm.conflict").unwrap(), b"theirs");
    let copy = dev.lookup("snes/ct.srm.conflict").unwrap();
    assert_eq!(dev.fs.open(copy.ino, libc::O_WRONLY).unwrap_err().errno(), libc::EACCES);
    assert_eq!(remote.content("snes/ct.srm").as_deref(), Some(&b"theirs"[..]));
    assert_eq!(dev.fs.state().conflicts().unwrap().len(), 1);
}

#[test]
fn deleting_the_conflict_copy_uploads_mine_on_top_of_theirs() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    make_conflict(&remote, &dev);
    dev.unlink("snes/ct.srm.conflict").unwrap();
    wait_until(DEADLINE, "mine uploaded", || {
        (remote.content("snes/ct.srm").as_deref() == Some(&b"mine"[..])).then_some(())
    });
    assert!(!dev.exists("snes/ct.srm.conflict"));
    assert!(dev.fs.state().conflicts().unwrap().is_empty());
}

#[test]
fn renaming_the_conflict_copy_over_the_save_takes_theirs_without_an_upload() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    make_conflict(&remote, &dev);
    let uploads = remote.upload_count();
    let parent = dev.lookup("snes").unwrap().ino;
    dev.fs.rename(parent, "ct.srm.conflict", parent, "ct.srm", Default::default()).unwrap();
    assert_eq!(dev.read_file("snes/ct.srm").unwrap(), b"theirs");
    assert!(!dev.exists("snes/ct.srm.conflict"));
    wait_until(DEADLINE, "queue drained", || (dev.pending() == 0).then_some(()));
    assert_eq!(remote.upload_count(), uploads);
    assert_eq!(remote.content("snes/ct.srm").as_deref(), Some(&b"theirs"[..]));
    // The losing bytes stay in the server's history.
    assert_eq!(remote.conflict_versions("snes/ct.srm"), vec![bytes::Bytes::from_static(b"mine")]);
}

#[test]
fn a_lost_upload_race_becomes_a_conflict_and_the_loser_stays_in_server_history() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    dev.write_file("gb/tetris.sav", b"base");
    wait_until(DEADLINE, "base", || remote.head("gb/tetris.sav"));
    wait_until(DEADLINE, "queue drained", || (dev.pending() == 0).then_some(()));
    // The other device commits while this one is offline and cannot hear the feed.
    remote.set_offline(true);
    dev.write_file("gb/tetris.sav", b"mine");
    remote.set_offline(false);
    remote.put("gb/tetris.sav", b"theirs");
    wait_until(DEADLINE, "conflict copy", || {
        dev.is_conflict_copy("gb/tetris.sav.conflict").then_some(())
    });
    assert_eq!(dev.read_file("gb/tetris.sav").unwrap(), b"mine");
    assert_eq!(remote.conflict_versions("gb/tetris.sav"), vec![bytes::Bytes::from_static(b"mine")]);
}

#[test]
fn conflict_names_cannot_be_created_by_users() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    let err = dev.fs.create(1, "x.conflict", 0o644, libc::O_WRONLY, 0, 0).unwrap_err();
    assert_eq!(err.errno(), libc::EINVAL);
    let long = "a".repeat(300);
    assert_eq!(dev.fs.create(1, &long, 0o644, 0, 0, 0).unwrap_err().errno(), libc::ENAMETOOLONG);
    assert_eq!(dev.fs.mkdir(1, "d.conflict", 0o755, 0, 0).unwrap_err().errno(), libc::EINVAL);
}

/// The engine plans on a snapshot. If it decided "both sides converged, drop the copy"
/// just before the user renamed the copy over the save, carrying out that stale plan must
/// not remove the save the rename put in place (it once did, about 1 run in 10).
#[test]
fn a_stale_drop_of_the_conflict_copy_after_a_take_theirs_rename_leaves_the_save() {
    use savesync_fs::local::LocalStore;
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    make_conflict(&remote, &dev);
    let stale = dev.fs.state().conflicts().unwrap().into_iter().next().unwrap();
    let parent = dev.lookup("snes").unwrap().ino;
    dev.fs.rename(parent, "ct.srm.conflict", parent, "ct.srm", Default::default()).unwrap();
    let path = savesync_core::SavePath::parse("snes/ct.srm").unwrap();
    dev.fs.tree().drop_conflict(&path, &stale).unwrap();
    assert_eq!(dev.read_file("snes/ct.srm").unwrap(), b"theirs");
    assert!(!dev.exists("snes/ct.srm.conflict"));
}

/// The other order: the engine dropped the copy first, then the user's rename arrives.
/// The rename fails with ENOENT and the save is untouched.
#[test]
fn a_take_theirs_rename_after_the_copy_was_dropped_fails_and_leaves_the_save() {
    use savesync_fs::local::LocalStore;
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    make_conflict(&remote, &dev);
    let row = dev.fs.state().conflicts().unwrap().into_iter().next().unwrap();
    let parent = dev.lookup("snes").unwrap().ino;
    let copy = dev.lookup("snes/ct.srm.conflict").unwrap().ino;
    let path = savesync_core::SavePath::parse("snes/ct.srm").unwrap();
    dev.fs.tree().drop_conflict(&path, &row).unwrap();
    let err = dev.fs.resolve_keep_theirs(copy, parent, "ct.srm").unwrap_err();
    assert_eq!(err.errno(), libc::ENOENT);
    assert_eq!(dev.read_file("snes/ct.srm").unwrap(), b"mine");
}

/// The server committed an upload but its answer never arrived (a crash or a dropped
/// connection right after the commit), and the save changed again meanwhile. The head is
/// this device's own commit, so the new bytes go on top of it: no conflict with itself.
#[test]
fn a_commit_whose_answer_was_lost_is_adopted_not_shown_as_a_conflict() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    remote.drop_link_after_next_commit();
    dev.write_file("gb/zelda.sav", b"first");
    wait_until(DEADLINE, "first committed", || {
        (remote.content("gb/zelda.sav").as_deref() == Some(&b"first"[..])).then_some(())
    });
    // Changed again before the device could hear about its commit.
    dev.write_file("gb/zelda.sav", b"second");
    remote.set_offline(false);
    wait_until(DEADLINE, "second committed", || {
        (remote.content("gb/zelda.sav").as_deref() == Some(&b"second"[..])).then_some(())
    });
    wait_until(DEADLINE, "queue drained", || (dev.pending() == 0).then_some(()));
    assert!(!dev.exists("gb/zelda.sav.conflict"), "no conflict with its own commit");
    assert!(dev.fs.state().conflicts().unwrap().is_empty());
    // A retry on the stale base may have been refused on the way (the server then keeps
    // it in history); what matters is that the device never saw a conflict of its own.
    assert!(dev.fs.state().uploads_in_flight(&"gb/zelda.sav".parse().unwrap()).unwrap().is_empty());
}
