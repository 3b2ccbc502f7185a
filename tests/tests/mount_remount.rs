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
