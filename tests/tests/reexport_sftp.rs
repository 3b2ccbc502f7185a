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
    MountedDevice, ProcessGroup, ShareClient, assert_dir_holds, assert_server_holds_exactly,
    free_loopback_port, require_tools, run_save_scenario, wait_with_deadline,
};
use std::ffi::OsString;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Where Debian's openssh-sftp-server installs the server (`SAVESYNC_SFTP_SERVER` overrides).
const DEFAULT_SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";
/// Where Debian's openssh-server installs the daemon (`SAVESYNC_SSHD` overrides). sshd
/// re-executes itself, so this must be an absolute path.
const DEFAULT_SSHD: &str = "/usr/sbin/sshd";
/// sshd's privilege separation directory (Debian's build); it must exist when sshd runs as
/// root. Normally the init script creates it, which never ran here.
const PRIVSEP_DIR: &str = "/run/sshd";
/// Deadline for one sftp batch, ssh-keygen or `id`.
const CLIENT_DEADLINE: Duration = Duration::from_secs(30);
/// Deadline for a started sshd to greet on its port.
const SSHD_READY_DEADLINE: Duration = Duration::from_secs(20);
/// Ports tried when the free port was taken between probing and sshd binding it.
const SSHD_START_ATTEMPTS: usize = 5;

fn sftp_server() -> String {
    std::env::var("SAVESYNC_SFTP_SERVER").unwrap_or_else(|_| DEFAULT_SFTP_SERVER.to_owned())
}

fn sshd_path() -> String {
    std::env::var("SAVESYNC_SSHD").unwrap_or_else(|_| DEFAULT_SSHD.to_owned())
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
    let daemon = LoopbackSshd::start(&sshd, share.path());
    let staging = TempDir::new().expect("staging dir");
    let client = SftpClient { transport: daemon.login(), staging: staging.path() };
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
    let daemon = LoopbackSshd::start(&sshd, &mounted.share_dir());
    let staging = TempDir::new().expect("staging dir");
    let client = SftpClient { transport: daemon.login(), staging: staging.path() };
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

/// A real OpenSSH daemon on 127.0.0.1, in the foreground (`-D -e`), with its own config,
/// host key and one authorised user key in a temp dir; its sftp subsystem (`internal-sftp`)
/// starts in the shared directory. Dropping it stops sshd (its process group), then removes
/// the temp dir; on a panic its log is printed first.
struct LoopbackSshd {
    // Field order is drop order: sshd stops before its keys and config are removed.
    process: ProcessGroup,
    dir: TempDir,
    port: u16,
    user: String,
}

impl LoopbackSshd {
    /// Starts `sshd` serving `share_root` over SFTP and waits until it greets on its port.
    /// A port taken between probing and binding is retried with another one.
    fn start(sshd: &str, share_root: &Path) -> LoopbackSshd {
        let root = share_root.display().to_string();
        // sshd splits the Subsystem line on whitespace.
        assert!(!root.contains(char::is_whitespace), "share root {root:?} contains whitespace");
        ensure_privsep_dir();
        let dir = tempfile::Builder::new().prefix("savesync-sshd-").tempdir().expect("sshd dir");
        generate_key(&dir.path().join("host_ed25519"));
        generate_key(&dir.path().join("user_ed25519"));
        std::fs::copy(dir.path().join("user_ed25519.pub"), dir.path().join("authorized_keys"))
            .expect("authorise the user key");
        let user = current_user();
        let config_path = dir.path().join("sshd_config");
        let log_path = dir.path().join("sshd.log");
        for attempt in 1..=SSHD_START_ATTEMPTS {
            let port = free_loopback_port();
            std::fs::write(&config_path, sshd_config(dir.path(), port, &root))
                .expect("write sshd_config");
            let log = std::fs::File::create(&log_path).expect("create sshd.log");
            let mut command = Command::new(sshd);
            command
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log);
            let mut process = ProcessGroup::spawn(command, "sshd")
                .unwrap_or_else(|e| panic!("spawn {sshd}: {e}"));
            match wait_for_ssh_greeting(port, &mut process) {
                Ok(()) => return LoopbackSshd { process, dir, port, user },
                Err(status) => {
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    let port_taken =
                        log.contains("Address already in use") || log.contains("Cannot bind");
                    assert!(
                        port_taken && attempt < SSHD_START_ATTEMPTS,
                        "sshd exited with {status} before greeting on 127.0.0.1:{port} \
                         (attempt {attempt}):\n{log}"
                    );
                    eprintln!("sshd could not bind 127.0.0.1:{port}; trying another port");
                }
            }
        }
        unreachable!("the last start attempt either returns or panics")
    }

    /// How `sftp` logs in to this sshd.
    fn login(&self) -> Transport {
        Transport::Ssh {
            port: self.port,
            user: self.user.clone(),
            key: self.dir.path().join("user_ed25519"),
        }
    }
}

