//! `.history` in the filesystem layer, without FUSE, against the fake server: reachable by
//! name but not listed in the root, library directories listed without a server call,
//! versions listed and read (also of a save deleted here), every change refused, nothing
//! written to the state DB, the node registry emptied by the kernel's FORGETs, and a clear
//! errno while offline.

mod common;

use common::{DEADLINE, Device, wait_until};
use savesync_fs::fake_remote::FakeRemote;
use savesync_fs::savefs::SetAttr;
use savesync_fs::savefs::history::{VIRTUAL_BASE, is_virtual};
use savesync_fs::state::InodeKind;
use savesync_fs::tree::ROOT_INO;
use std::collections::BTreeMap;

fn listing(dev: &Device, ino: u64) -> BTreeMap<String, u64> {
    let fh = dev.fs.opendir(ino).unwrap();
    let out = dev.fs.readdir(fh, 0).unwrap().into_iter().map(|(_, e)| (e.name, e.ino)).collect();
    dev.fs.releasedir(fh);
    out
}

fn errno<T: std::fmt::Debug>(r: savesync_fs::FsResult<T>) -> i32 {
    r.expect_err("should fail").errno()
}

#[test]
fn history_is_read_only_free_until_used_and_leaves_no_trace() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    for v in [&b"one"[..], b"two two"] {
        dev.write_file("snes/a.srm", v);
        wait_until(DEADLINE, "uploaded", || {
            (remote.content("snes/a.srm").as_deref() == Some(v)).then_some(())
        });
    }
    dev.write_file("snes/b.srm", b"bee");
    wait_until(DEADLINE, "b uploaded", || remote.content("snes/b.srm").map(drop));
    let inodes_before = dev.fs.state().load_inodes().unwrap();

    assert!(!listing(&dev, ROOT_INO).contains_key(".history"), "hidden from the root");
    let hist = dev.fs.lookup(ROOT_INO, ".history").unwrap();
    assert_eq!((hist.ino, hist.kind, hist.perm), (VIRTUAL_BASE, InodeKind::Dir, 0o555));
    assert_eq!(listing(&dev, hist.ino).keys().collect::<Vec<_>>(), [".", "..", "snes"]);
    assert_eq!(dev.fs.history_nodes_held(), 0, "a closed listing holds nothing");
    let snes = dev.fs.lookup(hist.ino, "snes").unwrap();
    let save = dev.fs.lookup(snes.ino, "a.srm").unwrap();
    assert!(is_virtual(snes.ino) && is_virtual(save.ino) && save.kind == InodeKind::Dir);
    assert_eq!(dev.fs.history_server_calls(), 0, "library directories cost no server call");

    let versions = listing(&dev, save.ino);
    let names: Vec<&str> = versions.keys().map(String::as_str).collect();
    let (r1, r2) = ("1970-01-01T00-00-00 unknown r1.srm", "1970-01-01T00-00-00 unknown r2.srm");
    assert_eq!(names, [".", "..", r1, r2]);
    assert_eq!(dev.fs.history_server_calls(), 1);
    let old = dev.fs.lookup(save.ino, r1).unwrap();
    assert_eq!((old.size, old.perm, old.kind), (3, 0o444, InodeKind::File));
    let fh = dev.fs.open(old.ino, libc::O_RDONLY).unwrap();
    assert_eq!(dev.fs.read(fh, 0, 100).unwrap(), b"one");
    dev.fs.release(fh).unwrap();
    assert!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().next().is_none(),
        "the downloaded copy is gone once the handle is closed"
    );

    // Every change inside is EROFS; `.history` at the root is taken.
    assert_eq!(errno(dev.fs.open(old.ino, libc::O_RDWR)), libc::EROFS);
    assert_eq!(errno(dev.fs.create(save.ino, "x.srm", 0o644, libc::O_WRONLY, 0, 0)), libc::EROFS);
    assert_eq!(errno(dev.fs.mkdir(snes.ino, "d", 0o755, 0, 0)), libc::EROFS);
    assert_eq!(errno(dev.fs.unlink(save.ino, r1)), libc::EROFS);
    assert_eq!(errno(dev.fs.rmdir(hist.ino, "snes")), libc::EROFS);
    assert_eq!(errno(dev.fs.symlink(snes.ino, "l", b"x", 0, 0)), libc::EROFS);
    let chmod = SetAttr { mode: Some(0o644), ..SetAttr::default() };
    assert_eq!(errno(dev.fs.setattr(old.ino, chmod, None)), libc::EROFS);
    let opts = savesync_fs::savefs::RenameOptions::default();
    assert_eq!(errno(dev.fs.rename(save.ino, r1, ROOT_INO, "b.srm", opts)), libc::EROFS);
    assert_eq!(errno(dev.fs.mkdir(ROOT_INO, ".history", 0o755, 0, 0)), libc::EEXIST);
    assert_eq!(errno(dev.fs.rmdir(ROOT_INO, ".history")), libc::EROFS);

    // The kernel forgetting what it looked up empties the registry.
    for (ino, n) in [(snes.ino, 1), (save.ino, 1), (old.ino, 1)] {
        dev.fs.forget(ino, n);
    }
    assert_eq!(dev.fs.history_nodes_held(), 0);

    // Nothing reached the state DB or the queue.
    assert_eq!(dev.fs.state().load_inodes().unwrap(), inodes_before);
    assert_eq!(dev.pending(), 0);
    assert_eq!(remote.live_paths(), ["snes/a.srm", "snes/b.srm"]);

    // A save deleted here keeps its history directory (its record remains).
    dev.unlink("snes/a.srm").unwrap();
    wait_until(DEADLINE, "the delete reaches the server", || {
        remote.head("snes/a.srm").filter(|h| h.deleted).map(drop)
    });
    let snes = dev.fs.lookup(hist.ino, "snes").unwrap();
    assert!(listing(&dev, snes.ino).contains_key("a.srm"), "the deleted save is listed");
    let gone = dev.fs.lookup(snes.ino, "a.srm").unwrap();
    let names: Vec<String> = listing(&dev, gone.ino).into_keys().collect();
    assert_eq!(names, [".", "..", r1, r2], "its versions, the deletion without a file");

    // Offline: a clear errno for a save never listed, the library directories still list.
    remote.set_offline(true);
    let snes = dev.fs.lookup(hist.ino, "snes").unwrap();
    let b = dev.fs.lookup(snes.ino, "b.srm").unwrap();
    assert_eq!(errno(dev.fs.opendir(b.ino)), libc::ENETUNREACH);
    assert_eq!(listing(&dev, snes.ino).len(), 4);
}
