//! The server goes away and comes back (same data, same port): devices keep working from
//! their caches, and what was written meanwhile reaches the server and the other devices.

use savesync_tests::{DevicePair, SoloDevice, poll_until, save_bytes, wait_for_bytes};
use std::time::{Duration, Instant};

use savesync_tests::{dir_names, wait_until};

const USER: &str = "erin";
/// Covers the mount's reconnect backoff after the server returns.
const RECONNECT_DEADLINE: Duration = Duration::from_secs(20);

#[test]
fn writes_made_during_a_server_outage_reach_b_after_the_server_restarts() {
    let Some(DevicePair { a, b, view: _, mut server }) = DevicePair::start(USER) else {
        return;
    };
    std::fs::create_dir_all(a.path("nes")).unwrap();
    let v1 = save_bytes(200, 8192);
    std::fs::write(a.path("nes/Zelda.sav"), &v1).unwrap();
    wait_for_bytes(&b.path("nes/Zelda.sav"), &v1, RECONNECT_DEADLINE);

    server.stop_blocking();
    let v2 = save_bytes(201, 8192);
    let fresh = save_bytes(202, 1000);
    std::fs::write(a.path("nes/Zelda.sav"), &v2).unwrap();
    std::fs::write(a.path("nes/Metroid.sav"), &fresh).unwrap();
    assert_eq!(std::fs::read(a.path("nes/Zelda.sav")).unwrap(), v2, "A reads its offline write");
    assert_eq!(std::fs::read(b.path("nes/Zelda.sav")).unwrap(), v1, "B serves its cache offline");

    let start = Instant::now();
    server.restart_blocking();
    wait_for_bytes(&b.path("nes/Zelda.sav"), &v2, RECONNECT_DEADLINE);
    wait_for_bytes(&b.path("nes/Metroid.sav"), &fresh, RECONNECT_DEADLINE);
    println!("OUTAGE: B saw A's offline writes {} ms after restart", start.elapsed().as_millis());
}

#[test]
fn a_mount_started_while_the_server_is_down_serves_its_cached_saves_and_syncs_later() {
    let Some(SoloDevice { mut server, view, mut a }) = SoloDevice::start(USER, "handheld-a") else {
        return;
    };
    std::fs::create_dir_all(a.path("md")).unwrap();
    let saves: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| (format!("md/game-{i}.srm"), save_bytes(300 + i, 2048 + 100 * i as usize)))
        .collect();
    for (p, b) in &saves {
        std::fs::write(a.path(p), b).unwrap();
    }
    let uploaded =
        poll_until(RECONNECT_DEADLINE, || saves.iter().all(|(p, b)| view.has(p, b)).then_some(()));
    assert!(uploaded.is_some(), "the saves reached the server before the outage");
    a.unmount();

    server.stop_blocking();
    a.mount();
    for (p, b) in &saves {
        assert_eq!(&std::fs::read(a.path(p)).unwrap(), b, "offline mount serves cached {p}");
    }
    let offline = save_bytes(310, 3000);
    std::fs::write(a.path("md/offline.srm"), &offline).unwrap();
    assert_eq!(std::fs::read(a.path("md/offline.srm")).unwrap(), offline);

    server.restart_blocking();
    let synced =
        poll_until(RECONNECT_DEADLINE, || view.has("md/offline.srm", &offline).then_some(()));
    assert!(synced.is_some(), "the save written offline reached the server once it was back");
}

#[test]
fn small_saves_from_another_device_are_prefetched_and_readable_after_an_offline_start() {
    let Some(DevicePair { mut a, b, view, mut server }) = DevicePair::start(USER) else {
        return;
    };
    std::fs::create_dir_all(b.path("gba")).unwrap();
    let saves: Vec<(String, Vec<u8>)> = [1024, 64 * 1024, 512 * 1024]
        .iter()
        .enumerate()
        .map(|(i, len)| (format!("gba/prefetch-{i}.sav"), save_bytes(400 + i as u64, *len)))
        .collect();
    for (p, bytes) in &saves {
        std::fs::write(b.path(p), bytes).unwrap();
    }
    let uploaded =
        poll_until(RECONNECT_DEADLINE, || saves.iter().all(|(p, b)| view.has(p, b)).then_some(()));
    assert!(uploaded.is_some(), "B's saves reached the server");
    let server_cursor = saves.iter().filter_map(|(p, _)| view.head(p)).map(|h| h.seq.0).max();

    // A never opens them; it only follows the feed. Wait until it has caught up with the
    // server's cursor and has nothing pending (downloads/prefetches included).
    wait_until(RECONNECT_DEADLINE, "A to catch up with the feed and drain its queue", || {
        let status = a.status_json();
        let caught_up = status["cursor"].as_u64() >= server_cursor && status["pending"] == 0;
        caught_up.then_some(())
    });
    let listed = dir_names(&a.path("gba")).unwrap();
    assert_eq!(listed.len(), saves.len(), "A lists B's saves: {listed:?}");
    a.unmount();
    server.stop_blocking();

    a.mount();
    for (p, bytes) in &saves {
        assert_eq!(&std::fs::read(a.path(p)).unwrap(), bytes, "A serves prefetched {p} offline");
    }
    drop(b);
}

#[test]
fn status_reports_offline_with_pending_work_then_online_and_drained() {
    let Some(SoloDevice { mut server, view, a }) = SoloDevice::start(USER, "handheld-a") else {
        return;
    };
    // The daemon records its status row just after the kernel lists the mount.
    wait_until(RECONNECT_DEADLINE, "status to report the mount, online", || {
        let s = a.status_json();
        (s["mounted"] == true && s["online"] == true).then_some(())
    });

    server.stop_blocking();
    let bytes = save_bytes(500, 4096);
    std::fs::write(a.path("queued.sav"), &bytes).unwrap();
    wait_until(RECONNECT_DEADLINE, "status to say offline with 1 pending save", || {
        let s = a.status_json();
        (s["online"] == false && s["pending"].as_u64() >= Some(1)).then_some(())
    });

    server.restart_blocking();
    wait_until(RECONNECT_DEADLINE, "status to say online with nothing pending", || {
        let s = a.status_json();
        (s["online"] == true && s["pending"] == 0).then_some(())
    });
    assert!(view.has("queued.sav", &bytes), "the queued save is on the server");
}
