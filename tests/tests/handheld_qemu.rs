//! The static aarch64 `savesync` that `scripts/build-handheld.sh` builds, run under
//! qemu-user on this x86-64 machine: with no aarch64 loader or library anywhere here, it
//! starts only because it is really static. It pairs with a real server on loopback and keeps
//! a folder in sync both ways (`savesync sync DIR --foreground`).
//!
//! The binary is built before the tests, not by them: `.ci/run` runs
//! `scripts/build-handheld.sh --targets aarch64 --bins savesync` first. A missing binary or
//! qemu is a visible `SKIPPED:` outside CI and a failure under `CI=true`.
//! `SAVESYNC_HANDHELD_BIN` points the tests at another build.

use savesync_core::{Rev, SavePath};
use savesync_tests::{RemoteView, TestServer, save_bytes, wait_until};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const TRIPLE: &str = "aarch64-unknown-linux-musl";
/// Emulation is some ten times slower than native: generous deadlines.
const CLI_DEADLINE: Duration = Duration::from_secs(60);
const SYNC_DEADLINE: Duration = Duration::from_secs(60);
/// ELF `e_machine` of AArch64, and the program header type of a dynamic loader request.
const EM_AARCH64: u16 = 183;
const PT_INTERP: u32 = 3;

/// What the tests need: the aarch64 binary and a qemu that runs it. `None` after a visible
/// skip; panics under `CI=true`.
fn handheld_setup() -> Option<(PathBuf, PathBuf)> {
    let problem = match (handheld_bin(), qemu()) {
        (Ok(bin), Ok(qemu)) => return Some((bin, qemu)),
        (Err(e), _) | (_, Err(e)) => e,
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the handheld qemu tests are required under CI=true: {problem}");
    }
    eprintln!("SKIPPED: {problem}");
    None
}

/// `$SAVESYNC_HANDHELD_BIN`, else `<target dir>/aarch64-unknown-linux-musl/handheld/savesync`
/// (the target dir is the one holding this test executable: `<target>/debug/deps/`).
fn handheld_bin() -> Result<PathBuf, String> {
    let path = match std::env::var_os("SAVESYNC_HANDHELD_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let target = exe.ancestors().nth(3).ok_or("test executable outside a target dir")?;
            target.join(TRIPLE).join("handheld").join("savesync")
        }
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "no aarch64 savesync at {} (build it: scripts/build-handheld.sh --targets aarch64 \
             --bins savesync)",
            path.display()
        ))
    }
}

/// qemu-user for aarch64 from PATH (Debian: package qemu-user-static).
fn qemu() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["qemu-aarch64-static", "qemu-aarch64"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
        .ok_or_else(|| "no qemu-aarch64-static on PATH (apt-get install qemu-user-static)".into())
}

/// The ELF machine and whether the file asks for a dynamic loader (PT_INTERP); 64-bit
/// little-endian ELF only, which is what an aarch64 Linux binary is.
fn elf_machine_and_interp(bytes: &[u8]) -> (u16, bool) {
    assert!(bytes.len() > 64 && bytes.starts_with(b"\x7fELF"), "not an ELF file");
    assert_eq!((bytes[4], bytes[5]), (2, 1), "not a 64-bit little-endian ELF");
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let machine = u16_at(18);
    let phoff = usize::try_from(u64::from_le_bytes(bytes[32..40].try_into().unwrap())).unwrap();
    let (phentsize, phnum) = (usize::from(u16_at(54)), usize::from(u16_at(56)));
    let interp = (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) == PT_INTERP
    });
    (machine, interp)
}

/// One emulated handheld: its own HOME and XDG dirs, every command run as
/// `qemu-aarch64-static savesync ...`.
struct Handheld {
    bin: PathBuf,
    qemu: PathBuf,
    dir: TempDir,
}

