//! A device in conflict keeps backing up: each new closed version of its save is offered on
//! its stale base, so the server keeps it as a `conflict` version (the head stays the other
//! side's). Each version is sent exactly once: the device remembers, across restarts, which
//! bytes it already backed up, and a refreshed conflict copy does not send them again.

mod common;

use bytes::Bytes;
use common::{DEADLINE, Device, wait_until};
use savesync_fs::fake_remote::FakeRemote;

const SAVE: &str = "snes/ct.srm";
const COPY: &str = "snes/ct.srm.conflict";

/// Both sides change the save while this device is offline; it then shows `theirs`.
fn make_conflict(remote: &FakeRemote, dev: &Device) {
    dev.write_file(SAVE, b"base");
    wait_until(DEADLINE, "base uploaded", || remote.head(SAVE));
    wait_until(DEADLINE, "queue drained", || (dev.pending() == 0).then_some(()));
    remote.set_offline(true);
    dev.write_file(SAVE, b"mine 1");
    remote.set_offline(false);
    remote.put(SAVE, b"theirs 1");
    wait_until(DEADLINE, "conflict copy", || dev.is_conflict_copy(COPY).then_some(()));
}

fn kept(remote: &FakeRemote) -> Vec<Bytes> {
    remote.conflict_versions(SAVE)
}

fn wait_for_copy(dev: &Device, bytes: &[u8]) {
    wait_until(DEADLINE, "the conflict copy shows the newest head", || {
        (dev.read_file(COPY).ok()? == bytes).then_some(())
    });
}

fn wait_kept(remote: &FakeRemote, bytes: &'static [u8]) {
    wait_until(DEADLINE, "a conflict version on the server", || {
        kept(remote).contains(&Bytes::from_static(bytes)).then_some(())
    });
}

#[test]
fn each_new_version_written_in_conflict_is_kept_on_the_server_exactly_once() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    make_conflict(&remote, &dev);
    wait_kept(&remote, b"mine 1");

    dev.write_file(SAVE, b"mine 2");
    wait_kept(&remote, b"mine 2");
    dev.write_file(SAVE, b"mine 3");
    wait_kept(&remote, b"mine 3");
    assert_eq!(remote.content(SAVE).as_deref(), Some(&b"theirs 1"[..]), "the head is untouched");
    assert_eq!(dev.read_file(SAVE).unwrap(), b"mine 3");

    // A newer head refreshes the copy; the unchanged local bytes are not sent again.
    remote.put(SAVE, b"theirs 2");
    wait_for_copy(&dev, b"theirs 2");
    assert_eq!(kept(&remote), [&b"mine 1"[..], b"mine 2", b"mine 3"]);

    // Nor after a restart (negotiate decides the save again, and so does the next head).
    dev.stop();
    let dev = Device::start(&remote, dir.path());
    remote.put(SAVE, b"theirs 3");
    wait_for_copy(&dev, b"theirs 3");
    wait_until(DEADLINE, "queue drained", || (dev.pending() == 0).then_some(()));
    assert_eq!(kept(&remote), [&b"mine 1"[..], b"mine 2", b"mine 3"]);

    dev.write_file(SAVE, b"mine 4");
    wait_kept(&remote, b"mine 4");
    assert_eq!(kept(&remote), [&b"mine 1"[..], b"mine 2", b"mine 3", b"mine 4"]);
    assert_eq!(remote.content(SAVE).as_deref(), Some(&b"theirs 3"[..]));

    // Resolution is unchanged: deleting the copy makes this device's newest bytes the head.
    dev.unlink(COPY).unwrap();
    wait_until(DEADLINE, "mine uploaded", || {
        (remote.content(SAVE).as_deref() == Some(&b"mine 4"[..])).then_some(())
    });
    assert!(dev.fs.state().conflicts().unwrap().is_empty());
}
