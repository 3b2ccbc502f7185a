//! Names that look the same are the same save, through a real mount and server (issue 7,
//! item 8): a name a program creates in NFD is the NFC save and either spelling finds it;
//! a second name that differs only in case from a sibling is EEXIST (a case-insensitive
//! re-export would show one file); `.conflict` in any case or with trailing dots and
//! spaces is reserved; invisible formatting characters are refused.

use savesync_tests::{SoloDevice, dir_names, poll_until, save_bytes, wait_until};
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

const USER: &str = "nina";
const UPLOAD_DEADLINE: Duration = Duration::from_secs(10);
const NFC: &str = "Pok\u{e9}mon Emerald.sav";
const NFD: &str = "Poke\u{301}mon Emerald.sav";

/// Write a real save and wait for it on the server: a barrier showing the uploader ran.
fn upload_sentinel(t: &SoloDevice) {
    let bytes = save_bytes(7, 64);
    std::fs::write(t.a.path("sentinel.sav"), &bytes).unwrap();
    let ok = poll_until(UPLOAD_DEADLINE, || t.view.has("sentinel.sav", &bytes).then_some(()));
    assert!(ok.is_some(), "the sentinel save reached the server");
}

#[test]
fn a_name_created_in_nfd_is_the_nfc_save_and_either_spelling_finds_it() {
    let Some(t) = SoloDevice::start(USER, "macbook") else { return };
    std::fs::create_dir(t.a.path("gba")).unwrap();
    std::fs::write(t.a.path(&format!("gba/{NFD}")), b"written as NFD").unwrap();
    let nfc_path = format!("gba/{NFC}");
    wait_until(UPLOAD_DEADLINE, "the NFC save on the server", || {
        t.view.has(&nfc_path, b"written as NFD").then_some(())
    });
    assert_eq!(t.view.saves().keys().cloned().collect::<Vec<_>>(), std::slice::from_ref(&nfc_path));

    // One file: the listing shows the NFC name, and both lookups find the same inode.
    assert_eq!(dir_names(&t.a.path("gba")).unwrap().into_iter().collect::<Vec<_>>(), [NFC]);
    let by_nfc = std::fs::metadata(t.a.path(&nfc_path)).unwrap();
    let by_nfd = std::fs::metadata(t.a.path(&format!("gba/{NFD}"))).unwrap();
    assert_eq!(by_nfc.ino(), by_nfd.ino());
    assert_eq!(std::fs::read(t.a.path(&nfc_path)).unwrap(), b"written as NFD");

    // Writing through the other spelling updates the same save.
    std::fs::write(t.a.path(&nfc_path), b"then as NFC").unwrap();
    wait_until(UPLOAD_DEADLINE, "the update", || {
        t.view.has(&nfc_path, b"then as NFC").then_some(())
    });
    assert_eq!(std::fs::read(t.a.path(&format!("gba/{NFD}"))).unwrap(), b"then as NFC");
    // Unlinking through the NFD spelling removes the save; no stale alias stays behind.
    std::fs::remove_file(t.a.path(&format!("gba/{NFD}"))).unwrap();
    assert!(!t.a.path(&nfc_path).exists());
    assert!(!t.a.path(&format!("gba/{NFD}")).exists());
    wait_until(UPLOAD_DEADLINE, "the delete", || t.view.saves().is_empty().then_some(()));
}

