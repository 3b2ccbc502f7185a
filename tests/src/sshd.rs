//! [`LoopbackSshd`]: a real OpenSSH daemon on 127.0.0.1, in the foreground (`-D -e`), with
//! its own config, generated host key and one authorised user key in a temp dir; nothing
//! from /etc/ssh is read. Used by the SFTP re-export tests (its sftp subsystem rooted at a
//! share) and the SSH remote tests (a "handheld" the server syncs over SFTP).
//!
//! CI runs as root, hence `PermitRootLogin prohibit-password`; the keys live in a temp
//! dir, hence `StrictModes no`. sshd puts each connection in a session of its own
//! (`setsid`), so stopping it here also kills every process descended from it: a stopped
//! sshd is a device that vanished, connections included.

use crate::tools::{ProcessGroup, free_loopback_port, wait_with_deadline};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Where Debian's openssh-server installs the daemon (`SAVESYNC_SSHD` overrides). sshd
/// re-executes itself, so this must be an absolute path.
const DEFAULT_SSHD: &str = "/usr/sbin/sshd";
/// sshd's privilege separation directory (Debian's build); it must exist when sshd runs as
/// root. Normally the init script creates it, which never ran here.
const PRIVSEP_DIR: &str = "/run/sshd";
/// Deadline for ssh-keygen or `id`.
const TOOL_DEADLINE: Duration = Duration::from_secs(30);
/// Deadline for a started sshd to greet on its port.
const SSHD_READY_DEADLINE: Duration = Duration::from_secs(20);
/// Ports tried when the free port was taken between probing and sshd binding it.
const SSHD_START_ATTEMPTS: usize = 5;

/// The sshd binary to run.
#[must_use]
pub fn sshd_path() -> String {
    std::env::var("SAVESYNC_SSHD").unwrap_or_else(|_| DEFAULT_SSHD.to_owned())
}

/// A running (or stopped, restartable) sshd. Dropping it stops sshd and its sessions,
/// then removes the temp dir; on a panic its log is printed first.
#[derive(Debug)]
pub struct LoopbackSshd {
    // Field order is drop order: sshd stops before its keys and config are removed.
    process: Option<ProcessGroup>,
    dir: TempDir,
    sshd: String,
    port: u16,
    user: String,
    sftp_root: Option<String>,
}

impl LoopbackSshd {
    /// Starts `sshd` and waits until it greets on its port. With `sftp_root` its sftp
    /// subsystem starts in that directory. A port taken between probing and binding is
    /// retried with another one.
    #[must_use]
    pub fn start(sshd: &str, sftp_root: Option<&Path>) -> LoopbackSshd {
        let sftp_root = sftp_root.map(|p| p.display().to_string());
        if let Some(root) = &sftp_root {
            // sshd splits the Subsystem line on whitespace.
            assert!(!root.contains(char::is_whitespace), "sftp root {root:?} has whitespace");
        }
        ensure_privsep_dir();
        let dir = tempfile::Builder::new().prefix("savesync-sshd-").tempdir().expect("sshd dir");
        generate_key(&dir.path().join("host_ed25519"));
        generate_key(&dir.path().join("user_ed25519"));
        std::fs::copy(dir.path().join("user_ed25519.pub"), dir.path().join("authorized_keys"))
            .expect("authorise the user key");
        let mut daemon = LoopbackSshd {
            process: None,
            dir,
            sshd: sshd.to_owned(),
            port: 0,
            user: current_user(),
            sftp_root,
        };
        for attempt in 1..=SSHD_START_ATTEMPTS {
            daemon.port = free_loopback_port();
            match daemon.spawn() {
                Ok(process) => {
                    daemon.process = Some(process);
                    return daemon;
                }
                Err(log) => {
                    let port_taken =
                        log.contains("Address already in use") || log.contains("Cannot bind");
                    assert!(
                        port_taken && attempt < SSHD_START_ATTEMPTS,
                        "sshd did not start on 127.0.0.1:{} (attempt {attempt}):\n{log}",
                        daemon.port
                    );
                }
            }
        }
        unreachable!("the last start attempt either returns or panics")
    }

