//! What survives an ordinary unmount and mount of the same device: the tree, the bytes and
//! the inode numbers (file managers, Samba and rsync key on them).

use savesync_tests::{Device, SoloDevice, poll_until, save_bytes};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

const USER: &str = "gina";

#[test]
fn inode_numbers_and_contents_survive_a_remount() {
    let Some(SoloDevice { server: _server, view, mut a }) = SoloDevice::start(USER, "handheld-a")
    else {
        return;
    };
    std::fs::create_dir_all(a.path("snes/sub")).unwrap();
    let files = ["snes/a.srm", "snes/sub/b.srm", "top.srm"];
    for (i, f) in files.iter().enumerate() {
        std::fs::write(a.path(f), save_bytes(600 + i as u64, 1000)).unwrap();
    }
    let ino = |d: &Device, p: &str| std::fs::metadata(d.path(p)).unwrap().ino();
    let before: Vec<u64> = ["snes", "snes/sub"].iter().chain(&files).map(|p| ino(&a, p)).collect();
    let uploaded = poll_until(Duration::from_secs(10), || {
        files
            .iter()
            .enumerate()
            .all(|(i, f)| view.has(f, &save_bytes(600 + i as u64, 1000)))
            .then_some(())
    });
    assert!(uploaded.is_some(), "the saves reached the server");

    a.unmount();
    a.mount();
    let after: Vec<u64> = ["snes", "snes/sub"].iter().chain(&files).map(|p| ino(&a, p)).collect();
    assert_eq!(before, after, "inode numbers are stable across a remount");
    for (i, f) in files.iter().enumerate() {
        assert_eq!(std::fs::read(a.path(f)).unwrap(), save_bytes(600 + i as u64, 1000), "{f}");
    }
}

#[test]
fn numbers_of_deleted_inodes_are_never_handed_out_again_after_a_remount() {
    let Some(SoloDevice { server: _server, view: _view, mut a }) =
        SoloDevice::start(USER, "handheld-b")
    else {
        return;
    };
    std::fs::create_dir_all(a.path("gba")).unwrap();
    let ino = |d: &Device, p: &str| std::fs::metadata(d.path(p)).unwrap().ino();
    let first: Vec<String> = (0..5).map(|i| format!("gba/old-{i}.sav")).collect();
    for (i, f) in first.iter().enumerate() {
        std::fs::write(a.path(f), save_bytes(700 + i as u64, 100)).unwrap();
    }
    let mut handed_out: Vec<u64> = first.iter().map(|f| ino(&a, f)).collect();
    handed_out.push(ino(&a, "gba"));
    let highest = *handed_out.iter().max().unwrap();
    // Delete the newest files: their numbers were the highest ever handed out.
    for f in &first[3..] {
        std::fs::remove_file(a.path(f)).unwrap();
    }

    a.unmount();
    a.mount();
    let fresh: Vec<u64> = (0..3)
        .map(|i| {
            let f = format!("gba/new-{i}.sav");
            std::fs::write(a.path(&f), save_bytes(800 + i, 100)).unwrap();
            ino(&a, &f)
        })
        .collect();
    std::fs::create_dir(a.path("gba/newdir")).unwrap();
    let dir = ino(&a, "gba/newdir");
    for n in fresh.iter().chain([&dir]) {
        assert!(*n > highest, "inode {n} handed out again (highest before remount {highest})");
    }
}
