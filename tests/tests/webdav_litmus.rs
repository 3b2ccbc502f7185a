//! litmus (the WebDAV conformance suite, Debian package `litmus`), its `basic` tests, against
//! the server's WebDAV face on loopback. The face serves RetroArch's dialect, not a general
//! file server, so some checks fail by design; [`EXPECTED`] lists every check with the
//! result it must have and why, and the test fails on any change either way (a regression,
//! or a fix that should update the table and docs/protocol.md).
//!
//! litmus runs inside `saves/` (the base URL it is given is `/dav/saves/`), because only
//! RetroArch's folders are writable.

use savesync_tests::TestServer;
use std::process::Command;

/// Every `basic` check: (name, passes, why it fails when it does).
const EXPECTED: &[(&str, bool, &str)] = &[
    ("init", true, ""),
    ("begin", true, ""),
    ("options", true, ""),
    ("put_get", true, ""),
    ("put_get_utf8_segment", true, ""),
    ("put_no_parent", false, "PUT needs no parent folder: the library has no folders of its own"),
    ("mkcol_over_plain", true, ""),
    ("delete", true, ""),
    ("delete_null", true, ""),
    ("delete_fragment", true, ""),
    ("mkcol", true, ""),
    ("mkcol_again", false, "an empty folder is not remembered, so a second MKCOL is 201 again"),
    ("delete_coll", true, ""),
    (
        "mkcol_no_parent",
        false,
        "MKCOL needs no parent either (RetroArch creates each level anyway)",
    ),
    ("mkcol_with_body", true, ""),
    ("finish", true, ""),
];

/// Whether `litmus` is installed; panics under `CI=true` when it is not.
fn require_litmus() -> bool {
    if Command::new("litmus").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    let message = "litmus is not installed (Debian package `litmus`, see .ci/install-deps)";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}; CI=true, so a missing tool is a failure");
    }
    eprintln!("SKIPPED: {message}");
    false
}

/// `(name, passed)` for each check, in order. litmus redraws its progress with `\r`, prints
/// `N. name....... pass` or `FAIL (...)`, and puts a warning's verdict on a line of its own
/// (`....... pass (with 1 warning)`), so the verdict belongs to the last check named.
fn parse(output: &str) -> Vec<(String, bool)> {
    let mut results: Vec<(String, bool)> = Vec::new();
    let mut current: Option<String> = None;
    for segment in output.split(['\r', '\n']) {
        let segment = segment.trim();
        let rest = match segment.split_once(". ") {
            Some((number, rest)) if number.parse::<u32>().is_ok() => {
                current = Some(rest.split('.').next().unwrap_or_default().trim().to_owned());
                rest
            }
            _ => segment,
        };
        let verdict = rest.trim_start_matches(|c| c != '.').trim_start_matches('.').trim();
        let passed = if verdict.starts_with("pass") {
            true
        } else if verdict.starts_with("FAIL") {
            false
        } else {
            continue;
        };
        if let Some(name) = current.take() {
            results.push((name, passed));
        }
    }
    results
}

#[test]
fn litmus_basic_passes_exactly_the_checks_listed() {
    if !require_litmus() {
        return;
    }
    let server = TestServer::start_blocking();
    let creds = server.retroarch_device("litmus", "litmus", "litmus-root");
    let work = tempfile::tempdir().unwrap();
    let output = Command::new("litmus")
        .args(["--keep-going", &format!("{}/dav/saves/", server.url())])
        .args([&creds.username, &creds.password])
        .env("TESTS", "basic")
        .current_dir(work.path())
        .output()
        .expect("run litmus");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    let results = parse(&stdout);
    let names: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
    let expected: Vec<&str> = EXPECTED.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(names, expected, "litmus ran other checks than listed");
    let mut wrong = Vec::new();
    for ((name, passed), (_, should, why)) in results.iter().zip(EXPECTED) {
        if passed != should {
            wrong.push(format!("{name}: passed={passed}, expected {should} ({why})"));
        }
    }
    let passes = results.iter().filter(|(_, p)| *p).count();
    println!("litmus basic: {passes} of {} checks pass", results.len());
    assert!(wrong.is_empty(), "unexpected litmus results:\n{}", wrong.join("\n"));
}
