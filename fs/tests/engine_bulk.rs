//! Bulk prefetch in the engine (against `FakeRemote`): a fresh device takes its saves from
//! one bulk stream and downloads none singly; a burst of remote changes comes in bulk too,
//! and a bulk copy never overwrites a save changed on this device (it becomes a conflict,
//! decided by the same `decide` as a single download); the per-save limit keeps big saves
//! out of the bulk fetch.

mod common;

use common::{DEADLINE, Device, wait_until};
use savesync_fs::fake_remote::FakeRemote;
use std::time::Duration;

fn bytes(i: usize, tag: &str) -> Vec<u8> {
    format!("{tag} save {i} ").repeat(100 + i).into_bytes()
}

#[test]
fn a_fresh_device_takes_its_saves_from_the_bulk_stream() {
    let remote = FakeRemote::new();
    for i in 0..30 {
        remote.put(&format!("lib/s{i:02}.srm"), &bytes(i, "remote"));
    }
    let big = vec![5u8; 3000];
    remote.put("lib/big.state", &big);
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start_with(&remote, dir.path(), |c| c.bulk.max_save_bytes = 2000);
    wait_until(DEADLINE, "30 saves prefetched", || {
        (remote.bulk_saves_sent() == 30 && dev.pending() == 0).then_some(())
    });
    // Only the big one (over the bulk limit, under the prefetch limit) comes singly.
    assert!(remote.downloads_started() <= 1, "nothing else downloaded singly");
    for i in 0..30 {
        assert_eq!(dev.read_file(&format!("lib/s{i:02}.srm")).unwrap(), bytes(i, "remote"));
    }
    // The big one was over the bulk limit: downloaded on its own (prefetch, or this open).
    assert_eq!(dev.read_file("lib/big.state").unwrap(), big);
    assert_eq!(remote.downloads_started(), 1);
    dev.stop();
}

#[test]
fn a_bulk_copy_never_overwrites_a_save_changed_here() {
    let remote = FakeRemote::new();
    for name in ["a", "b", "c"] {
        remote.put(&format!("{name}.srm"), format!("base {name}").as_bytes());
    }
    let dir = tempfile::tempdir().unwrap();
    // A local change waits an hour before its upload.
    let dev = Device::start_with(&remote, dir.path(), |c| c.debounce = Duration::from_secs(3600));
    wait_until(DEADLINE, "library prefetched", || {
        (remote.bulk_saves_sent() == 3 && dev.pending() == 0).then_some(())
    });
    dev.write_file("a.srm", b"mine");
    // The burst lands while the local change waits for its upload.
    for name in ["a", "b", "c"] {
        remote.put(&format!("{name}.srm"), format!("theirs {name}").as_bytes());
    }
    wait_until(DEADLINE, "the burst settled", || {
        (dev.is_conflict_copy("a.srm.conflict")
            && dev.read_file("b.srm").ok()? == b"theirs b"
            && dev.read_file("c.srm").ok()? == b"theirs c")
            .then_some(())
    });
    assert_eq!(dev.read_file("a.srm").unwrap(), b"mine", "the local change is kept");
    assert_eq!(dev.read_file("a.srm.conflict").unwrap(), b"theirs a");
    dev.stop();
}
