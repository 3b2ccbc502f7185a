//! Directories that only held saves from the server go away on this device when the
//! server deletes (or renames away) their last save; directories made here, or still
//! holding something, stay.

mod common;

use common::{DEADLINE, Device, wait_until};
use savesync_fs::fake_remote::FakeRemote;

fn started(remote: &FakeRemote, dir: &std::path::Path) -> Device {
    let dev = Device::start(remote, dir);
    wait_until(DEADLINE, "online", || dev.fs.is_online().then_some(()));
    dev
}

#[test]
fn directories_emptied_by_remote_deletes_disappear_up_the_tree() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = started(&remote, dir.path());
    remote.put("gba/pokemon/ruby.sav", b"ruby");
    remote.put("gba/pokemon/sapphire.sav", b"sapphire");
    wait_until(DEADLINE, "both saves listed", || {
        (dev.exists("gba/pokemon/ruby.sav") && dev.exists("gba/pokemon/sapphire.sav")).then_some(())
    });
    remote.remove("gba/pokemon/ruby.sav");
    wait_until(DEADLINE, "first delete", || (!dev.exists("gba/pokemon/ruby.sav")).then_some(()));
    assert!(dev.exists("gba/pokemon"), "a directory still holding a save stays");

    // A rename on another device is a delete of the old name plus a new save elsewhere.
    remote.remove("gba/pokemon/sapphire.sav");
    remote.put("gba/sapphire.sav", b"sapphire");
    wait_until(DEADLINE, "renamed save listed", || dev.exists("gba/sapphire.sav").then_some(()));
    wait_until(DEADLINE, "emptied directory removed", || {
        (!dev.exists("gba/pokemon")).then_some(())
    });
    assert!(dev.exists("gba"), "the parent still holds the renamed save");

    remote.remove("gba/sapphire.sav");
    wait_until(DEADLINE, "whole tree removed", || (!dev.exists("gba")).then_some(()));
}

#[test]
fn a_directory_made_on_this_device_stays_when_its_saves_are_deleted_remotely() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = started(&remote, dir.path());
    dev.write_file("snes/zelda.srm", b"local save in a local directory");
    wait_until(DEADLINE, "upload", || remote.head("snes/zelda.srm"));
    wait_until(DEADLINE, "queue drained", || (dev.pending() == 0).then_some(()));
    remote.remove("snes/zelda.srm");
    wait_until(DEADLINE, "remote delete applied", || (!dev.exists("snes/zelda.srm")).then_some(()));
    assert!(dev.exists("snes"), "a directory the user made here is never pruned");
}

#[test]
fn a_synced_directory_with_local_only_entries_stays() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = started(&remote, dir.path());
    remote.put("n64/mario.eep", b"eeprom");
    wait_until(DEADLINE, "save listed", || dev.exists("n64/mario.eep").then_some(()));
    // A temp name stays local: it is never on the server.
    dev.write_file("n64/mario.eep.tmp", b"half-written");
    remote.remove("n64/mario.eep");
    wait_until(DEADLINE, "remote delete applied", || (!dev.exists("n64/mario.eep")).then_some(()));
    assert!(dev.exists("n64/mario.eep.tmp"), "the local-only file is untouched");
    assert!(dev.exists("n64"), "a directory holding local-only entries stays");
}
