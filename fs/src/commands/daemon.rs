//! Starting a daemon (`mount`, `sync`) in the background: re-run this binary with
//! `--foreground --detached` (the child calls setsid: its own session and process group,
//! no controlling terminal), its output appended to `data_dir/savesync.log`, and wait
//! until the caller's check says it is up, it exits, or `limit` passes.

use crate::profile::Profile;
use anyhow::Context;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A daemon that came up: its pid and log file.
#[derive(Debug)]
pub(crate) struct Detached {
    pub pid: u32,
    pub log_path: PathBuf,
}

/// Start the `name` daemon ("mount daemon", "sync daemon") and poll `is_up(pid)`.
pub(crate) fn detach(
    profile: &Profile,
    name: &str,
    limit: Duration,
    mut is_up: impl FnMut(u32) -> bool,
) -> anyhow::Result<Detached> {
    std::fs::create_dir_all(&profile.data_dir)?;
    let log_path = profile.data_dir.join("savesync.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening log {}", log_path.display()))?;
    let exe = std::env::current_exe().context("locating the savesync binary")?;
    let mut child = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .arg("--foreground")
        .arg("--detached")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting the {name}"))?;
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if is_up(child.id()) {
            return Ok(Detached { pid: child.id(), log_path });
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("the {name} exited ({status}); see {}", log_path.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!("the {name} did not come up within {limit:?}; see {}", log_path.display())
}
