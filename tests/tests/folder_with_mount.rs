//! A FUSE mount on device A and a synced folder on device B edit the same saves, both
//! ways: new saves, overwrites (plain and temp + rename), deletes; and `status` tells a
//! synced folder from a mount. Prints the measured propagation times (p50) both ways.

use savesync_tests::{
    Device, FolderDevice, RemoteView, TestServer, require_fuse, save_bytes, wait_for_absent,
    wait_for_bytes, wait_until, write_via_rename,
};
use std::time::{Duration, Instant};

const USER: &str = "mira";
const DEADLINE: Duration = Duration::from_secs(20);

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn a_mount_and_a_synced_folder_edit_the_same_saves_both_ways() {
    if !require_fuse() {
        return;
    }
    let server = TestServer::start_blocking();
    let view = RemoteView::new(&server, USER);
    let mut a = Device::pair(&server, USER, "desktop-a");
    a.mount();
    let mut b = FolderDevice::pair(&server, USER, "handheld-b");
    b.start();
    let st = b.status_json();
    assert_eq!(st["synced_folder"].as_str(), Some(b.folder().to_str().unwrap()), "{st}");
    assert_eq!(st["mounted"], false, "a synced folder is not a mount: {st}");
    let text = String::from_utf8(b.run_cli(&["status"]).stdout).unwrap();
    assert!(text.contains(&format!("synced:     folder {}", b.folder().display())), "{text}");

    // A -> B: a new save in a new directory.
    std::fs::create_dir_all(a.path("snes")).unwrap();
    let v1 = save_bytes(1, 8192);
    std::fs::write(a.path("snes/Zelda.srm"), &v1).unwrap();
    wait_for_bytes(&b.path("snes/Zelda.srm"), &v1, DEADLINE);

    // B -> A: the emulator on B rewrites it through a temp file and a rename.
    let v2 = save_bytes(2, 8192);
    write_via_rename(&b.path("snes/Zelda.srm"), &v2);
    wait_for_bytes(&a.path("snes/Zelda.srm"), &v2, DEADLINE);
    assert!(view.has("snes/Zelda.srm", &v2));

    // B -> A: a new save written in place, and A -> B: an overwrite in place.
    let m1 = save_bytes(3, 131_072);
    std::fs::create_dir_all(b.path("psx")).unwrap();
    std::fs::write(b.path("psx/card1.mcd"), &m1).unwrap();
    wait_for_bytes(&a.path("psx/card1.mcd"), &m1, DEADLINE);
    let v3 = save_bytes(4, 4096);
    std::fs::write(a.path("snes/Zelda.srm"), &v3).unwrap();
    wait_for_bytes(&b.path("snes/Zelda.srm"), &v3, DEADLINE);

    // Deletes both ways.
    std::fs::remove_file(a.path("psx/card1.mcd")).unwrap();
    wait_for_absent(&b.path("psx/card1.mcd"), DEADLINE);
    std::fs::remove_file(b.path("snes/Zelda.srm")).unwrap();
    wait_for_absent(&a.path("snes/Zelda.srm"), DEADLINE);
    wait_until(DEADLINE, "both deletes on the server", || view.saves().is_empty().then_some(()));
    assert!(view.head("snes/Zelda.srm").is_some_and(|h| h.deleted), "a tombstone");

    // Temp names never leave B.
    std::fs::write(b.path("snes/scratch.tmp"), b"temp").unwrap();
    write_via_rename(&b.path("snes/after.srm"), b"after");
    wait_for_bytes(&a.path("snes/after.srm"), b"after", DEADLINE);
    assert!(!view.saves().contains_key("snes/scratch.tmp"), "a *.tmp name stays local");

    // Propagation, measured from the write to the other side reading the bytes.
    let rounds = 9;
    let mut to_folder = Vec::new();
    let mut to_mount = Vec::new();
    for i in 0..rounds {
        let bytes = save_bytes(100 + i, 4096);
        let start = Instant::now();
        std::fs::write(a.path("snes/latency.srm"), &bytes).unwrap();
        wait_for_bytes(&b.path("snes/latency.srm"), &bytes, DEADLINE);
        to_folder.push(start.elapsed());
        let bytes = save_bytes(200 + i, 4096);
        let start = Instant::now();
        write_via_rename(&b.path("snes/latency.srm"), &bytes);
        wait_for_bytes(&a.path("snes/latency.srm"), &bytes, DEADLINE);
        to_mount.push(start.elapsed());
    }
    println!(
        "propagation p50 over {rounds} rounds: mount->folder {:?}, folder->mount {:?} \
         (folder debounce {} ms)",
        p50(to_folder),
        p50(to_mount),
        savesync_tests::FOLDER_DEBOUNCE_MS
    );
    b.stop();
    a.unmount();
}