#[test]
fn a_second_name_differing_only_in_case_is_eexist_and_a_case_only_rename_works() {
    let Some(t) = SoloDevice::start(USER, "deck") else { return };
    std::fs::create_dir(t.a.path("snes")).unwrap();
    std::fs::write(t.a.path("snes/Zelda.srm"), b"zelda").unwrap();
    std::fs::write(t.a.path("snes/other.srm"), b"other").unwrap();

    let exists = |what: &str, result: std::io::Result<()>| {
        let err = result.expect_err(what);
        assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{what}: {err}");
    };
    exists("create zelda.srm", std::fs::write(t.a.path("snes/zelda.srm"), b"x"));
    exists("create ZELDA.SRM", std::fs::write(t.a.path("snes/ZELDA.SRM"), b"x"));
    exists("mkdir zelda.SRM", std::fs::create_dir(t.a.path("snes/zelda.SRM")));
    exists("mkdir SNES", std::fs::create_dir(t.a.path("SNES")));
    exists(
        "rename onto zelda.srm",
        std::fs::rename(t.a.path("snes/other.srm"), t.a.path("snes/zelda.srm")),
    );
    exists(
        "symlink zelda.srm",
        std::os::unix::fs::symlink("other.srm", t.a.path("snes/zelda.srm")),
    );
    assert_eq!(
        dir_names(&t.a.path("snes")).unwrap().into_iter().collect::<Vec<_>>(),
        ["Zelda.srm", "other.srm"]
    );
    // Replacing the exact name is no second name (the temp-file-then-rename pattern).
    std::fs::write(t.a.path("snes/Zelda.srm.tmp"), b"zelda v2").unwrap();
    std::fs::rename(t.a.path("snes/Zelda.srm.tmp"), t.a.path("snes/Zelda.srm")).unwrap();
    // The two saves upload concurrently: wait for both, then check nothing else arrived.
    wait_until(UPLOAD_DEADLINE, "the replaced save and other.srm", || {
        (t.view.has("snes/Zelda.srm", b"zelda v2") && t.view.has("snes/other.srm", b"other"))
            .then_some(())
    });
    assert_eq!(
        t.view.saves().keys().cloned().collect::<Vec<_>>(),
        ["snes/Zelda.srm", "snes/other.srm"]
    );

    // Renaming a save to another case of its own name is allowed, and the server follows.
    std::fs::rename(t.a.path("snes/Zelda.srm"), t.a.path("snes/ZELDA.srm")).unwrap();
    wait_until(Duration::from_secs(20), "the case-only rename on the server", || {
        let saves = t.view.saves();
        (saves.keys().cloned().collect::<Vec<_>>() == ["snes/ZELDA.srm", "snes/other.srm"])
            .then_some(())
    });
    assert!(t.view.has("snes/ZELDA.srm", b"zelda v2"));
}

#[test]
fn reserved_conflict_spellings_and_invisible_characters_are_refused() {
    let Some(t) = SoloDevice::start(USER, "deck") else { return };
    let refused = [
        "game.srm.CONFLICT",
        "game.srm.Conflict",
        "game.srm.conflict.",
        "game.srm.conflict ",
        "ev\u{202E}lis.srm",
        "zero\u{200B}width.srm",
        "bom\u{FEFF}.srm",
        "line\u{2028}sep.srm",
    ];
    for bad in refused {
        let err = std::fs::write(t.a.path(bad), b"x").expect_err(bad);
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{bad:?}: {err}");
        assert!(!t.a.path(bad).exists(), "{bad:?} was not created");
        let err = std::fs::create_dir(t.a.path(bad)).expect_err(bad);
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "mkdir {bad:?}: {err}");
    }
    // The longest allowed name leaves room for its conflict copy's suffix.
    let longest = "n".repeat(246);
    std::fs::write(t.a.path(&longest), b"long").unwrap();
    let err = std::fs::write(t.a.path(&"n".repeat(247)), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENAMETOOLONG), "{err}");
    // Uploads run concurrently, so the sentinel may overtake the long name: wait for both.
    let ok = poll_until(UPLOAD_DEADLINE, || t.view.has(&longest, b"long").then_some(()));
    assert!(ok.is_some(), "the longest allowed name reached the server");
    upload_sentinel(&t);
    assert_eq!(
        t.view.saves().keys().cloned().collect::<Vec<_>>(),
        [longest, "sentinel.sav".into()]
    );
}

#[test]
fn a_save_path_of_path_max_minus_one_bytes_syncs_through_the_mount() {
    let Some(t) = SoloDevice::start(USER, "deck") else { return };
    // 20 directories of 200 bytes and a 75-byte file name: 4,095 bytes below the mount.
    // The absolute path is longer than PATH_MAX, so a shell walks down with relative `cd`s.
    let dir = "d".repeat(200);
    let file = "f".repeat(75);
    let rel = format!("{}/{file}", vec![dir.as_str(); 20].join("/"));
    assert_eq!(rel.len(), 4095);
    let script =
        format!("{}printf 'deep save' > {file}", format!("mkdir {dir} && cd {dir} && ").repeat(20));
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(t.a.mountpoint())
        .status()
        .unwrap();
    assert!(status.success(), "writing the deep save through the mount");
    wait_until(UPLOAD_DEADLINE, "the 4,095-byte save path on the server", || {
        t.view.has(&rel, b"deep save").then_some(())
    });
}
