//! SFTP re-export: OpenSSH's real `sftp-server` serves a savesync mount, and the `sftp`
//! client in batch mode creates, overwrites, renames over, deletes and lists saves through
//! it. The sync server must end up with exactly the expected saves and no temp file.
//!
//! `sftp -D` talks to `sftp-server` over a pipe instead of through sshd: the file operations
//! (open/write/close, posix-rename, remove, readdir) are exactly those sshd's sftp subsystem
//! runs, without host keys, accounts or a listening port. The scenario also runs on a plain
//! directory as the control.

mod reexport_common;

use reexport_common::{
    MountedDevice, ShareClient, assert_dir_holds, assert_server_holds_exactly, require_tools,
    run_save_scenario, wait_with_deadline,
};
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
    let client = SftpClient { server, root: share.path().to_path_buf(), staging: staging.path() };
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
    let client = SftpClient { server, root: mounted.share_dir(), staging: staging.path() };
    let expected = run_save_scenario(&client, staging.path());
    assert_server_holds_exactly(&mounted.remote, &expected);
}

/// `sftp -b BATCH -D "sftp-server -d ROOT"`: one session per operation so a failure names
/// it. In batch mode sftp stops at, and exits non-zero on, the first failing command.
struct SftpClient<'a> {
    server: String,
    root: PathBuf,
    staging: &'a Path,
}

impl SftpClient<'_> {
    fn run(&self, command: &str) -> String {
        let batch = self.staging.join("sftp.batch");
        std::fs::write(&batch, format!("{command}\n")).expect("write the sftp batch file");
        // sftp splits the -D string on spaces; temp dir paths contain none.
        let server = format!("{} -d {} -e -l ERROR", self.server, self.root.display());
        let child = Command::new("sftp")
            .arg("-b")
            .arg(&batch)
            .arg("-D")
            .arg(&server)
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
