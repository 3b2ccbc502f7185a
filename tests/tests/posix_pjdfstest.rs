//! POSIX conformance: the pjdfstest suite (the Rust rewrite, `cargo install pjdfstest`) run
//! as root inside a savesync mount (allow_other), with `tests/fixtures/pjdfstest.toml`.
//!
//! That config lists every test case known to fail on the mount under
//! `expected_failures`, each with a one-line reason. pjdfstest itself exits non-zero on a
//! failure that is not listed (a regression) AND on a listed case that passes (the list is
//! stale: remove the line), so this test only has to demand a zero exit.
//!
//! Needs root (the suite chowns files and switches to the dummy users `nobody`/`daemon`
//! named in the config). Without root, FUSE or pjdfstest it is skipped visibly, except
//! under `CI=true`, where it fails.

use savesync_tests::{Device, TestServer, require_fuse};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The whole suite takes well under a minute on a plain directory; a hung FUSE request
/// must not hang CI.
const SUITE_DEADLINE: Duration = Duration::from_secs(600);

#[test]
fn pjdfstest_on_the_mount_passes_except_the_listed_expected_failures() {
    if !require_root_and_pjdfstest() || !require_fuse() {
        return;
    }
    let server = TestServer::start_blocking();
    let mut device = Device::pair(&server, "posix", "pjdfstest-device");
    device.mount();
    let work_dir = device.path("pjdfstest");
    std::fs::create_dir_all(&work_dir).expect("create the pjdfstest work dir on the mount");

    // pjdfstest binds unix sockets at <dir>/.tmpXXXXXX/.tmpXXXXXX/<32 chars>[/<32 chars>],
    // and sun_path holds 107 bytes: below the device's long mountpoint that fails with
    // ENAMETOOLONG before the mount is even asked. A short symlink outside the mount keeps
    // every socket path within the limit (the kernel resolves it; the mount never sees it).
    let short_dir =
        tempfile::Builder::new().prefix("pjd").tempdir().expect("dir for the short path");
    let short_path = short_dir.path().join("m");
    std::os::unix::fs::symlink(&work_dir, &short_path).expect("short symlink to the work dir");

    let log_dir = tempfile::tempdir().expect("dir for the pjdfstest log");
    let (passed, log) = run_pjdfstest(&short_path, &log_dir.path().join("pjdfstest.log"));
    device.unmount();

    let summary = log.lines().rev().find(|l| l.contains("Summary:")).unwrap_or("(no summary)");
    println!("pjdfstest on the savesync mount: {summary}");
    let problems: Vec<&str> =
        log.lines().filter(|l| l.contains("FAILED") || l.contains("PASSED UNEXPECTEDLY")).collect();
    assert!(
        passed,
        "pjdfstest found regressions or stale expected failures (fix the mount, or list the \
         case in tests/fixtures/pjdfstest.toml with a reason):\n{}\n{summary}\n\nfull log:\n{log}",
        problems.join("\n")
    );
}

fn config_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pjdfstest.toml")
}

/// `pjdfstest` from PATH or `~/.cargo/bin` (where `cargo install` puts it).
fn pjdfstest_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("pjdfstest"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin/pjdfstest"));
    on_path.chain(cargo_home).find(|p| p.is_file())
}

fn require_root_and_pjdfstest() -> bool {
    // The effective uid from /proc: no unsafe libc call needed.
    let is_root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(str::to_owned))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"));
    let problem = if !is_root {
        Some("it must run as root (chown, dummy users)")
    } else if pjdfstest_bin().is_none() {
        Some("pjdfstest is not installed (cargo install pjdfstest --locked, or .ci/install-deps)")
    } else {
        None
    };
    let Some(problem) = problem else { return true };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("pjdfstest conformance run under CI=true: {problem}");
    }
    eprintln!("SKIPPED: pjdfstest conformance run: {problem}");
    false
}

/// Runs the suite in `dir`, output to `log_path`; returns (exit status was 0, the log).
/// Panics on the deadline.
fn run_pjdfstest(dir: &Path, log_path: &Path) -> (bool, String) {
    let bin = pjdfstest_bin().expect("checked by require_root_and_pjdfstest");
    let log = std::fs::File::create(log_path).expect("create the pjdfstest log");
    let mut child = Command::new(bin)
        .arg("-c")
        .arg(config_path())
        .arg("-p")
        .arg(dir)
        .current_dir(dir)
        // No colour codes in the log we parse.
        .env("NO_COLOR", "1")
        .env("CLICOLOR", "0")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone the log handle"))
        .stderr(log)
        .spawn()
        .expect("spawn pjdfstest");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll pjdfstest") {
            break status;
        }
        if start.elapsed() > SUITE_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "pjdfstest ran longer than {SUITE_DEADLINE:?}; a request on the mount hung?\n{}",
                std::fs::read_to_string(log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(log_path).expect("read the pjdfstest log");
    println!("pjdfstest exited with {status} after {:.1?}", start.elapsed());
    (status.success(), text)
}
