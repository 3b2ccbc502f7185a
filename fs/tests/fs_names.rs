//! Name rules in the filesystem layer (issue 7, item 8), without FUSE: a new name that
//! case-folds onto a sibling is EEXIST for every way of making a name, a case-only rename
//! of the entry itself is not, and the conflict copy of the longest save name is a valid
//! name the mount can look up; a case-only rename reaches the server even when the upload
//! of the new name overtakes the delete of the old one.

mod common;

use common::{DEADLINE, Device, wait_until};
use savesync_core::{MAX_COMPONENT_BYTES, SavePath};
use savesync_fs::fake_remote::FakeRemote;
use savesync_fs::savefs::RenameOptions;
use savesync_fs::sync::{Outcome, SyncMode};
use savesync_fs::tree::ROOT_INO;
use std::time::Duration;

#[test]
fn every_way_of_making_a_case_variant_of_a_sibling_is_eexist() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    dev.write_file("snes/Zelda.srm", b"z");
    dev.write_file("snes/other.srm", b"o");
    let snes = dev.lookup("snes").unwrap().ino;
    let other = dev.lookup("snes/other.srm").unwrap().ino;
    let fs = &dev.fs;
    let eexist = |what: &str, errno: i32| assert_eq!(errno, libc::EEXIST, "{what}");
    eexist("create", fs.create(snes, "zelda.srm", 0o644, 0, 0, 0).unwrap_err().errno());
    eexist("mkdir", fs.mkdir(snes, "ZELDA.SRM", 0o755, 0, 0).unwrap_err().errno());
    eexist("mkdir at root", fs.mkdir(ROOT_INO, "SNES", 0o755, 0, 0).unwrap_err().errno());
    eexist("symlink", fs.symlink(snes, "zelda.SRM", b"x", 0, 0).unwrap_err().errno());
    eexist("mknod", fs.mknod(snes, "ZeLdA.srm", libc::S_IFIFO, 0, 0, 0).unwrap_err().errno());
    let rename = fs.rename(snes, "other.srm", snes, "zelda.srm", RenameOptions::default());
    eexist("rename", rename.unwrap_err().errno());
    // The refused rename left everything in place.
    assert_eq!(dev.lookup("snes/other.srm").unwrap().ino, other);
    // Full Unicode folding: sharp s and "SS" are one name on a case-insensitive share.
    dev.write_file("gba/stra\u{df}e.sav", b"s");
    let gba = dev.lookup("gba").unwrap().ino;
    eexist("folded", fs.create(gba, "STRASSE.sav", 0o644, 0, 0, 0).unwrap_err().errno());

    // A case-only rename of the entry itself is allowed, and so is replacing an exact name.
    let zelda = dev.lookup("snes/Zelda.srm").unwrap().ino;
    fs.rename(snes, "Zelda.srm", snes, "ZELDA.srm", RenameOptions::default()).unwrap();
    assert_eq!(dev.lookup("snes/ZELDA.srm").unwrap().ino, zelda);
    assert!(!dev.exists("snes/Zelda.srm"));
    fs.rename(snes, "other.srm", snes, "ZELDA.srm", RenameOptions::default()).unwrap();
    assert_eq!(dev.lookup("snes/ZELDA.srm").unwrap().ino, other);
    // Once the name is gone its case variants are free again.
    dev.unlink("snes/ZELDA.srm").unwrap();
    fs.create(snes, "zelda.srm", 0o644, 0, 0, 0).unwrap();
}

#[test]
fn the_conflict_copy_of_the_longest_save_name_is_a_valid_name() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    let name = format!("snes/{}", "n".repeat(MAX_COMPONENT_BYTES));
    dev.write_file(&name, b"base");
    wait_until(DEADLINE, "base uploaded", || remote.head(&name));
    wait_until(DEADLINE, "queue drained", || (dev.pending() == 0).then_some(()));
    remote.set_offline(true);
    dev.write_file(&name, b"mine");
    remote.set_offline(false);
    remote.put(&name, b"theirs");
    let copy = format!("{name}.conflict");
    assert!(copy.rsplit('/').next().unwrap().len() <= 255, "NAME.conflict fits in NAME_MAX");
    wait_until(DEADLINE, "the conflict copy", || dev.is_conflict_copy(&copy).then_some(()));
    assert_eq!(dev.read_file(&copy).unwrap(), b"theirs");
    // Names that long that do not exist are still ENAMETOOLONG, not ENOENT.
    let snes = dev.lookup("snes").unwrap().ino;
    let missing = "m".repeat(MAX_COMPONENT_BYTES + 1);
    assert_eq!(dev.fs.lookup(snes, &missing).unwrap_err().errno(), libc::ENAMETOOLONG);
}

#[test]
fn a_case_only_rename_whose_upload_overtakes_the_delete_removes_the_old_name_first() {
    let remote = FakeRemote::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start(&remote, dir.path());
    dev.write_file("snes/zelda.srm", b"z");
    wait_until(DEADLINE, "uploaded", || remote.head("snes/zelda.srm"));
    wait_until(DEADLINE, "queue drained", || (dev.pending() == 0).then_some(()));
    dev.stop();
    // Same device, with a debounce long enough that its own uploader stays out of the way:
    // the test runs the upload of the new name before the delete of the old one.
    let dev = Device::start_with(&remote, dir.path(), |c| c.debounce = Duration::from_secs(600));
    let snes = dev.lookup("snes").unwrap().ino;
    dev.fs.rename(snes, "zelda.srm", snes, "Zelda.srm", RenameOptions::default()).unwrap();
    let new = SavePath::parse("snes/Zelda.srm").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let outcome = rt.block_on(dev.fs.engine().sync_path(&new, SyncMode::Background));
    assert!(matches!(outcome, Ok(Outcome::Done)), "{outcome:?}");
    assert_eq!(remote.live_paths(), ["snes/Zelda.srm"]);
    assert_eq!(remote.content("snes/Zelda.srm").as_deref(), Some(&b"z"[..]));
}
