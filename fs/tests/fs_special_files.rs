//! Local-only special files in the filesystem layer, without FUSE: symlinks, FIFOs,
//! sockets and device nodes keep stable inodes across a remount, are never uploaded,
//! queued or deleted on the server; hard links are refused with EPERM.

mod common;

use common::{DEADLINE, Device, wait_until};
use savesync_fs::fake_remote::FakeRemote;
use savesync_fs::savefs::RenameOptions;
use savesync_fs::state::InodeKind;

/// Create one of each special kind in `snes/` next to one real save, and wait until the
/// save (and only it) is on the server.
fn make_specials(dev: &Device, remote: &FakeRemote) {
    dev.write_file("snes/real.srm", b"save bytes");
    let dir = dev.lookup("snes").unwrap().ino;
    dev.fs.symlink(dir, "link", b"../elsewhere/\xff-target", 0, 0).unwrap();
    dev.fs.mknod(dir, "fifo", libc::S_IFIFO | 0o640, 0, 0, 0).unwrap();
    dev.fs.mknod(dir, "sock", libc::S_IFSOCK | 0o600, 0, 0, 0).unwrap();
    dev.fs.mknod(dir, "tty", libc::S_IFCHR | 0o600, 0x0504, 0, 0).unwrap();
    dev.fs.mknod(dir, "disk", libc::S_IFBLK | 0o600, 0x0801, 0, 0).unwrap();
    wait_until(DEADLINE, "the real save on the server and the queue empty", || {
        (remote.content("snes/real.srm").is_some() && dev.pending() == 0).then_some(())
    });
}

#[test]
fn special_files_survive_a_remount_with_their_inode_target_and_device_number() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    make_specials(&dev, &remote);
    let names = ["snes/link", "snes/fifo", "snes/sock", "snes/tty", "snes/disk"];
    let before: Vec<_> = names.iter().map(|n| dev.lookup(n).unwrap()).collect();
    dev.stop();

    let dev = Device::start(&remote, dir.path());
    let after: Vec<_> = names.iter().map(|n| dev.lookup(n).unwrap()).collect();
    assert_eq!(before, after, "same inode, kind, mode and times after a remount");
    let kinds: Vec<_> = after.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        [
            InodeKind::Symlink,
            InodeKind::Fifo,
            InodeKind::Socket,
            InodeKind::CharDev,
            InodeKind::BlockDev
        ]
    );
    assert_eq!(dev.fs.readlink(after[0].ino).unwrap(), b"../elsewhere/\xff-target");
    assert_eq!(after[0].size, b"../elsewhere/\xff-target".len() as u64, "symlink size");
    assert_eq!((after[3].rdev, after[4].rdev), (0x0504, 0x0801));
    assert_eq!(after[1].perm, 0o640);
}

#[test]
fn special_files_never_reach_the_server_or_the_queue() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    make_specials(&dev, &remote);
    assert_eq!(remote.live_paths(), ["snes/real.srm"]);
    let uploads = remote.upload_count();

    let parent = dev.lookup("snes").unwrap().ino;
    dev.fs.rename(parent, "link", parent, "link2", RenameOptions::default()).unwrap();
    dev.unlink("snes/fifo").unwrap();
    dev.unlink("snes/link2").unwrap();
    assert_eq!(dev.pending(), 0, "nothing queued for special files");
    assert_eq!(remote.upload_count(), uploads);
    assert_eq!(remote.live_paths(), ["snes/real.srm"]);
    dev.stop();

    let dev = Device::start(&remote, dir.path());
    assert!(!dev.exists("snes/fifo") && !dev.exists("snes/link2") && !dev.exists("snes/link"));
    assert!(dev.exists("snes/sock"));
}

#[test]
fn a_symlink_renamed_over_a_save_shadows_it_and_the_server_keeps_the_save() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    make_specials(&dev, &remote);
    let parent = dev.lookup("snes").unwrap().ino;
    dev.fs.rename(parent, "link", parent, "real.srm", RenameOptions::default()).unwrap();
    assert_eq!(dev.lookup("snes/real.srm").unwrap().kind, InodeKind::Symlink);
    // Like a directory of a save's name: a local-only entry never deletes a save.
    wait_until(DEADLINE, "the queue to settle", || (dev.pending() == 0).then_some(()));
    assert_eq!(remote.content("snes/real.srm").as_deref(), Some(&b"save bytes"[..]));
}

