//! `savesync history`, `cat` and `restore` on a real server with a real mount: three
//! versions written through the mount are listed, read back and restored (the mount then
//! shows the old bytes through its normal feed); a stale-base upload shows up as a
//! conflict version; bad versions and bad paths fail with a clear message.

use savesync_core::{Rev, SavePath};
use savesync_tests::{Device, SoloDevice, save_bytes, wait_for_bytes, wait_until};
use serde_json::Value;
use std::process::Output;
use std::time::Duration;

const USER: &str = "hist";
const SAVE: &str = "snes/Chrono Trigger.srm";
const DEADLINE: Duration = Duration::from_secs(10);

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} should fail but printed {:?}", out.stdout);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn history_json(dev: &Device, path: &str) -> Vec<Value> {
    let out = ok(&dev.run_cli(&["history", path, "--json"]), "history --json");
    let v: Value = serde_json::from_str(&out).expect("history --json is JSON");
    assert_eq!(v["path"], SAVE);
    v["versions"].as_array().expect("versions").clone()
}

#[test]
fn history_lists_cat_reads_and_restore_brings_back_an_old_version() {
    let Some(SoloDevice { mut a, view, server: _server }) = SoloDevice::start(USER, "deck") else {
        return;
    };
    std::fs::create_dir_all(a.path("snes")).unwrap();
    let versions = [save_bytes(1, 4096), save_bytes(2, 5000), save_bytes(3, 6000)];
    for v in &versions {
        std::fs::write(a.path(SAVE), v).unwrap();
        wait_until(DEADLINE, "the version reaches the server", || view.has(SAVE, v).then_some(()));
    }

    // history: newest first, three commits from this device with the right sizes; the same
    // answer whether the save is named in the library or as a file in the mount.
    let listed = history_json(&a, SAVE);
    let sizes: Vec<u64> = listed.iter().map(|v| v["size"].as_u64().unwrap()).collect();
    assert_eq!(sizes, [6000, 5000, 4096], "{listed:?}");
    assert!(listed.iter().all(|v| v["kind"] == "commit" && v["device"] == "deck"), "{listed:?}");
    assert_eq!(listed[0]["head"], true);
    let mount_path = a.path(SAVE);
    assert_eq!(history_json(&a, mount_path.to_str().unwrap()), listed);
    let first = listed[2]["version"].as_str().unwrap().to_owned();
    let table = ok(&a.run_cli(&["history", SAVE]), "history");
    assert!(table.contains("VERSION") && table.contains("KIND"), "a table: {table}");
    assert_eq!(table.matches(" commit").count(), 3, "three commit rows: {table}");

    // cat: the first version's bytes exactly, the live save untouched.
    let out = a.run_cli(&["cat", SAVE, "--version", &first]);
    ok(&out, "cat");
    assert!(out.stdout == versions[0], "cat gives the first bytes exactly");
    assert_eq!(std::fs::read(a.path(SAVE)).unwrap(), versions[2]);

    // restore over a head that is no longer the one the user saw: the server's
    // compare-and-swap refuses it, nothing changes, and the message says why.
    let head = listed[0]["rev"].as_u64().unwrap();
    let stale_head = (head - 1).to_string();
    let refused = a.run_cli(&["restore", SAVE, "--version", &first, "--if-head", &stale_head]);
    let err = failed(&refused, "restore over a stale head");
    assert!(
        err.contains("changed on the server") && err.contains(&format!("now rev {head}")),
        "{err}"
    );
    assert_eq!(history_json(&a, SAVE), listed, "a refused restore changes nothing");

    // restore: a new head with the first bytes, which the mount then shows.
    let restore = ["restore", SAVE, "--version", &first, "--if-head", &head.to_string()];
    let said = ok(&a.run_cli(&restore), "restore");
    assert!(said.contains("Restored") && said.contains("now the head"), "{said}");
    wait_for_bytes(&a.path(SAVE), &versions[0], DEADLINE);
    let listed = history_json(&a, SAVE);
    assert_eq!(listed.len(), 4, "the restore is a new commit: {listed:?}");
    assert_eq!((listed[0]["size"].as_u64(), &listed[0]["head"]), (Some(4096), &Value::Bool(true)));

    // A stale-base upload from another device is kept as a conflict version.
    let stale = save_bytes(4, 777);
    let path = SavePath::parse(SAVE).unwrap();
    let refused = view.block_on(view.client().upload(&path, Rev(1), stale.clone().into()));
    assert!(refused.is_err_and(|e| e.is_conflict()), "a stale base is a conflict");
    let listed = history_json(&a, SAVE);
    let conflict = listed.iter().find(|v| v["kind"] == "conflict").expect("a conflict version");
    assert_eq!(
        (conflict["size"].as_u64(), &conflict["device"]),
        (Some(777), &"e2e-observer".into())
    );
    let table = ok(&a.run_cli(&["history", SAVE]), "history");
    assert!(table.contains("conflict"), "the table shows the conflict kind: {table}");
    let label = conflict["version"].as_str().unwrap().to_owned();
    let out = a.run_cli(&["cat", SAVE, "--version", &label]);
    ok(&out, "cat of a conflict version");
    assert!(out.stdout == stale, "cat writes the conflict version's bytes");

    // Unknown version and bad paths: a clear message and a non-zero exit.
    let err = failed(&a.run_cli(&["cat", SAVE, "--version", "99"]), "cat of version 99");
    assert!(err.contains("no version 99"), "{err}");
    let err = failed(&a.run_cli(&["restore", SAVE, "--version", "99"]), "restore of 99");
    assert!(err.contains("no version 99"), "{err}");
    let err = failed(&a.run_cli(&["cat", SAVE, "--version", "latest"]), "a non-number");
    assert!(err.contains("not a version"), "{err}");
    let err = failed(&a.run_cli(&["history", "/etc/passwd"]), "history of a file outside");
    assert!(err.contains("not inside the mount"), "{err}");
    let err = failed(&a.run_cli(&["history", "snes/Nope.srm"]), "history of an unknown save");
    assert!(err.contains("has no save snes/Nope.srm"), "{err}");
    let err = failed(&a.run_cli(&["history", "../escape.srm"]), "history of ../");
    assert!(err.contains("not a save path"), "{err}");
    a.unmount();
}