impl Handheld {
    fn new(bin: PathBuf, qemu: PathBuf) -> Handheld {
        let dir = tempfile::Builder::new().prefix("savesync-handheld-").tempdir().unwrap();
        for sub in ["home", "config", "data", "cache", "runtime", "saves"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Handheld { bin, qemu, dir }
    }

    fn saves(&self) -> PathBuf {
        self.dir.path().join("saves")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("sync.log")
    }

    fn command(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new(&self.qemu);
        cmd.arg(&self.bin)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", d.join("home"))
            .env("XDG_CONFIG_HOME", d.join("config"))
            .env("XDG_DATA_HOME", d.join("data"))
            .env("XDG_CACHE_HOME", d.join("cache"))
            .env("XDG_RUNTIME_DIR", d.join("runtime"))
            .env("RUST_LOG", "info,savesync_fs=debug")
            .stdin(Stdio::null());
        cmd
    }

    /// Run a one-shot command to completion (bounded) and return its output.
    fn run(&self, args: &[&str]) -> Output {
        let out_path = self.dir.path().join("cli.out");
        let err_path = self.dir.path().join("cli.err");
        let mut child = self
            .command(args)
            .stdout(File::create(&out_path).unwrap())
            .stderr(File::create(&err_path).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("run {} under qemu: {e}", self.bin.display()));
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > CLI_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`savesync {args:?}` under qemu ran longer than {CLI_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Output {
            status,
            stdout: std::fs::read(&out_path).unwrap(),
            stderr: std::fs::read(&err_path).unwrap(),
        }
    }

    fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "`savesync {args:?}` under qemu failed: {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `savesync sync SAVES --foreground` as a child, logging to `sync.log`.
    fn spawn_sync(&self) -> Child {
        let log = File::create(self.log_path()).unwrap();
        let saves = self.saves();
        self.command(&["sync", saves.to_str().unwrap(), "--foreground", "--debounce-ms", "100"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

/// Ends the sync process if a check fails midway, and shows its log.
struct Running<'a> {
    child: Option<Child>,
    device: &'a Handheld,
}

impl Running<'_> {
    /// Poll `f` until it returns true (bounded), failing at once if the daemon exits.
    fn wait_for(&mut self, what: &str, mut f: impl FnMut() -> bool) {
        wait_until(SYNC_DEADLINE, what, || {
            let child = self.child.as_mut().unwrap();
            if let Some(status) = child.try_wait().unwrap() {
                panic!("savesync sync exited ({status}) before {what}");
            }
            f().then_some(())
        });
    }

    /// Wait until `path` holds exactly `bytes`.
    fn wait_for_file(&mut self, path: &Path, bytes: &[u8]) {
        self.wait_for(&format!("{} to hold the expected bytes", path.display()), || {
            std::fs::read(path).is_ok_and(|b| b == bytes)
        });
    }

    /// SIGTERM, then the exit status (bounded).
    fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > SYNC_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("savesync sync ignored SIGTERM: {}", self.device.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("savesync sync log under qemu:\n{}", self.device.log());
        }
    }
}

#[test]
fn the_aarch64_binary_is_static_and_reports_its_version_under_qemu() {
    let Some((bin, qemu)) = handheld_setup() else { return };
    let (machine, interp) = elf_machine_and_interp(&std::fs::read(&bin).unwrap());
    assert_eq!(machine, EM_AARCH64, "{} is not an aarch64 binary", bin.display());
    assert!(!interp, "{} asks for a dynamic loader: it is not static", bin.display());

    // No -L sysroot: there is no aarch64 libc on this machine, so only a static binary runs.
    let device = Handheld::new(bin, qemu);
    let version = device.run_ok(&["--version"]);
    assert_eq!(version.trim(), format!("savesync {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn the_aarch64_binary_pairs_and_keeps_a_folder_in_sync_under_qemu() {
    let Some((bin, qemu)) = handheld_setup() else { return };
    let server = TestServer::start_blocking();
    let view = RemoteView::new(&server, "player");
    let device = Handheld::new(bin, qemu);

    // Pairing is a real HTTP round trip from the emulated binary to the server.
    let code = server.pairing_code("player");
    device.run_ok(&["pair", &server.url(), &code, "--name", "qemu-handheld", "--kind", "handheld"]);
    let status: serde_json::Value =
        serde_json::from_str(&device.run_ok(&["status", "--json"])).unwrap();
    assert_eq!(status["user"], "player", "status after pairing: {status}");
    assert_eq!(
        status["server_url"].as_str().map(|u| u.trim_end_matches('/')),
        Some(&*server.url())
    );

    // Before the first sync: a save only the handheld has, and one only the server has.
    let mine = save_bytes(81, 32 * 1024);
    std::fs::create_dir_all(device.saves().join("gba")).unwrap();
    std::fs::write(device.saves().join("gba/Pokemon Emerald.sav"), &mine).unwrap();
    let theirs = save_bytes(82, 8 * 1024);
    let snes = SavePath::parse("snes/Chrono Trigger.srm").unwrap();
    view.block_on(view.client().upload(&snes, Rev::NONE, theirs.clone().into())).unwrap();

    let mut running = Running { child: Some(device.spawn_sync()), device: &device };
    running.wait_for("the handheld's own save to reach the server", || {
        view.has("gba/Pokemon Emerald.sav", &mine)
    });
    running.wait_for_file(&device.saves().join("snes/Chrono Trigger.srm"), &theirs);

    // While it runs: an emulator-style save (temp file + rename) goes up ...
    let played = save_bytes(83, 32 * 1024);
    let tmp = device.saves().join("gba/Pokemon Emerald.sav.tmp");
    std::fs::write(&tmp, &played).unwrap();
    std::fs::rename(&tmp, device.saves().join("gba/Pokemon Emerald.sav")).unwrap();
    running.wait_for("the handheld's new save to reach the server", || {
        view.has("gba/Pokemon Emerald.sav", &played)
    });
    // ... and another device's new version comes down.
    let newer = save_bytes(84, 8 * 1024);
    let head = view.head(snes.as_str()).expect("the snes save is on the server").rev;
    view.block_on(view.client().upload(&snes, head, newer.clone().into())).unwrap();
    running.wait_for_file(&device.saves().join("snes/Chrono Trigger.srm"), &newer);

    let exit = running.stop();
    assert!(exit.success(), "savesync sync exits 0 on SIGTERM under qemu, got {exit}");
    assert!(!view.saves().contains_key("gba/Pokemon Emerald.sav.tmp"), "temp names stay local");
}

#[test]
fn elf_facts_are_read_from_the_header_and_program_headers() {
    // A minimal 64-bit LE ELF: header, then two program headers at 64 (PT_LOAD, PT_INTERP).
    let mut elf = vec![0u8; 64 + 2 * 56];
    elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
    elf[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
    elf[32..40].copy_from_slice(&64u64.to_le_bytes());
    elf[54..56].copy_from_slice(&56u16.to_le_bytes());
    elf[56..58].copy_from_slice(&2u16.to_le_bytes());
    elf[64..68].copy_from_slice(&1u32.to_le_bytes());
    elf[120..124].copy_from_slice(&PT_INTERP.to_le_bytes());
    assert_eq!(elf_machine_and_interp(&elf), (EM_AARCH64, true));
    elf[120..124].copy_from_slice(&1u32.to_le_bytes());
    assert_eq!(elf_machine_and_interp(&elf), (EM_AARCH64, false));
    // The x86-64 test executable itself is dynamic.
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    assert_eq!(elf_machine_and_interp(&me), (62, true));
}
