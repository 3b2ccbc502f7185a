//! `savesync status --wait`: returns 0 only once the server holds every closed save, fails
//! with what still waits when its timeout passes (server down) or when no daemon runs to
//! sync the queue, and succeeds again once the daemon and the server are back.

use savesync_tests::{Device, SoloDevice, TestServer, save_bytes};
use std::process::Output;

const USER: &str = "wren";

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn status_wait_returns_once_the_server_holds_every_closed_save() {
    let Some(SoloDevice { a, view, server: _server }) = SoloDevice::start(USER, "handheld") else {
        return;
    };
    std::fs::create_dir_all(a.path("gba")).unwrap();
    let saves: Vec<(String, Vec<u8>)> =
        (0..60).map(|i| (format!("gba/slot-{i}.sav"), save_bytes(900 + i, 4096))).collect();
    for (p, b) in &saves {
        std::fs::write(a.path(p), b).unwrap();
    }
    let out = a.run_cli(&["status", "--wait", "--timeout", "25"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "status --wait: {}\n{stdout}\n{stderr}", out.status);
    // No polling here: the command returned, so the server must hold every save now.
    for (p, b) in &saves {
        assert!(view.has(p, b), "{p} is on the server once status --wait returned");
    }
    assert!(
        stdout.contains("pending:    0 save(s)"),
        "the status printed after the wait:\n{stdout}"
    );
}

#[test]
fn status_wait_fails_with_what_still_waits_while_the_server_is_down_or_nothing_runs() {
    let Some(SoloDevice { mut a, view, mut server }) = SoloDevice::start(USER, "deck") else {
        return;
    };
    std::fs::create_dir_all(a.path("snes")).unwrap();
    server.stop_blocking();
    let saves: Vec<(String, Vec<u8>)> =
        (0..3).map(|i| (format!("snes/offline-{i}.srm"), save_bytes(950 + i, 2048))).collect();
    for (p, b) in &saves {
        std::fs::write(a.path(p), b).unwrap();
    }

    // The daemon runs but cannot reach the server: the timeout passes.
    let out = a.run_cli(&["status", "--wait", "--timeout", "2"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "status --wait times out: {stdout}\n{stderr}");
    assert!(
        stderr.contains("3 save(s) still wait to sync after 2 s"),
        "the error says what still waits:\n{stderr}"
    );
    assert!(stderr.contains("waiting: 3 save(s) to sync"), "progress was shown:\n{stderr}");

    // No daemon at all: nothing would ever sync them, so it says so at once.
    a.unmount();
    let out = a.run_cli(&["status", "--wait"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "status --wait without a daemon: {stdout}\n{stderr}");
    assert!(
        stderr.contains("3 save(s) wait to sync and no daemon runs for this profile"),
        "the error names the missing daemon:\n{stderr}"
    );

    // Both back: the wait ends with every save on the server.
    server.restart_blocking();
    a.mount();
    let out = a.run_cli(&["status", "--wait", "--timeout", "25"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "status --wait after the outage: {stdout}\n{stderr}");
    for (p, b) in &saves {
        assert!(view.has(p, b), "{p} reached the server before status --wait returned");
    }
}

#[test]
fn status_timeout_needs_wait() {
    let server = TestServer::start_blocking();
    let a = Device::pair(&server, USER, "pc");
    let out = a.run_cli(&["status", "--timeout", "5"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "--timeout alone is refused");
    assert!(stderr.contains("--wait"), "clap names the missing flag:\n{stderr}");
}

#[test]
fn status_names_the_mount_as_soon_as_the_kernel_lists_it() {
    let server = TestServer::start_blocking();
    let mut a = Device::pair(&server, USER, "ally");
    // Each round asks the moment the kernel lists the mount, before the engine has started;
    // several rounds, since the gap this closes was milliseconds wide.
    for round in 0..8 {
        a.mount();
        let out = a.run_cli(&["status", "--json"]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "status --json, round {round}: {stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).expect("status --json is JSON");
        assert_eq!(v["mounted"], true, "round {round}: status right after mounting:\n{stdout}");
        a.unmount();
    }
}
