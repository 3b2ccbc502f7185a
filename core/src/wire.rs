//! JSON bodies of the HTTP API (`/api/v1`), shared by the server and the device client so
//! the two cannot drift. `docs/protocol.md` describes each endpoint that carries them.
//!
//! Times are RFC 3339 strings in UTC and are informational only: no decision ever reads
//! them.

use crate::{ContentHash, Decision, ErrorCode, Rev, SavePath, Seq, Version};
use serde::{Deserialize, Serialize};

/// Request header carrying the hex SHA-256 of an upload body.
pub const HASH_HEADER: &str = "x-savesync-sha256";
/// Response header carrying the revision of downloaded bytes.
pub const REV_HEADER: &str = "x-savesync-rev";
/// API prefix of every endpoint but `/metrics`.
pub const API_PREFIX: &str = "/api/v1";

/// The head of one save as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaveMeta {
    pub path: SavePath,
    pub rev: Rev,
    /// The user-wide feed position of this commit.
    pub seq: Seq,
    /// `None` for a tombstone.
    pub hash: Option<ContentHash>,
    pub size: u64,
    pub deleted: bool,
    /// When the server committed it (informational).
    pub committed_at: String,
    /// Name of the device that committed it, if still known.
    pub device: Option<String>,
}

impl SaveMeta {
    /// The `(rev, hash)` pair the decision table works on.
    #[must_use]
    pub fn version(&self) -> Version {
        Version { rev: self.rev, hash: self.hash }
    }
}

/// Every error body: a stable code, a human message, and for `conflict` the current head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<SaveMeta>,
}

/// `GET /api/v1/saves?prefix=P&include_deleted=B`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaveList {
    pub saves: Vec<SaveMeta>,
    /// The feed position this listing reflects: follow the feed from here.
    pub cursor: Seq,
}

/// `GET /api/v1/changes?since=S&wait_ms=W&limit=N`: heads committed after `since`, oldest
/// first, one entry per commit (a save may appear more than once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangesPage {
    pub changes: Vec<SaveMeta>,
    /// Ask for changes after this next time.
    pub cursor: Seq,
    /// True when `limit` cut the page and more changes are ready now.
    pub more: bool,
}

/// Data of the `cursor` event on `GET /api/v1/events` (server-sent events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorEvent {
    pub cursor: Seq,
}

/// `POST /api/v1/pair` (no token): trade a one-time code for a device token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairRequest {
    pub code: String,
    pub device_name: String,
    /// Free-form: `handheld`, `desktop`, `steamdeck`, `server` ...
    #[serde(default)]
    pub device_kind: String,
}

/// The token is shown exactly once, here.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairResponse {
    pub device_id: i64,
    pub user: String,
    pub token: String,
}

impl std::fmt::Debug for PairResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairResponse")
            .field("device_id", &self.device_id)
            .field("user", &self.user)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// `POST /api/v1/pairing-codes` (token): a code another device can pair with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingCode {
    pub code: String,
    pub expires_at: String,
}

/// One device of the calling user (`GET /api/v1/devices`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub created_at: String,
    pub last_seen_at: Option<String>,
    pub revoked: bool,
    /// True for the device whose token made the request.
    #[serde(default)]
    pub current: bool,
}

/// `GET /api/v1/devices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceList {
    pub devices: Vec<DeviceInfo>,
}

/// Why a version is in a save's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionKind {
    /// It was (or is) the head at `rev`.
    Commit,
    /// An upload that lost a compare-and-swap: kept so no closed save is ever lost, never
    /// the head. `rev` is the base the uploader had.
    Conflict,
}

/// One entry of `GET /api/v1/saves/history?path=P`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Identifies this entry for restore.
    pub version_id: i64,
    pub kind: VersionKind,
    pub rev: Rev,
    pub hash: Option<ContentHash>,
    pub size: u64,
    pub created_at: String,
    pub device: Option<String>,
}

/// `GET /api/v1/saves/history?path=P`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub path: SavePath,
    pub versions: Vec<HistoryEntry>,
}

/// `POST /api/v1/saves/restore`: commit an old version's bytes as a new head,
/// conditional on `base_rev` being the head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRequest {
    pub path: SavePath,
    pub version_id: i64,
    pub base_rev: Rev,
}

/// One manifest entry a device sends to negotiate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub path: SavePath,
    /// Hash of the local bytes; `None` when the device has no file there.
    pub local: Option<ContentHash>,
    /// The version the device last agreed on, if any.
    pub base: Option<Version>,
}

/// `POST /api/v1/negotiate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NegotiateRequest {
    pub entries: Vec<ManifestEntry>,
}

/// What the device should do with one save.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Upload,
    Download,
    DeleteRemote,
    DeleteLocal,
    Conflict,
    /// Record `head` as the new base (or forget the base when `head` is absent).
    RecordBase,
    NoOp,
    /// The device opted out of this save.
    Untracked,
}

impl ActionKind {
    /// The wire action for a decision, with the head revision an upload or delete is
    /// conditional on.
    #[must_use]
    pub fn of(decision: Decision) -> (ActionKind, Option<Rev>) {
        match decision {
            Decision::NoOp => (ActionKind::NoOp, None),
            Decision::RecordBase(_) => (ActionKind::RecordBase, None),
            Decision::Upload { expected } => (ActionKind::Upload, Some(expected)),
            Decision::DeleteRemote { expected } => (ActionKind::DeleteRemote, Some(expected)),
            Decision::Download(_) => (ActionKind::Download, None),
            Decision::DeleteLocal(_) => (ActionKind::DeleteLocal, None),
            Decision::Conflict(_) => (ActionKind::Conflict, None),
        }
    }
}

/// One line of the negotiate answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedAction {
    pub path: SavePath,
    pub action: ActionKind,
    /// For upload/delete_remote: the head revision the write is conditional on.
    pub expected_rev: Option<Rev>,
    /// The server head the decision was made against.
    pub head: Option<SaveMeta>,
}

/// `POST /api/v1/negotiate` answer. Saves the server has that the manifest did not name
/// are included (as downloads), except tombstones, which need no action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NegotiateResponse {
    pub session_id: i64,
    /// Feed position the plan reflects.
    pub cursor: Seq,
    /// Only actions other than `no_op` are listed.
    pub actions: Vec<PlannedAction>,
}

/// `POST /api/v1/sessions/{id}/complete`: what the device did with the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SessionReport {
    pub uploaded: u64,
    pub downloaded: u64,
    pub deleted: u64,
    pub conflicts: u64,
    pub errors: u64,
}

/// `GET /api/v1/untracked`: saves this device opted out of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UntrackedList {
    pub paths: Vec<SavePath>,
}

/// `GET /api/v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// One line of `GET /api/v1/audit`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub device: Option<String>,
    pub operation: String,
    pub path: Option<String>,
    pub detail: String,
}

/// `GET /api/v1/audit?limit=N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLog {
    pub entries: Vec<AuditEntry>,
}
