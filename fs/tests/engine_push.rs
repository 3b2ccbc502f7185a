//! Remote changes reach this device: prefetch, fresh on open, remote deletes, large saves.

mod common;

use common::{DEADLINE, Device, wait_until};
use savesync_fs::fake_remote::FakeRemote;
use std::time::Instant;

#[test]
fn a_save_written_on_another_device_appears_with_its_bytes_within_a_second() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    wait_until(DEADLINE, "online", || dev.fs.is_online().then_some(()));
    let t0 = Instant::now();
    remote.put("snes/zelda.srm", b"from device A");
    wait_until(DEADLINE, "prefetched bytes", || {
        (dev.fs.state().pending_count().unwrap() == 0
            && dev.read_file("snes/zelda.srm").ok()? == b"from device A")
            .then_some(())
    });
    let took = t0.elapsed();
    assert!(took.as_millis() < 1000, "propagation took {took:?}");
    remote.put("snes/zelda.srm", b"second version");
    wait_until(DEADLINE, "updated bytes", || {
        (dev.read_file("snes/zelda.srm").ok()? == b"second version").then_some(())
    });
}

#[test]
fn saves_already_on_the_server_are_listed_and_readable_after_start() {
    let remote = FakeRemote::new();
    remote.put("psx/card1.mcd", b"memory card");
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    let bytes = wait_until(DEADLINE, "negotiated download", || dev.read_file("psx/card1.mcd").ok());
    assert_eq!(bytes, b"memory card");
}

#[test]
fn a_large_save_is_listed_but_downloaded_only_when_opened() {
    let remote = FakeRemote::new();
    let big = vec![7u8; 4096];
    remote.put("ps2/big.ps2", &big);
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start_with(&remote, dir.path(), |c| c.prefetch_max_bytes = 1024);
    let attr = wait_until(DEADLINE, "entry listed", || dev.lookup("ps2/big.ps2").ok());
    assert_eq!(attr.size, 4096);
    wait_until(DEADLINE, "queue drained", || (dev.pending() == 0).then_some(()));
    assert!(!dev.data_dir.join("cache").join(attr.ino.to_string()).exists(), "not prefetched");
    assert_eq!(dev.read_file("ps2/big.ps2").unwrap(), big);
}

#[test]
fn a_remote_delete_removes_a_clean_local_save() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    dev.write_file("gba/old.sav", b"bye");
    wait_until(DEADLINE, "upload", || remote.head("gba/old.sav"));
    wait_until(DEADLINE, "queue drained", || (dev.pending() == 0).then_some(()));
    remote.remove("gba/old.sav");
    wait_until(DEADLINE, "local delete", || (!dev.exists("gba/old.sav")).then_some(()));
}

#[test]
fn open_downloads_a_newer_head_known_from_the_feed_before_returning() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start_with(&remote, dir.path(), |c| c.prefetch_max_bytes = 0);
    dev.write_file("nes/zelda.sav", b"v1");
    wait_until(DEADLINE, "upload", || remote.head("nes/zelda.sav"));
    remote.put("nes/zelda.sav", b"v2 from elsewhere");
    wait_until(DEADLINE, "size of the new head shown", || {
        (dev.lookup("nes/zelda.sav").ok()?.size == 17).then_some(())
    });
    assert_eq!(dev.read_file("nes/zelda.sav").unwrap(), b"v2 from elsewhere");
}

#[test]
fn offline_a_cached_save_is_served_never_an_error() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    {
        let dev = Device::start(&remote, dir.path());
        dev.write_file("snes/ff6.srm", b"cached bytes");
        wait_until(DEADLINE, "upload", || remote.head("snes/ff6.srm"));
        dev.stop();
    }
    remote.set_offline(true);
    let dev = Device::start(&remote, dir.path());
    assert_eq!(dev.read_file("snes/ff6.srm").unwrap(), b"cached bytes");
}

#[test]
fn a_slow_download_of_one_save_never_stalls_reads_of_another() {
    let remote = FakeRemote::new();
    remote.put("ps2/big.ps2", &[1u8; 4096]);
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start_with(&remote, dir.path(), |c| c.prefetch_max_bytes = 1024);
    dev.write_file("snes/small.srm", b"local and cached");
    let big = wait_until(DEADLINE, "big save listed", || dev.lookup("ps2/big.ps2").ok());
    remote.set_download_delay(std::time::Duration::from_millis(1500));
    let before = remote.downloads_started();
    std::thread::scope(|s| {
        let slow = s.spawn(|| {
            let t = Instant::now();
            let fh = dev.fs.open(big.ino, libc::O_RDONLY).unwrap();
            dev.fs.release(fh).unwrap();
            t.elapsed()
        });
        wait_until(DEADLINE, "slow download under way", || {
            (remote.downloads_started() > before).then_some(())
        });
        let t = Instant::now();
        assert_eq!(dev.read_file("snes/small.srm").unwrap(), b"local and cached");
        let fast = t.elapsed();
        let slow = slow.join().unwrap();
        assert!(slow.as_millis() >= 1400, "the big open waited for its download ({slow:?})");
        assert!(fast.as_millis() < 500, "reading the cached save took {fast:?}");
    });
}
