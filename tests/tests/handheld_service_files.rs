//! The device-side service files in `packaging/`, exercised for real with the host-built
//! `savesync` against a real server on loopback:
//! - the POSIX init script (`packaging/sysvinit/savesync`) under busybox ash and dash: start,
//!   status, a save really synced by the daemon it started, idempotent start and stop, a
//!   stale pidfile, an unpaired device; plus `sh -n` and shellcheck;
//! - the systemd user units (`packaging/systemd/*.service`): `systemd-analyze verify` of an
//!   instance, and their command line accepted by the real CLI.
//!
//! busybox, shellcheck and systemd-analyze are required under `CI=true` (`.ci/install-deps`
//! installs them) and a visible `SKIPPED:` otherwise.

use savesync_tests::{RemoteView, TestServer, is_fuse_mount, mount_bin, require_fuse, save_bytes};
use savesync_tests::{is_running, wait_for_bytes, wait_until};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use tempfile::TempDir;

const DEADLINE: Duration = Duration::from_secs(30);

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn init_script() -> PathBuf {
    repo_file("packaging/sysvinit/savesync")
}

/// True if `program` runs; if not, fails under `CI=true` and skips visibly otherwise.
fn require_program(program: &str, package: &str) -> bool {
    let runs = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !runs {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{program} is required under CI=true (apt-get install {package})");
        }
        eprintln!("SKIPPED: {program} is not installed (apt-get install {package})");
    }
    runs
}

/// A shell to run the init script with, as argv.
fn shell(name: &str) -> Vec<&'static str> {
    match name {
        "busybox" => vec!["busybox", "sh"],
        "dash" => vec!["dash"],
        other => panic!("no shell {other}"),
    }
}

