//! SFTP re-export: OpenSSH serves a savesync mount over SFTP, and the `sftp` client in batch
//! mode creates, overwrites, renames over, deletes and lists saves through it. The sync
//! server must end up with exactly the expected saves and no temp file.
//!
//! Two transports, same scenario:
//! - a pipe: `sftp -D` talks to `sftp-server` directly. The file operations
//!   (open/write/close, posix-rename, remove, readdir) are exactly those of sshd's sftp
//!   subsystem, without host keys, accounts or a listening port, so a failure here is about
//!   the mount, not about ssh;
//! - a real `sshd` on 127.0.0.1 (a free high port, generated host and user keys, its
//!   `internal-sftp` subsystem rooted at the share), logged into with public-key auth, as a
//!   NAS user would reach the saves. CI runs as root, hence `PermitRootLogin
//!   prohibit-password`; the keys live in a temp dir, hence `StrictModes no`.
//!
//! Each transport also runs the scenario on a plain directory as the control.

mod reexport_common;

use reexport_common::{
    MountedDevice, ShareClient, assert_dir_holds, assert_server_holds_exactly, require_tools,
    run_save_scenario, wait_with_deadline,
};
use savesync_tests::{LoopbackSshd, sshd_path};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;

/// Where Debian's openssh-sftp-server installs the server (`SAVESYNC_SFTP_SERVER` overrides).
const DEFAULT_SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";
/// Deadline for one sftp batch.
const CLIENT_DEADLINE: Duration = Duration::from_secs(30);

fn sftp_server() -> String {
    std::env::var("SAVESYNC_SFTP_SERVER").unwrap_or_else(|_| DEFAULT_SFTP_SERVER.to_owned())
}

#[test]
fn sftp_session_on_a_plain_directory_runs_the_save_scenario() {
    let server = sftp_server();
    if !require_tools("sftp control", &["sftp", &server]) {
        return;
    }
    let share = TempDir::new().expect("share dir");
    let staging = TempDir::new().expect("staging dir");
    let transport = Transport::Pipe { server, root: share.path().to_path_buf() };
    let client = SftpClient { transport, staging: staging.path() };
    let expected = run_save_scenario(&client, staging.path());
    assert_dir_holds(share.path(), &expected);
}

#[test]
fn sftp_rename_over_and_delete_reach_the_server_without_temp_files() {
    let server = sftp_server();
    if !require_tools("sftp re-export", &["sftp", &server]) {
        return;
    }
    let Some(mounted) = MountedDevice::start("sftp-nas") else { return };
    let staging = TempDir::new().expect("staging dir");
    let transport = Transport::Pipe { server, root: mounted.share_dir() };
    let client = SftpClient { transport, staging: staging.path() };
    let expected = run_save_scenario(&client, staging.path());
    assert_server_holds_exactly(&mounted.remote, &expected);
}

#[test]
fn sshd_on_loopback_serves_the_save_scenario_on_a_plain_directory() {
    let sshd = sshd_path();
    if !require_tools("sshd control", &["sftp", "ssh-keygen", &sshd]) {
        return;
    }
    let share = TempDir::new().expect("share dir");
    let daemon = LoopbackSshd::start(&sshd, Some(share.path()));
    let staging = TempDir::new().expect("staging dir");
    let client = SftpClient { transport: login(&daemon), staging: staging.path() };
    let expected = run_save_scenario(&client, staging.path());
    assert_dir_holds(share.path(), &expected);
}

#[test]
fn sftp_through_sshd_renames_over_and_deletes_saves_on_the_server_without_temp_files() {
    let sshd = sshd_path();
    if !require_tools("sshd re-export", &["sftp", "ssh-keygen", &sshd]) {
        return;
    }
    let Some(mounted) = MountedDevice::start("sshd-nas") else { return };
    // Declared after the mount, so dropped (stopped) before it.
    let daemon = LoopbackSshd::start(&sshd, Some(&mounted.share_dir()));
    let staging = TempDir::new().expect("staging dir");
    let client = SftpClient { transport: login(&daemon), staging: staging.path() };
    let expected = run_save_scenario(&client, staging.path());
    assert_server_holds_exactly(&mounted.remote, &expected);
}

