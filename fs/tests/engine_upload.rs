//! Local-first writes reach the server: debounce upload, rename-over, deletes, temp names,
//! offline periods.

mod common;

use common::{DEADLINE, Device, wait_until};
use savesync_fs::fake_remote::FakeRemote;
use std::time::Duration;

#[test]
fn closed_save_is_uploaded_in_the_background() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    dev.write_file("snes/Chrono Trigger.srm", b"sram v1");
    wait_until(DEADLINE, "upload of the closed save", || {
        (remote.content("snes/Chrono Trigger.srm").as_deref() == Some(&b"sram v1"[..]))
            .then_some(())
    });
    wait_until(DEADLINE, "queue drained", || (dev.pending() == 0).then_some(()));
}

#[test]
fn retroarch_pwrite_in_place_then_fsync_is_uploaded_while_the_file_stays_open() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    dev.write_file("gba/game.srm", &[0u8; 8192]);
    let ino = dev.lookup("gba/game.srm").unwrap().ino;
    let fh = dev.fs.open(ino, libc::O_RDWR).unwrap();
    dev.fs.write(fh, 4096, b"progress").unwrap();
    dev.fs.fsync(fh).unwrap();
    let mut expected = vec![0u8; 8192];
    expected[4096..4104].copy_from_slice(b"progress");
    wait_until(DEADLINE, "upload after fsync with the file still open", || {
        (remote.content("gba/game.srm").as_deref() == Some(&expected[..])).then_some(())
    });
    dev.fs.release(fh).unwrap();
}

#[test]
fn gio_temp_file_renamed_over_a_save_uploads_the_target_and_never_the_temp_name() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    dev.write_file("psx/state.ss0", b"old state");
    wait_until(DEADLINE, "first upload", || remote.head("psx/state.ss0"));
    dev.write_file("psx/.goutputstream-XYZ123", b"new state");
    let parent = dev.lookup("psx").unwrap().ino;
    dev.fs
        .rename(parent, ".goutputstream-XYZ123", parent, "state.ss0", Default::default())
        .unwrap();
    wait_until(DEADLINE, "upload of the replaced save", || {
        (remote.content("psx/state.ss0").as_deref() == Some(&b"new state"[..])).then_some(())
    });
    wait_until(DEADLINE, "queue drained", || (dev.pending() == 0).then_some(()));
    assert_eq!(remote.live_paths(), vec!["psx/state.ss0".to_owned()]);
    assert_eq!(dev.read_file("psx/state.ss0").unwrap(), b"new state");
}

#[test]
fn rename_of_a_save_is_a_delete_of_the_old_path_and_an_upload_of_the_new() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    dev.write_file("a/one.srm", b"bytes");
    wait_until(DEADLINE, "first upload", || remote.head("a/one.srm"));
    let a = dev.lookup("a").unwrap().ino;
    dev.fs.rename(a, "one.srm", a, "two.srm", Default::default()).unwrap();
    wait_until(DEADLINE, "rename synced", || {
        (remote.live_paths() == vec!["a/two.srm".to_owned()]).then_some(())
    });
    assert!(remote.head("a/one.srm").unwrap().deleted);
}

#[test]
fn unlink_of_a_synced_save_deletes_it_on_the_server() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    dev.write_file("n64/zelda.eep", b"eeprom");
    wait_until(DEADLINE, "upload", || remote.head("n64/zelda.eep"));
    dev.unlink("n64/zelda.eep").unwrap();
    wait_until(DEADLINE, "remote tombstone", || remote.head("n64/zelda.eep").filter(|h| h.deleted));
}

#[test]
fn temp_names_stay_local() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    for name in ["x.tmp", ".DS_Store", "Thumbs.db", "._card.mcd", "~$lock"] {
        dev.write_file(name, b"junk");
    }
    dev.write_file("real.srm", b"save");
    wait_until(DEADLINE, "real save uploaded", || remote.head("real.srm"));
    wait_until(DEADLINE, "queue drained", || (dev.pending() == 0).then_some(()));
    assert_eq!(remote.live_paths(), vec!["real.srm".to_owned()]);
    assert_eq!(dev.read_file("x.tmp").unwrap(), b"junk");
}

#[test]
fn writes_made_offline_are_uploaded_when_the_server_returns() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    remote.set_offline(true);
    let dev = Device::start(&remote, dir.path());
    dev.write_file("gb/pokemon.sav", b"caught them all");
    assert_eq!(dev.read_file("gb/pokemon.sav").unwrap(), b"caught them all");
    assert!(remote.head("gb/pokemon.sav").is_none());
    assert_eq!(dev.pending(), 1);
    remote.set_offline(false);
    wait_until(Duration::from_secs(15), "upload after reconnect", || {
        (remote.content("gb/pokemon.sav").as_deref() == Some(&b"caught them all"[..])).then_some(())
    });
}