fn output_text(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One device run by the init script: a paired profile under its own HOME, a settings file
/// and the folder (or mountpoint) it keeps in sync.
struct InitRig {
    dir: TempDir,
    shell: Vec<&'static str>,
    mode: &'static str,
}

impl InitRig {
    /// Settings for `mode` (sync or mount); the device is not paired yet.
    fn new(shell_name: &str, mode: &'static str) -> InitRig {
        let dir = tempfile::Builder::new().prefix("savesync-init-").tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("home")).unwrap();
        let settings = format!(
            "# written by handheld_service_files.rs\n\
             SAVESYNC_DIR={saves}\nSAVESYNC_MODE={mode}\nSAVESYNC_BIN={bin}\n\
             SAVESYNC_ARGS=\"--debounce-ms 20\"\n\
             SAVESYNC_PIDFILE={run}/savesync.pid\nSAVESYNC_LOG={log}/savesync.log\n\
             HOME={home}\nRUST_LOG=info,savesync_fs=debug\n",
            saves = d.join("saves").display(),
            bin = mount_bin().display(),
            run = d.join("run").display(),
            log = d.join("log").display(),
            home = d.join("home").display(),
        );
        std::fs::write(d.join("savesync.conf"), settings).unwrap();
        InitRig { dir, shell: shell(shell_name), mode }
    }

    fn saves(&self) -> PathBuf {
        self.dir.path().join("saves")
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.path().join("run/savesync.pid")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log/savesync.log")).unwrap_or_default()
    }

    /// `savesync pair` with the host binary, under the HOME the settings name.
    fn pair(&self, server: &TestServer) {
        let out = Command::new(mount_bin())
            .args(["pair", &server.url(), &server.pairing_code("player"), "--name", "init-rig"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.dir.path().join("home"))
            .output()
            .unwrap();
        assert!(out.status.success(), "savesync pair: {}", output_text(&out));
    }

    /// Run the init script with one action, in a clean environment (as init would).
    fn script(&self, action: &str) -> Output {
        Command::new(self.shell[0])
            .args(&self.shell[1..])
            .arg(init_script())
            .arg(action)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("SAVESYNC_CONFIG", self.dir.path().join("savesync.conf"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn script_ok(&self, action: &str) -> String {
        let out = self.script(action);
        assert!(out.status.success(), "init script {action}: {}", output_text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.pidfile()).ok()?.trim().parse().ok()
    }
}

impl Drop for InitRig {
    fn drop(&mut self) {
        if let Some(pid) = self.pid().filter(|&p| is_running(p)) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        if self.mode == "mount" && is_fuse_mount(&self.saves()) {
            let _ = Command::new("fusermount3").arg("-uz").arg(self.saves()).status();
        }
        if std::thread::panicking() {
            eprintln!("savesync log of the init script's daemon:\n{}", self.log());
        }
    }
}

/// The whole life of the service under one shell and mode, with a save really synced by
/// the daemon the script started.
fn exercise(shell_name: &str, mode: &'static str) {
    let server = TestServer::start_blocking();
    let view = RemoteView::new(&server, "player");
    let rig = InitRig::new(shell_name, mode);
    rig.pair(&server);

    let before = rig.script("status");
    assert_eq!(before.status.code(), Some(3), "status before start: {}", output_text(&before));

    let started = rig.script_ok("start");
    let pid = rig.pid().expect("start writes the pidfile");
    assert!(is_running(pid), "the daemon runs after start: {started}\n{}", rig.log());
    assert!(started.contains(&format!("pid {pid}")), "start names the pid: {started}");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<String> =
        cmdline.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let saves = rig.saves().display().to_string();
    assert_eq!(args[1..4], [mode, saves.as_str(), "--foreground"], "the daemon's arguments");
    if mode == "mount" {
        assert!(is_fuse_mount(&rig.saves()), "start returns once mounted: {started}");
    }

    // A second start leaves the running daemon alone.
    let again = rig.script_ok("start");
    assert!(again.contains("already running"), "second start: {again}");
    assert_eq!(rig.pid(), Some(pid));
    assert!(rig.script_ok("status").contains(&format!("running (pid {pid}")));

    // The daemon it started really syncs, both ways.
    let mine = save_bytes(7, 4096);
    std::fs::create_dir_all(rig.saves().join("nes")).unwrap();
    std::fs::write(rig.saves().join("nes/Zelda.sav"), &mine).unwrap();
    wait_until(DEADLINE, "a save written on the device reaches the server", || {
        view.has("nes/Zelda.sav", &mine).then_some(())
    });
    let theirs = save_bytes(8, 4096);
    let path = savesync_core::SavePath::parse("nes/Metroid.sav").unwrap();
    view.block_on(view.client().upload(&path, savesync_core::Rev::NONE, theirs.clone().into()))
        .unwrap();
    wait_for_bytes(&rig.saves().join("nes/Metroid.sav"), &theirs, DEADLINE);

    let stopped = rig.script_ok("stop");
    assert!(!is_running(pid), "the daemon is gone once stop returns: {stopped}\n{}", rig.log());
    assert!(!rig.pidfile().exists(), "stop removes the pidfile");
    if mode == "mount" {
        assert!(!is_fuse_mount(&rig.saves()), "stop unmounts");
    }
    let after = rig.script("status");
    assert_eq!(after.status.code(), Some(3), "status after stop: {}", output_text(&after));
    assert!(rig.script_ok("stop").contains("not running"), "stop is idempotent");

    // A pidfile left by a crash (its process long gone) is reported, then replaced by start.
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    std::fs::write(rig.pidfile(), format!("{dead_pid}\n")).unwrap();
    let stale = rig.script("status");
    assert_eq!(
        stale.status.code(),
        Some(1),
        "status with a stale pidfile: {}",
        output_text(&stale)
    );
    rig.script_ok("restart");
    let new_pid = rig.pid().expect("restart writes the pidfile");
    assert!(new_pid != dead_pid && is_running(new_pid), "restart started a new daemon");
    rig.script_ok("stop");
    assert!(!is_running(new_pid), "stopped again");
}

#[test]
fn init_script_runs_a_folder_sync_under_busybox_ash() {
    if require_program("busybox", "busybox") {
        exercise("busybox", "sync");
    }
}

#[test]
fn init_script_runs_a_folder_sync_under_dash() {
    if require_program("dash", "dash") {
        exercise("dash", "sync");
    }
}

#[test]
fn init_script_runs_a_mount_under_busybox_ash() {
    if require_fuse() && require_program("busybox", "busybox") {
        exercise("busybox", "mount");
    }
}

#[test]
fn init_script_refuses_an_unpaired_device_and_leaves_no_pidfile() {
    if !require_program("busybox", "busybox") {
        return;
    }
    let rig = InitRig::new("busybox", "sync");
    let out = rig.script("start");
    assert_eq!(out.status.code(), Some(1), "start without pairing: {}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("failed to start"),
        "start says it failed: {}",
        output_text(&out)
    );
    assert!(!rig.pidfile().exists(), "no pidfile is left behind");
    assert_eq!(rig.script("status").status.code(), Some(3));
}

#[test]
fn init_script_parses_in_every_shell_and_passes_shellcheck() {
    let script = init_script();
    for sh in [vec!["sh"], vec!["dash"], vec!["busybox", "sh"]] {
        if !require_program(sh[0], sh[0]) {
            continue;
        }
        let out = Command::new(sh[0]).args(&sh[1..]).arg("-n").arg(&script).output().unwrap();
        assert!(out.status.success(), "{sh:?} -n: {}", output_text(&out));
    }
    if require_program("shellcheck", "shellcheck") {
        let out = Command::new("shellcheck").args(["-s", "sh"]).arg(&script).output().unwrap();
        assert!(out.status.success(), "shellcheck: {}", output_text(&out));
    }
    let usage = Command::new("sh").arg(&script).arg("bogus").output().unwrap();
    assert_eq!(usage.status.code(), Some(2), "an unknown action is a usage error");
}

/// `systemd-analyze --user verify` of one instance of `unit` for `dir`, with `%h` a
/// temporary HOME. Returns its output.
fn verify_instance(unit: &str, dir: &Path, home: &Path) -> Output {
    let units = home.join("units");
    std::fs::create_dir_all(&units).unwrap();
    let escaped = Command::new("systemd-escape").arg("--path").arg(dir).output().unwrap();
    let escaped = String::from_utf8(escaped.stdout).unwrap();
    let instance = units.join(unit.replace("@.", &format!("@{}.", escaped.trim())));
    std::fs::copy(repo_file(&format!("packaging/systemd/{unit}")), &instance).unwrap();
    let runtime = home.join("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    Command::new("systemd-analyze")
        .args(["--user", "verify"])
        .arg(&instance)
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap()
}

#[test]
fn systemd_units_verify_and_their_command_line_is_accepted_by_savesync() {
    if !require_program("systemd-analyze", "systemd") {
        return;
    }
    for (unit, verb) in [("savesync-sync@.service", "sync"), ("savesync-mount@.service", "mount")] {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("Saves dir");
        // Without the binary at %h/.local/bin/savesync, verify finds the unit broken ...
        let missing = verify_instance(unit, &dir, home.path());
        assert!(!missing.status.success(), "{unit} verifies with no binary: {:?}", missing);
        // ... with it, the unit is clean.
        let bin_dir = home.path().join(".local/bin");
        std::fs::create_dir_all(&bin_dir).unwrap();
        std::os::unix::fs::symlink(mount_bin(), bin_dir.join("savesync")).unwrap();
        let out = verify_instance(unit, &dir, home.path());
        assert!(out.status.success(), "systemd-analyze verify {unit}: {}", output_text(&out));

        // The ExecStart line, with %h and %f as systemd fills them, is accepted by savesync.
        let text =
            std::fs::read_to_string(repo_file(&format!("packaging/systemd/{unit}"))).unwrap();
        let exec = text.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
        let argv: Vec<String> = exec
            .split_whitespace()
            .map(|w| {
                w.replace("%h", &home.path().display().to_string())
                    .replace("%f", &dir.display().to_string())
            })
            .collect();
        assert_eq!(argv[1], verb, "{unit} runs `savesync {verb}`");
        let help = Command::new(&argv[0]).args(&argv[1..]).arg("--help").output().unwrap();
        assert!(help.status.success(), "{unit}: `{exec} --help`: {}", output_text(&help));
        assert!(!text.to_lowercase().contains("token="), "{unit} holds no secret");
    }
}