/// How `sftp` reaches the files.
enum Transport {
    /// `sftp -D "SERVER -d ROOT"`: sftp-server on a pipe, started in ROOT.
    Pipe { server: String, root: PathBuf },
    /// `sftp -P PORT -i KEY USER@127.0.0.1`: through sshd, whose subsystem starts in the
    /// share root.
    Ssh { port: u16, user: String, key: PathBuf },
}

impl Transport {
    /// The `sftp` arguments after `-b BATCH`.
    fn args(&self) -> Vec<OsString> {
        match self {
            // sftp splits the -D string on spaces; temp dir paths contain none.
            Transport::Pipe { server, root } => {
                vec!["-D".into(), format!("{server} -d {} -e -l ERROR", root.display()).into()]
            }
            Transport::Ssh { port, user, key } => {
                let mut args: Vec<OsString> =
                    vec!["-P".into(), port.to_string().into(), "-i".into(), key.into()];
                // No user or system ssh_config, no agent keys, no host key prompt or
                // known_hosts entry: the run depends on nothing outside the test.
                for option in [
                    "-F/dev/null",
                    "-oIdentitiesOnly=yes",
                    "-oStrictHostKeyChecking=no",
                    "-oUserKnownHostsFile=/dev/null",
                    "-oConnectTimeout=10",
                    "-oLogLevel=ERROR",
                ] {
                    args.push(option.into());
                }
                args.push(format!("{user}@127.0.0.1").into());
                args
            }
        }
    }
}

/// `sftp -b BATCH ...`: one session per operation so a failure names it. In batch mode
/// sftp stops at, and exits non-zero on, the first failing command.
struct SftpClient<'a> {
    transport: Transport,
    staging: &'a Path,
}

impl SftpClient<'_> {
    fn run(&self, command: &str) -> String {
        let batch = self.staging.join("sftp.batch");
        std::fs::write(&batch, format!("{command}\n")).expect("write the sftp batch file");
        let child = Command::new("sftp")
            .arg("-b")
            .arg(&batch)
            .args(self.transport.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run sftp: {e}"));
        let output = wait_with_deadline(child, CLIENT_DEADLINE, command);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "sftp `{command}` failed ({}):\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }
}

impl ShareClient for SftpClient<'_> {
    fn mkdir(&self, dir: &str) {
        self.run(&format!("mkdir {}", quoted(dir)));
    }

    fn put(&self, local: &Path, remote: &str) {
        self.run(&format!("put {} {}", quoted(&local.to_string_lossy()), quoted(remote)));
    }

    fn rename_over(&self, from: &str, to: &str) {
        // OpenSSH's sftp uses the posix-rename@openssh.com extension here, i.e. rename(2),
        // which replaces the target atomically (plain SFTP rename refuses to overwrite).
        self.run(&format!("rename {} {}", quoted(from), quoted(to)));
    }

    fn delete(&self, remote: &str) {
        self.run(&format!("rm {}", quoted(remote)));
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let text = self.run(&format!("ls -1a {}", quoted(dir)));
        text.lines()
            .filter(|line| !line.starts_with("sftp>"))
            .map(|line| line.trim().rsplit('/').next().unwrap_or_default().to_owned())
            .filter(|name| !name.is_empty() && name != "." && name != "..")
            .collect()
    }
}

/// sftp batch quoting: names with spaces go in double quotes.
fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

/// How `sftp` logs in to `daemon`.
fn login(daemon: &LoopbackSshd) -> Transport {
    Transport::Ssh { port: daemon.port(), user: daemon.user().to_owned(), key: daemon.user_key() }
}