/// Offline, a closed save probes the server at once, but a burst of them does not try a
/// connection per save: at most one probe per `FIRST_OFFLINE_WAIT` (200 ms). The server
/// coming back is still noticed by the next closed save, long before the backoff (set to a
/// minute here) would probe again on its own.
#[test]
fn a_burst_of_saves_made_offline_probes_a_few_times_a_second_not_once_per_save() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start_with(&remote, dir.path(), |c| {
        c.offline_backoff_max = Duration::from_secs(60);
    });
    wait_until(DEADLINE, "online", || dev.fs.is_online().then_some(()));
    remote.set_offline(true);
    dev.write_file("gb/first.sav", b"noticed offline");
    wait_until(DEADLINE, "offline", || (!dev.fs.is_online()).then_some(()));

    let saves = 150;
    let before = remote.probes();
    let started = std::time::Instant::now();
    for i in 0..saves {
        dev.write_file(&format!("gb/burst-{i:03}.sav"), b"burst");
    }
    let probes = remote.probes() - before;
    let allowed = started.elapsed().as_millis() as u64 / 200 + 2;
    assert!(probes <= allowed, "{probes} probes for {saves} saves (at most {allowed})");
    assert_eq!(dev.pending(), saves + 1, "every save is queued");

    remote.set_offline(false);
    dev.write_file("gb/back.sav", b"back online");
    wait_until(DEADLINE, "the server noticed by a closed save", || {
        remote.content("gb/back.sav").filter(|b| &b[..] == b"back online")
    });
    wait_until(Duration::from_secs(30), "the burst uploaded", || {
        (dev.pending() == 0).then_some(())
    });
}

#[test]
fn a_server_failing_with_5xx_is_retried_until_it_recovers() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    wait_until(DEADLINE, "online", || dev.fs.is_online().then_some(()));
    remote.set_failing(true);
    let refused = remote.refused_calls();
    dev.write_file("snes/mario.srm", b"world 8");
    wait_until(DEADLINE, "an upload attempt refused with 5xx", || {
        (remote.refused_calls() > refused && dev.pending() == 1).then_some(())
    });
    assert!(remote.head("snes/mario.srm").is_none());
    remote.set_failing(false);
    wait_until(Duration::from_secs(15), "upload after 5xx", || remote.head("snes/mario.srm"));
}

#[test]
fn a_big_memory_card_is_streamed_to_the_server_intact() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    let card: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    dev.write_file("ps2/Mcd001.ps2", &card);
    wait_until(Duration::from_secs(15), "big save uploaded", || {
        (remote.content("ps2/Mcd001.ps2").as_deref() == Some(&card[..])).then_some(())
    });
}

/// A save rewritten in place (open, truncate, write, close) while the engine is uploading
/// its previous version: the engine reads the bytes after its snapshot, so without a check
/// it could upload the truncated, half-written file as a version of its own. Every version
/// the server gets must be one the user closed.
#[test]
fn rewriting_a_save_during_its_upload_never_commits_bytes_nobody_closed() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start_with(&remote, dir.path(), |c| c.debounce = Duration::ZERO);
    let closed: Vec<Vec<u8>> =
        (0..150u32).map(|i| format!("version {i:04}").into_bytes()).collect();
    for bytes in &closed {
        dev.write_file("gb/rewrite.sav", bytes);
    }
    let last = closed.last().unwrap().clone();
    wait_until(DEADLINE, "the last version uploaded", || {
        (remote.content("gb/rewrite.sav").as_deref() == Some(&last[..])).then_some(())
    });
    let versions = remote.committed_versions("gb/rewrite.sav");
    assert!(!versions.is_empty());
    for v in versions {
        let v = v.expect("no delete was made");
        assert!(
            closed.iter().any(|c| c[..] == v[..]),
            "the server got {:?}, which was never closed",
            String::from_utf8_lossy(&v)
        );
    }
}

/// Back online, the device negotiates while its queue uploads what was written offline.
/// The plan, made before the upload, says the server has no such save; recorded after the
/// upload agreed, it used to wipe the agreed head, so the save looked never synced and
/// deleting it here never reached the server (which kept it, and would have brought it
/// back to this device at the next negotiation).
#[test]
fn a_save_deleted_after_its_upload_agreed_during_a_negotiation_is_deleted_on_the_server() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    remote.set_offline(true);
    let dev = Device::start(&remote, dir.path());
    dev.write_file("gb/offline.sav", b"written offline");
    remote.hold_negotiate_answers(true);
    remote.set_offline(false);
    wait_until(DEADLINE, "the upload of the offline save", || remote.head("gb/offline.sav"));
    // No second upload may mend a wiped head before the delete is decided.
    remote.set_refusing_uploads(true);
    assert!(
        remote.completed_sessions().is_empty(),
        "the upload was meant to land while the negotiation's answer was on its way"
    );
    remote.hold_negotiate_answers(false);
    wait_until(DEADLINE, "the negotiation recorded", || {
        (!remote.completed_sessions().is_empty()).then_some(())
    });
    dev.unlink("gb/offline.sav").unwrap();
    wait_until(DEADLINE, "the delete on the server", || {
        remote.head("gb/offline.sav").filter(|h| h.deleted)
    });
    assert_eq!(remote.live_paths(), Vec::<String>::new());
}

/// The feed announces this device's own upload before its answer is back (the answer is
/// slow). That echo is this device's bytes: the save is neither downloaded back nor
/// decided again, and the answer, once it arrives, agrees on it.
#[test]
fn an_own_upload_heard_from_the_feed_before_its_answer_is_not_downloaded_back() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    remote.set_upload_answer_delay(Duration::from_millis(400));
    let saves = 40;
    for i in 0..saves {
        dev.write_file(&format!("gba/echo{i}.srm"), format!("save {i}").as_bytes());
    }
    wait_until(DEADLINE, "every save agreed and the queue drained", || {
        (remote.live_paths().len() == saves && dev.pending() == 0).then_some(())
    });
    assert_eq!(remote.upload_count(), saves as u64, "each save uploaded once");
    assert_eq!(
        (remote.downloads_started(), remote.bulk_saves_sent()),
        (0, 0),
        "the device fetched its own uploads back"
    );
}