impl Drop for LoopbackSshd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let state = self
                .process
                .exited()
                .map_or_else(|| "still running".to_owned(), |status| format!("exited: {status}"));
            let log = std::fs::read_to_string(self.dir.path().join("sshd.log"));
            eprintln!("---- sshd log ({state}) ----\n{}\n---- end ----", log.unwrap_or_default());
        }
    }
}

/// The whole sshd configuration: nothing from /etc/ssh is read. Public-key auth only,
/// no PAM (CI containers have no PAM session setup for sshd), no pid file (several tests
/// may run sshd at once).
fn sshd_config(dir: &Path, port: u16, share_root: &str) -> String {
    let dir = dir.display();
    format!(
        "ListenAddress 127.0.0.1\n\
         Port {port}\n\
         HostKey {dir}/host_ed25519\n\
         AuthorizedKeysFile {dir}/authorized_keys\n\
         PermitRootLogin prohibit-password\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         StrictModes no\n\
         UsePAM no\n\
         PidFile none\n\
         LogLevel VERBOSE\n\
         Subsystem sftp internal-sftp -d {share_root} -l INFO\n"
    )
}

/// Polls 127.0.0.1:`port` until sshd sends its `SSH-2.0-` identification line, which only
/// sshd does (not some other process that won a race for the port). `Err` with the exit
/// status if sshd exits first; panics on the deadline.
fn wait_for_ssh_greeting(
    port: u16,
    process: &mut ProcessGroup,
) -> Result<(), std::process::ExitStatus> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let start = Instant::now();
    loop {
        if let Some(status) = process.exited() {
            return Err(status);
        }
        if greets_as_ssh(address) {
            return Ok(());
        }
        assert!(
            start.elapsed() < SSHD_READY_DEADLINE,
            "sshd did not greet on {address} within {SSHD_READY_DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn greets_as_ssh(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(500)) else {
        return false;
    };
    if stream.set_read_timeout(Some(Duration::from_secs(2))).is_err() {
        return false;
    }
    let mut greeting = [0_u8; 8];
    stream.read_exact(&mut greeting).is_ok() && greeting == *b"SSH-2.0-"
}

/// sshd running as root refuses to start without its privilege separation directory
/// (root-owned, not group/world writable). Not being able to create it only matters as
/// root, and then sshd's own message in its log says so.
fn ensure_privsep_dir() {
    let dir = Path::new(PRIVSEP_DIR);
    if dir.is_dir() {
        return;
    }
    let created = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)));
    if let Err(e) = created {
        eprintln!("could not create {PRIVSEP_DIR} ({e}); sshd needs it when run as root");
    }
}

/// An unencrypted ed25519 key pair at `path` and `path.pub` (mode 0600, as ssh requires).
fn generate_key(path: &Path) {
    let output = run_tool(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "savesync-test", "-f"])
            .arg(path),
        "ssh-keygen",
    );
    assert!(
        output.status.success(),
        "ssh-keygen for {} failed ({}): {}",
        path.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The login name the test runs as (root in CI); sshd only lets a non-root sshd log in as
/// its own user anyway.
fn current_user() -> String {
    let output = run_tool(Command::new("id").arg("-un"), "id -un");
    assert!(output.status.success(), "`id -un` failed: {}", output.status);
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn run_tool(command: &mut Command, what: &str) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    wait_with_deadline(child, CLIENT_DEADLINE, what)
}
