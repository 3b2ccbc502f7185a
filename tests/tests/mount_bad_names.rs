//! Names the mount must refuse or keep inside: `*.conflict` is reserved for conflict
//! copies, control characters and backslashes are not save names, and `..` never lets a
//! path reach outside the library (on the device or on the server).

use savesync_tests::{SoloDevice, poll_until, save_bytes};
use std::io::ErrorKind;
use std::time::Duration;

const USER: &str = "frank";
const UPLOAD_DEADLINE: Duration = Duration::from_secs(10);

/// Write a real save and wait for it on the server: a barrier showing the uploader ran.
fn upload_sentinel(t: &SoloDevice) {
    let bytes = save_bytes(999, 64);
    std::fs::write(t.a.path("sentinel.sav"), &bytes).unwrap();
    let ok = poll_until(UPLOAD_DEADLINE, || t.view.has("sentinel.sav", &bytes).then_some(()));
    assert!(ok.is_some(), "the sentinel save reached the server");
}

#[test]
fn creating_a_conflict_name_through_the_mount_fails() {
    let Some(t) = SoloDevice::start(USER, "handheld-a") else { return };
    std::fs::write(t.a.path("game.srm"), b"mine").unwrap();
    let created = std::fs::write(t.a.path("game.srm.conflict"), b"forged");
    assert!(created.is_err(), "creating game.srm.conflict must fail");
    assert!(!t.a.path("game.srm.conflict").exists(), "no forged conflict copy exists");
    assert!(std::fs::create_dir(t.a.path("dir.conflict")).is_err(), "mkdir x.conflict fails");
    let renamed = std::fs::rename(t.a.path("game.srm"), t.a.path("other.conflict"));
    assert!(renamed.is_err(), "renaming a save to a .conflict name fails");
    assert_eq!(std::fs::read(t.a.path("game.srm")).unwrap(), b"mine", "the save is untouched");
    upload_sentinel(&t);
    let saves = t.view.saves();
    assert!(
        saves.keys().all(|p| !p.ends_with(".conflict")),
        "no .conflict name reached the server: {saves:?}"
    );
}

#[test]
fn names_with_control_characters_or_backslashes_are_refused() {
    let Some(t) = SoloDevice::start(USER, "handheld-a") else { return };
    for bad in ["bad\nname.srm", "tab\there.srm", "back\\slash.srm"] {
        let err = std::fs::write(t.a.path(bad), b"x").expect_err(bad);
        assert_ne!(err.kind(), ErrorKind::NotFound, "{bad:?}: a clear refusal, got {err}");
        assert!(!t.a.path(bad).exists(), "{bad:?} was not created");
    }
    upload_sentinel(&t);
    assert_eq!(t.view.saves().keys().cloned().collect::<Vec<_>>(), ["sentinel.sav"]);
}

#[test]
fn dot_dot_never_escapes_the_library() {
    let Some(t) = SoloDevice::start(USER, "handheld-a") else { return };
    std::fs::create_dir_all(t.a.path("snes/deep")).unwrap();
    // `..` inside the mount stays inside: this is the save `snes/top.srm`.
    std::fs::write(t.a.path("snes/deep/../top.srm"), b"top").unwrap();
    // Leaving the mountpoint with `..` leaves the library: a plain local file, never synced.
    let outside = t.a.mountpoint().join("snes/../../outside.srm");
    std::fs::write(&outside, b"outside").unwrap();
    let escaped_file = t.a.mountpoint().parent().unwrap().join("outside.srm");
    assert_eq!(std::fs::read(&escaped_file).unwrap(), b"outside", "it lives outside the mount");

    let ok = poll_until(UPLOAD_DEADLINE, || t.view.has("snes/top.srm", b"top").then_some(()));
    assert!(ok.is_some(), "snes/deep/../top.srm was uploaded as snes/top.srm");
    upload_sentinel(&t);
    let saves = t.view.saves();
    assert_eq!(
        saves.keys().cloned().collect::<Vec<_>>(),
        ["sentinel.sav", "snes/top.srm"],
        "the server holds only saves inside the library"
    );
    assert!(saves.keys().all(|p| !p.split('/').any(|c| c == ".." || c == ".")));
}
