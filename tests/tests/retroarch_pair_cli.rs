//! `savesync-server pair --kind retroarch` with the real binaries: what it prints is exactly
//! what RetroArch needs (typed into the replayed RetroArch, it syncs), the device is listed,
//! and `devices revoke` from another process cuts RetroArch off with a `401`.

use savesync_tests::{RetroArch, ServerProcess, server_bin};
use std::process::{Command, Output};

fn admin(server: &ServerProcess, args: &[&str]) -> Output {
    let out = Command::new(server_bin())
        .args(args)
        .arg("--data-dir")
        .arg(server.data_dir())
        .env("NO_COLOR", "1")
        .output()
        .expect("run savesync-server");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The value after `label` on its line of `text`.
fn field<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"))
}

#[test]
fn pair_kind_retroarch_prints_settings_that_sync_and_revoke_cuts_them_off() {
    let mut server = ServerProcess::start();
    let out = admin(
        &server,
        &[
            "pair",
            "--user",
            "alice",
            "--kind",
            "retroarch",
            "--name",
            "deck",
            "--prefix",
            "retroarch/",
            "--public-url",
            server.url(),
        ],
    );
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{printed}");
    assert_eq!(field(&printed, "Cloud Sync Backend:"), "webdav");
    let url = field(&printed, "Cloud Storage URL:");
    assert_eq!(url, format!("{}/dav/", server.url()));
    let username = field(&printed, "Username:");
    assert_eq!(username, "deck");
    let password = field(&printed, "Password:");
    assert!(password.starts_with("ss_"), "{password}");

    let deck = RetroArch::at(url, username, password);
    deck.write("saves/mgba/Golden Sun.srm", b"sram");
    let outcome = deck.sync();
    assert!(outcome.began && !outcome.failures, "{outcome:?}");

    let list = String::from_utf8_lossy(&admin(&server, &["devices", "list"]).stdout).into_owned();
    let line = list.lines().find(|l| l.contains("deck")).expect("the device is listed");
    assert!(line.contains("retroarch") && line.contains("active"), "{line}");
    let id = line.split_whitespace().next().unwrap().to_owned();
    admin(&server, &["devices", "revoke", &id]);
    let outcome = deck.sync();
    assert!(!outcome.began, "a revoked device is refused at OPTIONS");
    assert!(deck.take_log().last().unwrap().ends_with(" 401"));
    assert!(server.stop().success());
}
