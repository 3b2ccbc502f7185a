//! SSH push-pull remotes: the server syncs a device that runs only `sshd` (most handheld
//! firmwares: muOS, Knulli, ROCKNIX, Batocera, ArkOS), with nothing installed on it.
//!
//! A remote is a device in the library's sense: a device row of kind `ssh`, named like the
//! remote and owned by its user, so history and the audit log name it as the committing
//! device. Each run walks the mapped directories over SFTP and decides every file with
//! `savesync_core::decide` against a per-file base, never by clock (see [`plan`]); writes
//! on either side are compare-and-swap commits or temp-and-rename file replacements (see
//! [`run`]). Host keys are trusted on first use and pinned (see [`ssh`]).
//!
//! Entry points: [`add`], [`trust`], [`remove`], [`status`] (also for the dashboard),
//! [`sync_now`] (CLI and API), and [`scheduler::run`] (started by `launch`).

mod device;
mod error;
mod plan;
mod report;
mod run;
pub(crate) mod scheduler;
mod spec;
mod ssh;

pub use error::RemoteError;
pub use report::{Counters, RunReport};
pub use spec::{parse_every, parse_maps, parse_target};

use crate::app::App;
use crate::meta::remotes::{NewRemote, RemoteRecord, RunRecord};
use crate::secrets::Token;
use crate::timestamps::{now_unix, rfc3339};
use serde::Serialize;
use ssh::Login;
use std::time::Duration;

/// A run holds its lease this long at most; a process that died mid-run frees the remote
/// for others after it.
const RUN_LEASE: Duration = Duration::from_secs(30 * 60);
/// A run taking longer is cut off (well inside the lease).
const RUN_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// What `remotes add` registers.
#[derive(Debug, Clone)]
pub struct AddRemote {
    pub name: String,
    pub user: String,
    /// `USER@HOST[:PORT]`
    pub ssh: String,
    pub key_path: String,
    /// `REMOTE_DIR=LIBRARY_PREFIX` each.
    pub maps: Vec<String>,
    pub every_secs: u64,
}

/// Register a remote: check the arguments, connect and log in once (which is what pins
/// the host key), create the device row. Returns the record; its `host_key` is the
/// fingerprint to show the admin.
pub async fn add(app: &App, request: &AddRemote) -> Result<RemoteRecord, anyhow::Error> {
    let name = crate::device_label::printable_label(&request.name, 64, true)
        .map_err(|e| anyhow::anyhow!("remote name {:?}: {e:?}", request.name))?
        .to_owned();
    let target = spec::parse_target(&request.ssh).map_err(anyhow::Error::msg)?;
    let maps = spec::parse_maps(&request.maps).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        request.every_secs >= spec::MIN_EVERY_SECS,
        "the interval must be at least {}s",
        spec::MIN_EVERY_SECS
    );
    let key_path = std::path::absolute(&request.key_path)
        .map_err(|e| anyhow::anyhow!("key file {}: {e}", request.key_path))?
        .display()
        .to_string();
    anyhow::ensure!(
        app.meta().remote_store().remote(&name).await?.is_none(),
        "a remote named {name:?} exists"
    );
    let login = Login {
        name: &name,
        user: &target.user,
        host: &target.host,
        port: target.port,
        key_path: &key_path,
        pinned: None,
    };
    let conn = ssh::connect(&login).await?;
    let host_key = conn.host_key.clone();
    drop(conn);
    let now = now_unix();
    let user_id = app.meta().ensure_user(request.user.trim(), now).await?;
    let new = NewRemote {
        name,
        user_id,
        ssh_user: target.user,
        host: target.host,
        port: target.port,
        key_path,
        maps,
        every_secs: request.every_secs,
        host_key,
        token_hash: Token::generate().hash(),
        now,
    };
    Ok(app.meta().remote_store().add_remote(&new).await?)
}

/// The old and new host key after [`trust`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted {
    pub old: String,
    pub new: String,
}

/// Connect without the pin and pin whatever key the device offers now (after the admin
/// checked that the device was reinstalled, not impersonated).
pub async fn trust(app: &App, name: &str) -> Result<Trusted, RemoteError> {
    let remote = find(app, name).await?;
    let login = Login {
        name: &remote.name,
        user: &remote.ssh_user,
        host: &remote.host,
        port: remote.port,
        key_path: &remote.key_path,
        pinned: None,
    };
    let conn = ssh::connect(&login).await?;
    let new = conn.host_key.clone();
    drop(conn);
    app.meta().remote_store().pin_host_key(remote.id, &new).await?;
    Ok(Trusted { old: remote.host_key, new })
}

