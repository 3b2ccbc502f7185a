//! External programs the tests drive (file servers, ssh tools): finding them (skip with a
//! visible `SKIPPED:`, or fail under `CI=true`), a free loopback port, process groups that
//! end with their owner, and waiting for a one-shot command with a deadline.

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// Deadline for a spawned server to exit after SIGTERM before it gets SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// True if every program is usable (an absolute path must exist, a bare name must be on
/// PATH). If not: panics under `CI=true`, otherwise prints `SKIPPED: ...` and returns false.
#[must_use]
pub fn require_tools(test: &str, programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs.iter().copied().filter(|p| !program_exists(p)).collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!("{test} needs {missing:?} (install with .ci/install-deps)");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}; CI=true, so a missing tool is a failure");
    }
    eprintln!("SKIPPED: {message}");
    false
}

fn program_exists(program: &str) -> bool {
    let path = Path::new(program);
    if path.is_absolute() {
        return path.is_file();
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| dir.join(program).is_file())
}

/// A loopback TCP port that was free a moment ago. Servers that cannot take an
/// already-bound socket leave a tiny race; callers retry a failed start.
#[must_use]
pub fn free_loopback_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// A child process started as the leader of its own process group (a server that forks
/// per connection). Dropping it ends the whole group: SIGTERM, then SIGKILL.
#[derive(Debug)]
pub struct ProcessGroup {
    child: Child,
    what: String,
}

impl ProcessGroup {
    /// Spawns `command` in a new process group.
    pub fn spawn(mut command: Command, what: &str) -> std::io::Result<ProcessGroup> {
        command.process_group(0);
        let child = command.spawn()?;
        Ok(ProcessGroup { child, what: what.to_owned() })
    }

    /// `Some(status)` once the leader has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The leader's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn pgid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits in i32"))
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let group = self.pgid();
        let _ = killpg(group, Signal::SIGTERM);
        let start = Instant::now();
        while self.exited().is_none() {
            if start.elapsed() > STOP_DEADLINE {
                eprintln!("{} ignored SIGTERM for {STOP_DEADLINE:?}; killing it", self.what);
                let _ = killpg(group, Signal::SIGKILL);
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Workers of the group may outlive the leader by a moment; they get the same end.
        let _ = killpg(group, Signal::SIGKILL);
    }
}

/// Waits for a one-shot command, killing it after `deadline`. The commands used here print
/// little, so output stays within the pipe buffers while we poll.
pub fn wait_with_deadline(mut child: Child, deadline: Duration, what: &str) -> Output {
    let start = Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        if start.elapsed() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().ok();
            panic!(
                "`{what}` ran longer than {deadline:?}; output so far: {:?}",
                output.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("collect output")
}
