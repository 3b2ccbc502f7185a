//! The uploader keeps retrying saves that failed for local or transient reasons, however
//! many attempts it takes, and gives up only on a permanent server refusal, which it lists
//! for `status`. The negotiated plan is reported back as a completed session.

mod common;

use common::{DEADLINE, Device, wait_until};
use savesync_fs::fake_remote::FakeRemote;
use std::time::Duration;

fn attempts(dev: &Device) -> i64 {
    dev.fs.state().due_pending(i64::MAX, 10).unwrap().first().map_or(-1, |r| r.attempts)
}

#[test]
fn a_local_failure_is_retried_past_five_attempts_until_it_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let remote = FakeRemote::new();
    let dev =
        Device::start_with(&remote, dir.path(), |c| c.retry_backoff = Duration::from_millis(1));
    wait_until(DEADLINE, "online", || dev.fs.is_online().then_some(()));
    // Queue the save while the server is away, so no upload happens yet.
    remote.set_offline(true);
    wait_until(DEADLINE, "offline", || (!dev.fs.is_online()).then_some(()));
    dev.write_file("snes/mana.srm", b"mana");
    let ino = dev.lookup("snes/mana.srm").unwrap().ino;
    // A local fault: the cache file cannot be read (as if the disk failed).
    let cache = dir.path().join("cache").join(ino.to_string());
    let aside = dir.path().join("aside");
    std::fs::rename(&cache, &aside).unwrap();
    remote.set_offline(false);
    wait_until(DEADLINE, "more than five failed attempts", || (attempts(&dev) > 7).then_some(()));
    assert_eq!(dev.pending(), 1, "the save is still queued");
    assert!(dev.fs.state().given_up().unwrap().is_empty(), "a local fault is not given up");
    std::fs::rename(&aside, &cache).unwrap();
    wait_until(DEADLINE, "the upload once the fault is gone", || {
        remote.content("snes/mana.srm").filter(|b| &b[..] == b"mana")
    });
    wait_until(DEADLINE, "queue drained", || (dev.pending() == 0).then_some(()));
}

#[test]
fn a_permanent_refusal_is_given_up_listed_and_retried_when_the_save_changes() {
    let dir = tempfile::tempdir().unwrap();
    let remote = FakeRemote::new();
    let dev = Device::start(&remote, dir.path());
    wait_until(DEADLINE, "online", || dev.fs.is_online().then_some(()));
    remote.set_refusing_uploads(true);
    dev.write_file("gb/red.sav", b"red");
    let listed = wait_until(DEADLINE, "the save listed as given up", || {
        dev.fs.state().given_up().unwrap().into_iter().next()
    });
    assert_eq!(listed.path.as_str(), "gb/red.sav");
    assert!(listed.error.contains("refused"), "{}", listed.error);
    wait_until(DEADLINE, "queue drained", || (dev.pending() == 0).then_some(()));

    remote.set_refusing_uploads(false);
    dev.write_file("gb/red.sav", b"red2");
    wait_until(DEADLINE, "the changed save uploaded", || {
        remote.content("gb/red.sav").filter(|b| &b[..] == b"red2")
    });
    wait_until(DEADLINE, "no longer given up", || {
        dev.fs.state().given_up().unwrap().is_empty().then_some(())
    });
}

#[test]
fn every_negotiation_completes_its_session_with_the_planned_counts() {
    let dir = tempfile::tempdir().unwrap();
    let remote = FakeRemote::new();
    remote.put("n64/zelda.eep", b"z");
    let dev = Device::start(&remote, dir.path());
    let done = wait_until(DEADLINE, "a completed session", || {
        remote.completed_sessions().into_iter().next()
    });
    assert_eq!(done.0, 1, "the first session is completed");
    assert_eq!((done.1.downloaded, done.1.uploaded), (1, 0));
    drop(dev);
}