#[test]
fn hard_links_of_regular_saves_are_refused_with_eperm() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    make_specials(&dev, &remote);
    let parent = dev.lookup("snes").unwrap().ino;
    let ino = dev.lookup("snes/real.srm").unwrap().ino;
    assert_eq!(dev.fs.link(ino, parent, "second.srm").unwrap_err().errno(), libc::EPERM);
    assert!(!dev.exists("snes/second.srm"));
    assert_eq!(dev.fs.link(ino, parent, "fifo").unwrap_err().errno(), libc::EEXIST);
    assert_eq!(dev.lookup("snes/real.srm").unwrap().nlink, 1);
}

#[test]
fn hard_links_of_special_files_count_names_and_survive_a_remount() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    make_specials(&dev, &remote);
    let snes = dev.lookup("snes").unwrap().ino;
    let other = dev.mkdirs("other/x");
    let fifo = dev.lookup("snes/fifo").unwrap().ino;
    let attr = dev.fs.link(fifo, snes, "fifo2").unwrap();
    assert_eq!((attr.ino, attr.nlink), (fifo, 2));
    dev.fs.link(fifo, other, "fifo3").unwrap();
    assert_eq!(dev.lookup("other/fifo3").unwrap().nlink, 3);
    // Dropping the first name keeps the inode under the others.
    dev.unlink("snes/fifo").unwrap();
    assert_eq!(dev.lookup("snes/fifo2").unwrap().nlink, 2);
    // A rename of a second name, and over a linked target.
    dev.fs.rename(other, "fifo3", snes, "fifo4", RenameOptions::default()).unwrap();
    let sock = dev.lookup("snes/sock").unwrap().ino;
    dev.fs.link(sock, snes, "sock2").unwrap();
    dev.fs.rename(snes, "fifo4", snes, "sock2", RenameOptions::default()).unwrap();
    assert_eq!(dev.lookup("snes/sock").unwrap().nlink, 1);
    assert_eq!(dev.lookup("snes/sock2").unwrap().ino, fifo);
    dev.stop();

    let dev = Device::start(&remote, dir.path());
    let names: Vec<_> =
        ["snes/fifo2", "snes/sock2"].iter().map(|n| dev.lookup(n).unwrap()).collect();
    assert_eq!((names[0].ino, names[0].nlink), (fifo, 2));
    assert_eq!((names[1].ino, names[1].nlink), (fifo, 2));
    assert!(!dev.exists("snes/fifo") && !dev.exists("other/fifo3") && !dev.exists("snes/fifo4"));
    assert_eq!(dev.lookup("snes/sock").unwrap().nlink, 1);
    dev.unlink("snes/fifo2").unwrap();
    dev.unlink("snes/sock2").unwrap();
    assert_eq!(dev.pending(), 0);
    assert_eq!(remote.live_paths(), ["snes/real.srm"]);
    dev.stop();
    let dev = Device::start(&remote, dir.path());
    assert!(!dev.exists("snes/fifo2") && !dev.exists("snes/sock2"));
}

#[test]
fn readlink_of_a_non_symlink_and_mknod_of_an_unknown_type_are_einval() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    make_specials(&dev, &remote);
    let parent = dev.lookup("snes").unwrap().ino;
    let fifo = dev.lookup("snes/fifo").unwrap().ino;
    assert_eq!(dev.fs.readlink(fifo).unwrap_err().errno(), libc::EINVAL);
    assert_eq!(
        dev.fs.mknod(parent, "d", libc::S_IFDIR | 0o755, 0, 0, 0).unwrap_err().errno(),
        libc::EINVAL
    );
    assert_eq!(dev.fs.symlink(parent, "fifo", b"x", 0, 0).unwrap_err().errno(), libc::EEXIST);
}

#[test]
fn a_server_save_shadowed_by_a_local_symlink_is_left_alone() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    make_specials(&dev, &remote);
    remote.put("snes/link", b"other device's save");
    wait_until(DEADLINE, "the queue to settle", || (dev.pending() == 0).then_some(()));
    let link = dev.lookup("snes/link").unwrap();
    assert_eq!(link.kind, InodeKind::Symlink);
    assert_eq!(dev.fs.readlink(link.ino).unwrap(), b"../elsewhere/\xff-target");
    assert_eq!(remote.content("snes/link").as_deref(), Some(&b"other device's save"[..]));
}
