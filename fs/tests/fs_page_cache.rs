//! The open reply's "keep the page cache" hint: kept for bytes that went through the kernel
//! (local writes), dropped once for bytes replaced from the server. Warm reads depend on
//! the first, correctness of remote changes on the second.

mod common;

use common::{DEADLINE, Device, wait_until};
use savesync_fs::fake_remote::FakeRemote;

fn open_hint(dev: &Device, path: &str) -> bool {
    let ino = dev.lookup(path).unwrap().ino;
    let (fh, keep) = dev.fs.open_with_cache_hint(ino, libc::O_RDONLY).unwrap();
    dev.fs.release(fh).unwrap();
    keep
}

#[test]
fn a_save_written_here_keeps_its_page_cache_and_a_remote_replacement_drops_it_once() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    wait_until(DEADLINE, "online", || dev.fs.is_online().then_some(()));

    dev.write_file("snes/mario.srm", b"written here");
    assert!(open_hint(&dev, "snes/mario.srm"), "first open after create keeps the cache");
    wait_until(DEADLINE, "uploaded", || {
        (remote.content("snes/mario.srm").as_deref() == Some(&b"written here"[..])).then_some(())
    });
    assert!(open_hint(&dev, "snes/mario.srm"), "an upload does not drop the cache");

    remote.put("snes/mario.srm", b"from another device");
    wait_until(DEADLINE, "remote bytes installed", || {
        (dev.read_file("snes/mario.srm").ok()? == b"from another device").then_some(())
    });
    // read_file's open consumed the one "drop" that the replacement asked for.
    assert!(open_hint(&dev, "snes/mario.srm"), "later opens keep the cache again");
}

#[test]
fn the_first_open_after_a_remote_replacement_drops_the_page_cache() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    wait_until(DEADLINE, "online", || dev.fs.is_online().then_some(()));
    dev.write_file("gba/pokemon.sav", b"v1");
    wait_until(DEADLINE, "uploaded", || {
        (remote.content("gba/pokemon.sav").as_deref() == Some(&b"v1"[..])).then_some(())
    });
    assert!(open_hint(&dev, "gba/pokemon.sav"));

    remote.put("gba/pokemon.sav", b"v2 from elsewhere");
    let ino = dev.lookup("gba/pokemon.sav").unwrap().ino;
    // Fresh on open: this open installs the new head before it returns, and must tell the
    // kernel that its cached pages of v1 are stale.
    let keep = wait_until(DEADLINE, "open sees v2", || {
        let (fh, keep) = dev.fs.open_with_cache_hint(ino, libc::O_RDONLY).unwrap();
        let bytes = dev.fs.read(fh, 0, 64).unwrap();
        dev.fs.release(fh).unwrap();
        (bytes == b"v2 from elsewhere").then_some(keep)
    });
    assert!(!keep, "the open that first serves the replaced bytes drops the page cache");
}