/// Remove a remote (its device row is revoked, its history kept).
pub async fn remove(app: &App, name: &str) -> Result<bool, RemoteError> {
    Ok(app.meta().remote_store().remove_remote(name, now_unix()).await?)
}

async fn find(app: &App, name: &str) -> Result<RemoteRecord, RemoteError> {
    app.meta()
        .remote_store()
        .remote(name)
        .await?
        .ok_or_else(|| RemoteError::NotFound(name.to_owned()))
}

/// A remote as `remotes list`, the API and the dashboard show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteStatus {
    pub name: String,
    pub user: String,
    /// `USER@HOST:PORT`
    pub ssh: String,
    /// `REMOTE_DIR=LIBRARY_PREFIX` each.
    pub maps: Vec<String>,
    pub every_secs: u64,
    pub host_key: String,
    /// A different key the device offered; syncing is refused until `remotes trust`.
    pub offered_host_key: Option<String>,
    pub last_ok: Option<String>,
    pub last_error: Option<String>,
    pub last_run: Option<String>,
    pub next_run: String,
}

impl From<&RemoteRecord> for RemoteStatus {
    fn from(r: &RemoteRecord) -> Self {
        let host = if r.host.contains(':') { format!("[{}]", r.host) } else { r.host.clone() };
        RemoteStatus {
            name: r.name.clone(),
            user: r.user_name.clone(),
            ssh: format!("{}@{host}:{}", r.ssh_user, r.port),
            maps: r.maps.iter().map(|m| format!("{}={}", m.remote_dir, m.prefix)).collect(),
            every_secs: r.every_secs,
            host_key: r.host_key.clone(),
            offered_host_key: r.offered_host_key.clone(),
            last_ok: r.last_ok.map(rfc3339),
            last_error: r.last_error.clone(),
            last_run: r.last_run_at.map(rfc3339),
            next_run: rfc3339(r.next_run),
        }
    }
}

/// The remotes of one user (or all) with their status.
pub async fn status(
    app: &App,
    user: Option<crate::meta::UserId>,
) -> Result<Vec<RemoteStatus>, RemoteError> {
    let remotes = app.meta().remote_store().remotes(user).await?;
    Ok(remotes.iter().map(RemoteStatus::from).collect())
}

/// Sync `name` now, in this process: take the run lease (`Busy` if a run is under way),
/// run, record the outcome as the remote's status and schedule the next run.
pub async fn sync_now(
    app: &App,
    name: &str,
    counters: &Counters,
) -> Result<RunReport, RemoteError> {
    let remote = find(app, name).await?;
    run_claimed(app, &remote, counters).await
}

/// [`sync_now`] for a record already loaded (the scheduler).
pub(crate) async fn run_claimed(
    app: &App,
    remote: &RemoteRecord,
    counters: &Counters,
) -> Result<RunReport, RemoteError> {
    let store = app.meta().remote_store();
    let now = now_unix();
    let lease = i64::try_from(RUN_LEASE.as_secs()).unwrap_or(i64::MAX);
    if !store.claim_run(remote.id, now, now.saturating_add(lease)).await? {
        return Err(RemoteError::Busy(remote.name.clone()));
    }
    let outcome =
        match tokio::time::timeout(RUN_TIMEOUT, run::sync_remote(app, remote, counters)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                Err(RemoteError::Unreachable(format!("the run took longer than {RUN_TIMEOUT:?}")))
            }
        };
    let finished = now_unix();
    let every = i64::try_from(remote.every_secs).unwrap_or(i64::MAX);
    let error = match &outcome {
        Ok(report) => report
            .first_failure
            .as_ref()
            .map(|f| format!("{} file(s) failed; first: {f}", report.failed)),
        Err(e) => Some(e.to_string()),
    };
    let record = RunRecord { at: finished, error, next_run: finished.saturating_add(every) };
    store.finish_run(remote.id, &record).await?;
    match &outcome {
        Ok(report) => tracing::info!(
            remote = %remote.name,
            uploaded = report.uploaded,
            downloaded = report.downloaded,
            conflicts = report.conflicts,
            bytes_read = report.bytes_read,
            bytes_written = report.bytes_written,
            "remote synced"
        ),
        Err(e) if e.is_routine() => tracing::info!(remote = %remote.name, "remote not synced: {e}"),
        Err(e) => tracing::warn!(remote = %remote.name, "remote not synced: {e}"),
    }
    outcome
}
