//! Samba re-export: a real `smbd` on loopback shares a savesync mount (config from
//! `tests/fixtures/smb.conf.template`, every runtime file in a temp dir), and `smbclient`
//! creates, overwrites, renames over, deletes and lists saves through it. The sync server
//! must end up with exactly the expected saves and no temp file.
//!
//! The same scenario also runs against a plain directory (the control: if that fails, the
//! Samba set-up is at fault, not the mount).

mod reexport_common;

use reexport_common::{
    MountedDevice, ShareClient, assert_dir_holds, assert_server_holds_exactly, require_tools,
    run_save_scenario, wait_with_deadline,
};
use savesync_tests::{ProcessGroup, free_loopback_port};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const TOOLS: &[&str] = &["smbd", "smbclient"];
/// Deadline for smbd to accept connections.
const START_DEADLINE: Duration = Duration::from_secs(20);
/// Deadline for one smbclient command.
const CLIENT_DEADLINE: Duration = Duration::from_secs(30);
/// Attempts to start smbd (the free port it was given may be taken meanwhile).
const START_ATTEMPTS: u32 = 3;
/// Name of the share in the template.
const SHARE: &str = "saves";

#[test]
fn samba_share_of_a_plain_directory_runs_the_save_scenario() {
    if !require_tools("samba control", TOOLS) {
        return;
    }
    let share = TempDir::new().expect("share dir");
    let smbd = Smbd::start(share.path());
    let staging = TempDir::new().expect("staging dir");
    let expected = run_save_scenario(&smbd.client(), staging.path());
    assert_dir_holds(share.path(), &expected);
}

#[test]
fn samba_rename_over_and_delete_reach_the_server_without_temp_files() {
    if !require_tools("samba re-export", TOOLS) {
        return;
    }
    let Some(mounted) = MountedDevice::start("samba-nas") else { return };
    let smbd = Smbd::start(&mounted.share_dir());
    let staging = TempDir::new().expect("staging dir");
    let expected = run_save_scenario(&smbd.client(), staging.path());
    assert_server_holds_exactly(&mounted.remote, &expected);
}

/// A running `smbd` sharing one directory as `saves` on a loopback port.
struct Smbd {
    /// Held only to stop smbd on drop; declared first so it stops before the state dir goes.
    _process: ProcessGroup,
    state: TempDir,
    port: u16,
}

impl Smbd {
    fn start(share: &Path) -> Smbd {
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            match Smbd::try_start(share) {
                Ok(smbd) => return smbd,
                Err(failure) => last_failure = failure,
            }
        }
        panic!("smbd did not start in {START_ATTEMPTS} attempts; last: {last_failure}");
    }

    fn try_start(share: &Path) -> Result<Smbd, String> {
        let state = tempfile::Builder::new()
            .prefix("savesync-smbd-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        for sub in ["private", "lock", "state", "cache", "pid", "ncalrpc", "binddns"] {
            std::fs::create_dir_all(state.path().join(sub)).map_err(|e| e.to_string())?;
        }
        let port = free_loopback_port();
        let config = render_config(state.path(), port, share);
        let config_path = state.path().join("smb.conf");
        std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
        let log =
            std::fs::File::create(state.path().join("smbd.out")).map_err(|e| e.to_string())?;
        let mut command = Command::new("smbd");
        command
            .args(["--foreground", "--no-process-group", "--debug-stdout", "--configfile"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        let mut process =
            ProcessGroup::spawn(command, "smbd").map_err(|e| format!("spawn smbd: {e}"))?;
        let start = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Smbd { _process: process, state, port });
            }
            if let Some(status) = process.exited() {
                return Err(format!("smbd exited with {status}\n{}", smbd_log(state.path())));
            }
            if start.elapsed() > START_DEADLINE {
                return Err(format!(
                    "smbd not listening on port {port} after {START_DEADLINE:?}\n{}",
                    smbd_log(state.path())
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn client(&self) -> SmbClient<'_> {
        SmbClient { smbd: self }
    }
}

impl Drop for Smbd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", smbd_log(self.state.path()));
        }
        // The fields drop next: `_process` stops smbd and its workers, then the state dir goes.
    }
}

/// The template from the repository with this run's dirs and port filled in.
fn render_config(state: &Path, port: u16, share: &Path) -> String {
    let template_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/smb.conf.template");
    let template = std::fs::read_to_string(&template_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", template_path.display()));
    template
        .replace("{{STATE}}", &state.to_string_lossy())
        .replace("{{PORT}}", &port.to_string())
        .replace("{{SHARE}}", &share.to_string_lossy())
}

fn smbd_log(state: &Path) -> String {
    let mut text = String::from("---- smbd output ----\n");
    text.push_str(&std::fs::read_to_string(state.join("smbd.out")).unwrap_or_default());
    for entry in std::fs::read_dir(state).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("log.") {
            text.push_str(&format!("---- {name} ----\n"));
            text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    text
}

/// `smbclient` as a guest (mapped to root by the share), one session per command so a
/// failure names the operation.
struct SmbClient<'a> {
    smbd: &'a Smbd,
}

impl SmbClient<'_> {
    /// Runs one smbclient command line; panics if smbclient reports any NT_STATUS error.
    fn run(&self, command: &str) -> String {
        let service = format!("//127.0.0.1/{SHARE}");
        let child = Command::new("smbclient")
            .arg(&service)
            .args(["--port", &self.smbd.port.to_string(), "--no-pass", "-m", "SMB3", "-c", command])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run smbclient: {e}"));
        let output = wait_with_deadline(child, CLIENT_DEADLINE, command);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success() && !text.contains("NT_STATUS_"),
            "smbclient `{command}` failed ({}):\n{text}",
            output.status
        );
        text
    }
}

impl ShareClient for SmbClient<'_> {
    fn mkdir(&self, dir: &str) {
        self.run(&format!("mkdir {}", quoted(dir)));
    }

    fn put(&self, local: &Path, remote: &str) {
        self.run(&format!("put {} {}", quoted(&local.to_string_lossy()), quoted(remote)));
    }

    fn rename_over(&self, from: &str, to: &str) {
        // `-f` asks for SMB2 rename with replace-if-exists: what Windows and GIO send when
        // an application saves by renaming a temp file over the original.
        self.run(&format!("rename {} {} -f", quoted(from), quoted(to)));
    }

    fn delete(&self, remote: &str) {
        self.run(&format!("del {}", quoted(remote)));
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let text = self.run(&format!("ls {}", quoted(&format!("{dir}/*"))));
        parse_listing(&text)
    }
}

/// smbclient's `ls` prints `  NAME<padding>ATTRS  SIZE  DATE`; names in this test have no
/// double spaces, so the name ends at the first double space.
fn parse_listing(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("  "))
        .filter_map(|rest| rest.split("  ").next())
        .map(str::trim)
        .filter(|name| !name.is_empty() && *name != "." && *name != "..")
        .map(str::to_owned)
        .collect()
}

/// smbclient command-line quoting: names with spaces go in double quotes.
fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}
