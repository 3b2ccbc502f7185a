//! POSIX behaviour of the filesystem layer, without FUSE: stable inodes, durability,
//! unlink of an open file, readdir snapshots, append, truncate, setattr.

mod common;

use common::{DEADLINE, Device, wait_until};
use savesync_fs::fake_remote::FakeRemote;
use savesync_fs::savefs::{RenameOptions, SetAttr, TimeSet};
use savesync_fs::tree::ROOT_INO;
use std::time::{Duration, UNIX_EPOCH};

#[test]
fn inode_numbers_survive_a_remount() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    dev.write_file("a/b/c.srm", b"x");
    let before = (dev.lookup("a").unwrap().ino, dev.lookup("a/b/c.srm").unwrap().ino);
    dev.stop();
    let dev = Device::start(&remote, dir.path());
    let after = (dev.lookup("a").unwrap().ino, dev.lookup("a/b/c.srm").unwrap().ino);
    assert_eq!(before, after);
}

#[test]
fn a_write_never_closed_before_a_crash_is_detected_and_uploaded_at_next_start() {
    let remote = FakeRemote::new();
    remote.set_offline(true);
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    dev.write_file("snes/sm.srm", b"v1");
    let ino = dev.lookup("snes/sm.srm").unwrap().ino;
    let fh = dev.fs.open(ino, libc::O_WRONLY).unwrap();
    dev.fs.write(fh, 0, b"v2 longer").unwrap();
    // Crash: no flush, no release, the daemon is gone.
    dev.stop();
    remote.set_offline(false);
    let dev = Device::start(&remote, dir.path());
    wait_until(Duration::from_secs(10), "upload of the unclosed write", || {
        (remote.content("snes/sm.srm").as_deref() == Some(&b"v2 longer"[..])).then_some(())
    });
    assert_eq!(dev.read_file("snes/sm.srm").unwrap(), b"v2 longer");
}

#[test]
fn an_unlinked_open_file_keeps_serving_its_fd() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    dev.write_file("f.srm", b"still here");
    let ino = dev.lookup("f.srm").unwrap().ino;
    let fh = dev.fs.open(ino, libc::O_RDWR).unwrap();
    dev.unlink("f.srm").unwrap();
    assert!(!dev.exists("f.srm"));
    assert_eq!(dev.fs.read(fh, 0, 100).unwrap(), b"still here");
    dev.fs.write(fh, 0, b"STILL").unwrap();
    assert_eq!(dev.fs.read(fh, 0, 100).unwrap(), b"STILL here");
    assert_eq!(dev.fs.getattr(ino).unwrap().nlink, 0);
    dev.fs.release(fh).unwrap();
    assert!(dev.fs.getattr(ino).is_err());
}

#[test]
fn readdir_offsets_are_stable_while_the_directory_changes() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    for n in ["a", "b", "c", "d"] {
        dev.write_file(&format!("d/{n}.srm"), n.as_bytes());
    }
    let d = dev.lookup("d").unwrap().ino;
    let fh = dev.fs.opendir(d).unwrap();
    let first = dev.fs.readdir(fh, 0).unwrap();
    assert_eq!(first.len(), 6);
    dev.unlink("d/a.srm").unwrap();
    dev.write_file("d/e.srm", b"e");
    let (off, _) = &first[2];
    let rest: Vec<String> =
        dev.fs.readdir(fh, *off).unwrap().into_iter().map(|(_, e)| e.name).collect();
    assert_eq!(rest, ["b.srm", "c.srm", "d.srm"]);
    dev.fs.releasedir(fh);
}

#[test]
fn append_truncate_and_setattr_behave_like_posix() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    dev.write_file("log.srm", b"abc");
    let ino = dev.lookup("log.srm").unwrap().ino;
    let fh = dev.fs.open(ino, libc::O_WRONLY | libc::O_APPEND).unwrap();
    dev.fs.write(fh, 0, b"def").unwrap();
    dev.fs.release(fh).unwrap();
    assert_eq!(dev.read_file("log.srm").unwrap(), b"abcdef");
    let at = UNIX_EPOCH + Duration::from_secs(1_000_000);
    let attr = dev
        .fs
        .setattr(
            ino,
            SetAttr {
                size: Some(2),
                mode: Some(0o600),
                mtime: Some(TimeSet::At(at)),
                ..Default::default()
            },
            None,
        )
        .unwrap();
    assert_eq!((attr.size, attr.perm, attr.mtime), (2, 0o600, at));
    assert_eq!(dev.read_file("log.srm").unwrap(), b"ab");
    wait_until(DEADLINE, "truncated save uploaded", || {
        (remote.content("log.srm").as_deref() == Some(&b"ab"[..])).then_some(())
    });
}

#[test]
fn rmdir_refuses_a_non_empty_directory_and_xattr_free_statfs_has_real_numbers() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    dev.write_file("d/x.srm", b"x");
    assert_eq!(dev.fs.rmdir(1, "d").unwrap_err().errno(), libc::ENOTEMPTY);
    dev.unlink("d/x.srm").unwrap();
    dev.fs.rmdir(1, "d").unwrap();
    let st = dev.fs.statfs().unwrap();
    assert!(st.blocks > 0 && st.bsize > 0);
}

#[test]
fn a_directory_links_its_subdirectories_through_mkdir_rename_rmdir_and_a_remount() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    let nlink = |dev: &Device, path: &str| dev.lookup(path).unwrap().nlink;
    // `mkdirs` makes the directories above a path's last component.
    dev.mkdirs("a/b/-");
    dev.mkdirs("a/c/x/-");
    dev.mkdirs("d/-");
    dev.write_file("a/f.srm", b"f");
    let (a, d) = (dev.lookup("a").unwrap().ino, dev.lookup("d").unwrap().ino);
    let rename = |from: u64, name: &str, to: u64, new_name: &str| {
        dev.fs.rename(from, name, to, new_name, RenameOptions::default()).unwrap();
    };
    // (after, a's link count, d's link count): 2 plus the subdirectories, files not counted.
    let mut seen = vec![("start", nlink(&dev, "a"), nlink(&dev, "d"))];
    rename(a, "b", d, "b");
    seen.push(("a/b moved to d/b", nlink(&dev, "a"), nlink(&dev, "d")));
    rename(a, "f.srm", d, "f.srm");
    seen.push(("a/f.srm moved to d", nlink(&dev, "a"), nlink(&dev, "d")));
    rename(a, "c", a, "c2");
    seen.push(("a/c renamed in place", nlink(&dev, "a"), nlink(&dev, "d")));
    dev.fs.rmdir(dev.lookup("a/c2").unwrap().ino, "x").unwrap();
    dev.fs.rmdir(a, "c2").unwrap();
    seen.push(("a/c2 removed", nlink(&dev, "a"), nlink(&dev, "d")));
    let want = [
        ("start", 4, 2),
        ("a/b moved to d/b", 3, 3),
        ("a/f.srm moved to d", 3, 3),
        ("a/c renamed in place", 3, 3),
        ("a/c2 removed", 2, 3),
    ];
    assert_eq!(seen, want);
    dev.stop();
    let dev = Device::start(&remote, dir.path());
    assert_eq!((nlink(&dev, "a"), nlink(&dev, "d")), (2, 3), "the same after a remount");
    assert_eq!(dev.fs.getattr(ROOT_INO).unwrap().nlink, 2 + 2, "the root: a and d");
}