    /// Run sshd on `self.port`; `Err(log)` if it exits before greeting.
    fn spawn(&self) -> Result<ProcessGroup, String> {
        let config_path = self.dir.path().join("sshd_config");
        let log_path = self.dir.path().join("sshd.log");
        std::fs::write(&config_path, self.config()).expect("write sshd_config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open sshd.log");
        let mut command = Command::new(&self.sshd);
        command
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let mut process = ProcessGroup::spawn(command, "sshd")
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.sshd));
        match wait_for_ssh_greeting(self.port, &mut process) {
            Ok(()) => Ok(process),
            Err(status) => Err(format!(
                "sshd exited with {status}:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            )),
        }
    }

    /// The whole sshd configuration. Public-key auth only, no PAM (CI containers have no
    /// PAM session setup for sshd), no pid file (several tests may run sshd at once).
    fn config(&self) -> String {
        let dir = self.dir.path().display();
        let subsystem = match &self.sftp_root {
            Some(root) => format!("internal-sftp -d {root} -l INFO"),
            None => "internal-sftp -l INFO".to_owned(),
        };
        format!(
            "ListenAddress 127.0.0.1\n\
             Port {}\n\
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
             Subsystem sftp {subsystem}\n",
            self.port
        )
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The login name (the user the tests run as).
    #[must_use]
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The authorised private key.
    #[must_use]
    pub fn user_key(&self) -> PathBuf {
        self.dir.path().join("user_ed25519")
    }

    /// `USER@127.0.0.1:PORT`.
    #[must_use]
    pub fn target(&self) -> String {
        format!("{}@127.0.0.1:{}", self.user, self.port)
    }

    /// The host key's fingerprint as `ssh-keygen -lf` prints it (`SHA256:...`).
    #[must_use]
    pub fn host_key_fingerprint(&self) -> String {
        let output = run_tool(
            Command::new("ssh-keygen").arg("-lf").arg(self.dir.path().join("host_ed25519.pub")),
            "ssh-keygen -lf",
        );
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.split_whitespace()
            .find(|w| w.starts_with("SHA256:"))
            .unwrap_or_else(|| panic!("no fingerprint in {text:?}"))
            .to_owned()
    }

    /// The device vanishes: sshd and every session it started are killed (SIGKILL).
    pub fn stop(&mut self) {
        let Some(process) = self.process.take() else { return };
        let leader = process.pid();
        for pid in descendants(leader) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        drop(process);
    }

    /// Start again on the same port with the same keys.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + SSHD_READY_DEADLINE;
        loop {
            match self.spawn() {
                Ok(process) => {
                    self.process = Some(process);
                    return;
                }
                Err(log) if Instant::now() < deadline => {
                    eprintln!("sshd restart on {} failed, retrying: {log}", self.port);
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(log) => panic!("sshd did not restart on {}: {log}", self.port),
            }
        }
    }

    /// Give the daemon a new host key (a reinstalled device, or an impersonator) and
    /// restart it.
    pub fn replace_host_key(&mut self) {
        self.stop();
        for file in ["host_ed25519", "host_ed25519.pub"] {
            std::fs::remove_file(self.dir.path().join(file)).expect("remove the old host key");
        }
        generate_key(&self.dir.path().join("host_ed25519"));
        self.restart();
    }
}

impl Drop for LoopbackSshd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("sshd.log"));
            eprintln!("---- sshd log ----\n{}\n---- end ----", log.unwrap_or_default());
        }
        self.stop();
    }
}

/// Every process descended from `root` (children, their children...), from /proc.
fn descendants(root: u32) -> Vec<i32> {
    let mut parent_of: Vec<(i32, i32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else { continue };
            if let Some(ppid) = after.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![i32::try_from(root).unwrap_or(i32::MAX)];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in &parent_of {
            if ppid == parent && !found.contains(&pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
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
pub fn generate_key(path: &Path) {
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
    wait_with_deadline(child, TOOL_DEADLINE, what)
}
