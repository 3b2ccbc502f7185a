//! kill -9 of a mount right after saves were written and closed: nothing closed may be
//! lost. After a remount every closed save reaches the server; the tests count the lost
//! saves and require zero.

use savesync_tests::{
    Device, RemoteView, SoloDevice, TestServer, fuse_mount_ids, is_fuse_mount, poll_until,
    require_fuse, save_bytes, wait_for_bytes, wait_until,
};
use std::time::{Duration, Instant};

const USER: &str = "dave";
const SAVES: u64 = 30;
const RECOVERY_DEADLINE: Duration = Duration::from_secs(30);

fn name(i: u64) -> String {
    format!("gba/slot-{i:02}.sav")
}

/// The expected saves the server does not hold by the recovery deadline (empty = none lost).
fn lost_saves(view: &RemoteView, expected: &[(String, Vec<u8>)]) -> Vec<String> {
    view.missing_after(RECOVERY_DEADLINE, expected)
}

fn write_saves(a: &Device, seed: u64) -> Vec<(String, Vec<u8>)> {
    std::fs::create_dir_all(a.path("gba")).unwrap();
    (0..SAVES)
        .map(|i| {
            let bytes = save_bytes(seed * 1000 + i, 4096 + usize::try_from(i).unwrap() * 7);
            std::fs::write(a.path(&name(i)), &bytes).unwrap();
            (name(i), bytes)
        })
        .collect()
}

#[test]
fn kill9_right_after_closed_writes_then_remount_loses_no_save() {
    let Some(SoloDevice { server: _server, view, mut a }) = SoloDevice::start(USER, "handheld-a")
    else {
        return;
    };
    // Half the saves exist on the server already and are overwritten, half are new.
    let old = write_saves(&a, 1);
    assert!(lost_saves(&view, &old[..15]).is_empty(), "the first saves reached the server");
    let expected = write_saves(&a, 2);
    a.kill9();

    let start = Instant::now();
    a.mount();
    let lost = lost_saves(&view, &expected);
    println!(
        "KILL -9: {} saves closed before the kill, {} lost, recovered in {} ms after remount",
        expected.len(),
        lost.len(),
        start.elapsed().as_millis()
    );
    assert!(lost.is_empty(), "{} closed saves lost after kill -9: {lost:?}", lost.len());
    for (p, b) in &expected {
        assert_eq!(&std::fs::read(a.path(p)).unwrap(), b, "{p} reads back after remount");
    }
}

#[test]
fn kill9_before_any_upload_started_then_remount_loses_no_save() {
    if !require_fuse() {
        return;
    }
    let server = TestServer::start_blocking();
    let view = RemoteView::new(&server, USER);
    let mut a = Device::pair(&server, USER, "handheld-a");
    // A debounce far longer than the test: every closed save is still only queued locally
    // when the mount dies, so only the durable queue can bring them to the server.
    a.mount_with_args(&["--debounce-ms", "600000"]);
    // Once online, the start-up sync (which may flush the queue at once) is behind us.
    wait_until(RECOVERY_DEADLINE, "A to be online", || {
        (a.status_json()["online"] == true).then_some(())
    });
    let expected = write_saves(&a, 5);
    let on_server_at_kill = view.saves().len();
    a.kill9();
    assert_eq!(on_server_at_kill, 0, "nothing was uploaded before the kill (long debounce)");

    a.mount();
    let lost = lost_saves(&view, &expected);
    println!(
        "KILL -9 BEFORE UPLOAD: {} saves queued at the kill, {} lost",
        expected.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "{} closed saves lost after kill -9: {lost:?}", lost.len());
}

#[test]
fn kill9_while_the_server_is_down_then_remount_uploads_every_closed_save() {
    let Some(SoloDevice { mut server, view, mut a }) = SoloDevice::start(USER, "handheld-a") else {
        return;
    };
    server.stop_blocking();
    let expected = write_saves(&a, 3);
    a.kill9();
    server.restart_blocking();

    a.mount();
    let lost = lost_saves(&view, &expected);
    println!("KILL -9 OFFLINE: {} closed saves, {} lost", expected.len(), lost.len());
    assert!(lost.is_empty(), "{} closed saves lost after kill -9 offline: {lost:?}", lost.len());
}

#[test]
fn mounting_over_a_stale_mount_left_by_kill9_cleans_it_and_serves_the_saves() {
    let Some(SoloDevice { server: _server, view, mut a }) = SoloDevice::start(USER, "handheld-a")
    else {
        return;
    };
    let bytes = save_bytes(4, 2048);
    std::fs::write(a.path("stale.sav"), &bytes).unwrap();
    a.kill9_leave_stale_mount();
    assert!(is_fuse_mount(a.mountpoint()), "the dead mount is still listed (stale)");

    a.mount();
    assert_eq!(
        fuse_mount_ids(a.mountpoint()).len(),
        1,
        "the stale mount was cleaned, not stacked under the new one"
    );
    wait_for_bytes(&a.path("stale.sav"), &bytes, RECOVERY_DEADLINE);
    let reached = poll_until(RECOVERY_DEADLINE, || view.has("stale.sav", &bytes).then_some(()));
    assert!(reached.is_some(), "the save written before the kill reached the server");
}

#[test]
fn kill9_while_an_fsynced_sram_is_still_open_loses_nothing_fsynced() {
    if !require_fuse() {
        return;
    }
    use std::os::unix::fs::FileExt;
    let server = TestServer::start_blocking();
    let view = RemoteView::new(&server, USER);
    let mut a = Device::pair(&server, USER, "handheld-a");
    a.mount_with_args(&["--debounce-ms", "600000"]);
    wait_until(RECOVERY_DEADLINE, "A to be online", || {
        (a.status_json()["online"] == true).then_some(())
    });
    // RetroArch keeps the SRAM open while the game runs and fsyncs after each write.
    let mut sram = save_bytes(7, 8192);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(a.path("running.srm"))
        .unwrap();
    file.write_all_at(&sram, 0).unwrap();
    let patch = save_bytes(8, 100);
    file.write_all_at(&patch, 4000).unwrap();
    file.sync_all().unwrap();
    sram[4000..4100].copy_from_slice(&patch);
    a.kill9();
    drop(file);

    a.mount();
    let lost = lost_saves(&view, &[("running.srm".to_owned(), sram)]);
    assert!(lost.is_empty(), "the fsynced SRAM was lost after kill -9 with the file open");
}