#[test]
fn the_commands_work_without_a_mount_and_explain_themselves() {
    let Some(SoloDevice { mut a, view, server: _server }) = SoloDevice::start(USER, "deck") else {
        return;
    };
    std::fs::create_dir_all(a.path("snes")).unwrap();
    // The second is big enough to arrive in many chunks, which `cat` streams to stdout.
    let (one, two) = (save_bytes(5, 300), save_bytes(6, 3 * 1024 * 1024 + 17));
    for v in [&one, &two] {
        std::fs::write(a.path(SAVE), v).unwrap();
        wait_until(DEADLINE, "the version reaches the server", || view.has(SAVE, v).then_some(()));
    }
    a.unmount();
    let listed = history_json(&a, SAVE);
    let first = listed[1]["version"].as_str().unwrap().to_owned();
    let latest = listed[0]["version"].as_str().unwrap().to_owned();
    let out = a.run_cli(&["cat", SAVE, "--version", &latest]);
    ok(&out, "cat of a 3 MiB version");
    assert!(out.stdout == two, "cat streams a big version byte for byte");
    let out = a.run_cli(&["cat", SAVE, "--version", &first]);
    ok(&out, "cat without a mount");
    assert!(out.stdout == one, "cat without a mount gives the first bytes");
    let said = ok(&a.run_cli(&["restore", SAVE, "--version", &first]), "restore unmounted");
    assert!(said.contains("next sync"), "{said}");
    wait_until(DEADLINE, "the restored head", || view.has(SAVE, &one).then_some(()));
    // A file path with no live mount is refused with a hint.
    let mounted_path = a.path(SAVE);
    let err = failed(&a.run_cli(&["history", mounted_path.to_str().unwrap()]), "no mount");
    assert!(err.contains("no mount of this profile is live"), "{err}");
    for cmd in ["history", "cat", "restore"] {
        let help = ok(&a.run_cli(&[cmd, "--help"]), "--help");
        assert!(help.contains("Example") && help.contains(&format!("savesync {cmd} ")), "{help}");
    }
}
