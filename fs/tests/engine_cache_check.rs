//! After an unclean stop the cache is checked by hash while the device already serves
//! (`tree::cache_check`): a closed save whose queue entry a power cut took back is found
//! and uploaded, also when a clean stop came before the check ended.

mod common;

use common::{DEADLINE, Device, wait_until};
use savesync_fs::fake_remote::FakeRemote;
use savesync_fs::tree::cache_check::Checked;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

const SAVE: &str = "gba/Minish Cap.sav";

/// A device that synced `SAVE` and then stopped without a clean stop, and the path of the
/// save's cache file.
fn synced_then_crashed(remote: &FakeRemote, dir: &Path) -> PathBuf {
    let dev = Device::start(remote, dir);
    dev.write_file(SAVE, b"save v01");
    dev.write_file("gba/other.sav", b"untouched");
    wait_until(DEADLINE, "both saves uploaded", || {
        (dev.pending() == 0 && remote.content(SAVE).as_deref() == Some(&b"save v01"[..]))
            .then_some(())
    });
    let ino = dev.lookup(SAVE).unwrap().ino;
    dev.stop();
    dir.join("cache").join(ino.to_string())
}

/// What a power cut can leave: the save rewritten with as many bytes in the same clock
/// tick (same size and mtime), the commit that queued it gone. Only its bytes tell.
fn rewrite_unnoticed(cache_file: &Path, bytes: &[u8]) {
    let mtime = std::fs::metadata(cache_file).unwrap().modified().unwrap();
    assert_eq!(std::fs::metadata(cache_file).unwrap().len(), bytes.len() as u64);
    std::fs::write(cache_file, bytes).unwrap();
    let f = std::fs::File::options().write(true).open(cache_file).unwrap();
    f.set_modified(mtime).unwrap();
    f.sync_all().unwrap();
}

fn wait_for_rewrite_on_server(remote: &FakeRemote) {
    wait_until(DEADLINE, "the rewritten save on the server", || {
        (remote.content(SAVE).as_deref() == Some(&b"save v02"[..])).then_some(())
    });
}

#[test]
fn a_save_rewritten_unnoticed_before_a_power_cut_is_found_by_the_check_and_uploaded() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let cache_file = synced_then_crashed(&remote, dir.path());
    rewrite_unnoticed(&cache_file, b"save v02");
    let uploads = remote.upload_count();

    let dev = Device::start(&remote, dir.path());
    wait_for_rewrite_on_server(&remote);
    wait_until(DEADLINE, "the check to end", || (!dev.fs.tree().cache_check_due()).then_some(()));
    wait_until(DEADLINE, "queue drained", || (dev.pending() == 0).then_some(()));
    assert_eq!(remote.upload_count(), uploads + 1, "only the changed save is uploaded again");
    assert_eq!(remote.content("gba/other.sav").as_deref(), Some(&b"untouched"[..]));
}

#[test]
fn a_check_cut_short_by_a_clean_stop_is_done_at_the_next_start() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let cache_file = synced_then_crashed(&remote, dir.path());
    rewrite_unnoticed(&cache_file, b"save v02");

    // The device serves without having checked; a stop asked before the first file.
    let dev = Device::start_unchecked(&remote, dir.path(), |_| {});
    assert!(dev.fs.tree().cache_check_due(), "an unclean stop makes the check due");
    assert_eq!(dev.read_file(SAVE).unwrap(), b"save v02", "the save is served before the check");
    let stopped = dev.fs.tree().check_cache(&AtomicBool::new(true), |_| Ok(())).unwrap();
    assert_eq!(stopped, Checked::Stopped);
    dev.fs.tree().close_clean().unwrap();
    dev.stop();
    assert_eq!(remote.content(SAVE).as_deref(), Some(&b"save v01"[..]), "not found yet");

    let dev = Device::start_unchecked(&remote, dir.path(), |_| {});
    assert!(dev.fs.tree().cache_check_due(), "a clean stop does not drop an unfinished check");
    let mut handed = Vec::new();
    let done = dev
        .fs
        .tree()
        .check_cache(&AtomicBool::new(false), |paths| {
            handed.extend(paths.iter().map(|p| p.as_str().to_owned()));
            dev.fs.engine().changed(paths).map_err(|e| anyhow::anyhow!("{e}"))
        })
        .unwrap();
    assert_eq!(done, Checked::Finished { queued: 1 });
    assert_eq!(handed, vec![SAVE.to_owned()], "only the save whose bytes changed");
    assert!(!dev.fs.tree().cache_check_due(), "a finished check is not due any more");
    wait_for_rewrite_on_server(&remote);
}
