//! [`RemoteStore`]: what the server remembers about SSH push-pull remotes (`crate::remotes`):
//! the remote itself (login, pinned host key, folder maps, schedule, last outcome) and, per
//! remote and save path, the base both sides last agreed on plus the device file's size,
//! mtime and hash when it was last read or written.
//!
//! A separate small trait next to [`MetaStore`](super::MetaStore) (reached through
//! `MetaStore::remote_store`) so the remote tables stay out of the core contract. Every
//! method is plain portable SQL semantics: one row per remote and per (remote, path), a
//! run claimed by a conditional `UPDATE` (a lease that expires), no backend-only features.

use super::{DeviceId, MetaError, UserId};
use savesync_core::Version;
use savesync_core::{ContentHash, SavePath};

/// Row id of a remote.
pub type RemoteId = i64;

/// One `--map REMOTE_DIR=LIBRARY_PREFIX`: files below `remote_dir` on the device are the
/// saves below `prefix` in the owner's library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMap {
    /// Absolute directory on the device, without a trailing `/`.
    pub remote_dir: String,
    pub prefix: SavePath,
}

/// A remote being registered (`remotes add`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRemote {
    pub name: String,
    pub user_id: UserId,
    pub ssh_user: String,
    pub host: String,
    pub port: u16,
    /// Where the private key file is; the key itself is never stored.
    pub key_path: String,
    pub maps: Vec<RemoteMap>,
    pub every_secs: u64,
    /// The pinned host key fingerprint (`SHA256:...`).
    pub host_key: String,
    /// Hash of an unguessable token nobody is given: the remote's device row must have one,
    /// but the remote never authenticates over HTTP.
    pub token_hash: String,
    pub now: i64,
}

/// A registered remote with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRecord {
    pub id: RemoteId,
    pub name: String,
    pub user_id: UserId,
    pub user_name: String,
    /// The device row commits are attributed to (kind `ssh`).
    pub device_id: DeviceId,
    pub ssh_user: String,
    pub host: String,
    pub port: u16,
    pub key_path: String,
    pub maps: Vec<RemoteMap>,
    pub every_secs: u64,
    pub host_key: String,
    /// A different key the device offered at the last attempt (refused until trusted).
    pub offered_host_key: Option<String>,
    pub created_at: i64,
    /// When the scheduler runs it next (Unix seconds).
    pub next_run: i64,
    pub last_run_at: Option<i64>,
    /// When a run last completed without error.
    pub last_ok: Option<i64>,
    /// Why the last run failed (`None` once a run succeeds).
    pub last_error: Option<String>,
}

/// What the device file looked like when the server last read or wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceStat {
    pub size: u64,
    pub mtime: i64,
    pub hash: ContentHash,
}

/// Per-remote, per-path sync state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub path: SavePath,
    /// The version both sides last agreed on.
    pub base: Option<Version>,
    /// The device file as last seen (`None`: absent on the device).
    pub device: Option<DeviceStat>,
    /// Set while `NAME.conflict` on the device holds this server content, written by a
    /// conflict and not yet resolved on the device.
    pub conflict: Option<ContentHash>,
}

/// How one run ended, for the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub at: i64,
    pub error: Option<String>,
    pub next_run: i64,
}

/// The store of remotes. See the module docs.
#[async_trait::async_trait]
pub trait RemoteStore: Send + Sync + std::fmt::Debug {
    /// Create the remote and its device row (kind `ssh`, named like the remote) in one
    /// transaction. `Conflict` when the name is taken.
    async fn add_remote(&self, new: &NewRemote) -> Result<RemoteRecord, MetaError>;
    async fn remote(&self, name: &str) -> Result<Option<RemoteRecord>, MetaError>;
    /// All remotes (of one user), by name.
    async fn remotes(&self, user: Option<UserId>) -> Result<Vec<RemoteRecord>, MetaError>;
    /// Delete the remote and its per-file state and revoke its device row (kept, so
    /// history still names it). False if no such remote.
    async fn remove_remote(&self, name: &str, now: i64) -> Result<bool, MetaError>;
    /// Pin `fingerprint` as the host key and forget any offered one.
    async fn pin_host_key(&self, remote: RemoteId, fingerprint: &str) -> Result<(), MetaError>;
    /// Remember a different key the device offered (shown by `remotes list`/`trust`).
    async fn offer_host_key(&self, remote: RemoteId, fingerprint: &str) -> Result<(), MetaError>;
    /// Take the run lease until `lease_until` if nobody holds an unexpired one: true when
    /// taken. Keeps two processes (scheduler, CLI) from syncing one device at once.
    async fn claim_run(
        &self,
        remote: RemoteId,
        now: i64,
        lease_until: i64,
    ) -> Result<bool, MetaError>;
    /// Record how a run ended and release the lease.
    async fn finish_run(&self, remote: RemoteId, run: &RunRecord) -> Result<(), MetaError>;
    /// Make the remote due now (the scheduler picks it up at its next check).
    async fn request_run(&self, remote: RemoteId) -> Result<(), MetaError>;
    async fn remote_files(&self, remote: RemoteId) -> Result<Vec<RemoteFile>, MetaError>;
    /// Insert or replace the state of one path.
    async fn put_remote_file(&self, remote: RemoteId, file: &RemoteFile) -> Result<(), MetaError>;
    async fn forget_remote_file(&self, remote: RemoteId, path: &SavePath) -> Result<(), MetaError>;
}
