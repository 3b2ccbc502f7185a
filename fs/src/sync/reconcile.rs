//! [`SyncEngine::sync_path`]: decide one save with `core::decide`, plan with
//! [`super::plan::plan`], and carry the plan out against the server and the local store.
//!
//! Inputs: `local` is the hash of the device's bytes (for a save known only from the
//! server and never downloaded, its base: the device "has" the base without its bytes),
//! `base` and `head` come from the state DB. A lost compare-and-swap (409) records the head
//! the server returned and decides again, which turns it into a conflict or a convergence.
//!
//! No lock is held across network I/O: the snapshot is taken, the call made, and the
//! result installed only if the entry did not change meanwhile (else decide again).

use super::SyncEngine;
use super::plan::{Action, PlanConfig, PlanInput, SyncMode, plan};
use super::prefetch::Parked;
use crate::local::{Entry, EntryKind, Installed, LocalBytes, LocalError, LocalStore};
use crate::remote::{Fetched, RemoteError};
use crate::state::{ConflictRow, Record};
use savesync_core::wire::SaveMeta;
use savesync_core::{ContentHash, SavePath, Version, decide};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The save is settled for now.
    Done,
    /// The file is being written: try again later.
    Busy,
}

/// A sync that failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("local: {0}")]
    Local(String),
}

impl SyncError {
    pub(crate) fn local(e: impl std::fmt::Display) -> SyncError {
        SyncError::Local(e.to_string())
    }
}

impl From<LocalError> for SyncError {
    fn from(e: LocalError) -> SyncError {
        SyncError::Local(e.0)
    }
}

/// What the device has for one save path right now.
#[derive(Debug, Clone)]
struct Snapshot {
    entry: Entry,
    record: Record,
    conflict: Option<ConflictRow>,
    /// An upload that may have been committed without its answer reaching us.
    in_flight: Vec<(ContentHash, savesync_core::Rev)>,
}

/// The hash of what the device has for a save, and its bytes when they are here.
type LocalContent = (Option<ContentHash>, Option<LocalBytes>);

impl SyncEngine {
    /// The snapshot of `path` and, in the same blocking step, what the device has there:
    /// `None` when its bytes changed while being read (they are in motion: try again after
    /// the flush). One step, not two: every save a device writes goes through here.
    async fn snapshot_with_content(
        &self,
        path: &SavePath,
    ) -> Result<(Snapshot, Option<LocalContent>), SyncError> {
        let p = path.clone();
        self.local(move |l| -> Result<_, LocalError> {
            let snap = Snapshot {
                entry: l.entry(&p)?,
                record: l.db().record(&p)?,
                conflict: l.db().conflict(&p)?,
                in_flight: l.db().uploads_in_flight(&p)?,
            };
            let content = local_content(l, &p, &snap)?;
            Ok((snap, content))
        })
        .await
        .map_err(SyncError::from)
    }

    /// Upload `bytes` (hashing to `hash`) on top of `expected`. The attempt is noted first
    /// (`state::in_flight`), so a commit whose answer is lost to a crash is recognised as
    /// ours later; a refusal clears the note, a success clears it with the agreement.
    async fn upload(
        &self,
        path: &SavePath,
        expected: savesync_core::Rev,
        hash: Option<ContentHash>,
        bytes: LocalBytes,
    ) -> Result<SaveMeta, SyncError> {
        if let Some(hash) = hash {
            // Best effort: on a full disk the note cannot be written, and the save must still
            // reach the server. Without it a lost answer shows as a conflict copy; nothing is lost.
            if let Err(e) =
                self.bookkeeping(|l| l.db().note_upload_in_flight(path, &hash, expected))
            {
                tracing::warn!(%path, "noting an upload in flight: {e}");
            }
        }
        let result = match bytes {
            LocalBytes::Small(b) => self.remote.upload(path.clone(), expected, b).await,
            LocalBytes::Large(file) => self.remote.upload_file(path.clone(), expected, file).await,
        };
        if let Some(hash) = hash
            && matches!(result, Err(RemoteError::Conflict(_) | RemoteError::NameCollision { .. }))
            && let Err(e) =
                self.bookkeeping(|l| l.db().clear_upload_in_flight(path, &hash, expected))
        {
            tracing::warn!(%path, "clearing a refused upload's note: {e}");
        }
        result.map_err(SyncError::Remote)
    }

    /// The head is this device's own upload whose answer was lost (kill -9 after the
    /// server committed): make it the base. Returns whether it did.
    async fn adopt_own_commit(&self, path: &SavePath, snap: &Snapshot) -> Result<bool, SyncError> {
        let rec = &snap.record;
        let Some(head) = rec.head else { return Ok(false) };
        let ours = snap
            .in_flight
            .iter()
            .any(|(hash, expected)| head.hash == Some(*hash) && head.rev == expected.next());
        if !ours || rec.base == Some(head) {
            return Ok(false);
        }
        let size = rec.head_size;
        self.bookkeeping(|l| l.db().agree(path, head, size)).map_err(SyncError::local)?;
        tracing::info!(%path, rev = %head.rev, "the server holds this device's unanswered upload: it is the base now");
        Ok(true)
    }

    /// Record that the server agrees on `meta` for `path`.
    async fn agree(&self, path: &SavePath, meta: &SaveMeta, size: u64) -> Result<(), SyncError> {
        self.bookkeeping(|l| l.db().agree(path, meta.version(), size)).map_err(SyncError::local)
    }

    /// Decide `path` and act. Bounded: a handful of compare-and-swap rounds at most. A
    /// bulk-prefetched copy of the path not used by this sync is dropped when it ends.
    pub async fn sync_path(&self, path: &SavePath, mode: SyncMode) -> Result<Outcome, SyncError> {
        let result = self.decide_and_act(path, mode).await;
        self.prefetch.forget(path);
        result
    }

    async fn decide_and_act(&self, path: &SavePath, mode: SyncMode) -> Result<Outcome, SyncError> {
        let path_lock = self.path_lock(path);
        let _guard = path_lock.lock().await;
        let cfg = PlanConfig {
            prefetch_max_bytes: self.cfg.prefetch_max_bytes,
            shows_uncached: self.local.shows_uncached(),
        };
        // Our bytes that were offered and refused (409) in this call: the server holds them
        // now, as a `conflict` version.
        let mut kept: Option<ContentHash> = None;
        // Set once the old name of a case-only rename was synced first (`names.rs`).
        let mut twin_synced = false;
        for _round in 0..4 {
            let (mut snap, mut content) = self.snapshot_with_content(path).await?;
            if self.adopt_own_commit(path, &snap).await? {
                (snap, content) = self.snapshot_with_content(path).await?;
            }
            let Some((local, bytes)) = content else { return Ok(Outcome::Busy) };
            let rec = &snap.record;
            let decision = decide(local, rec.base, rec.head);
            tracing::debug!(%path, ?decision, "sync decision");
            let input = PlanInput {
                entry: snap.entry.clone(),
                decision,
                base: rec.base,
                head: rec.head,
                head_size: rec.head_size,
                local,
                backed_up: kept.or(snap.conflict.as_ref().and_then(|c| c.backed_up)),
                conflict_shown: snap.conflict.as_ref().map(ConflictRow::version),
            };
            let planned = plan(&input, mode, cfg);
            if planned.drop_conflict
                && let Some(c) = snap.conflict.clone()
            {
                let p = path.clone();
                self.local(move |l| l.drop_conflict(&p, &c)).await?;
            }
            if let Some(v) = planned.record_base {
                self.bookkeeping(|l| l.db().set_base(path, v)).map_err(SyncError::local)?;
            }
            match planned.action {
                Action::Done => return Ok(Outcome::Done),
                Action::Busy => return Ok(Outcome::Busy),
                Action::MissingBytes => {
                    return Err(SyncError::Local(format!("{path}: upload without bytes")));
                }
                Action::Download(v) => return self.download(path, v, &snap.entry, mode).await,
                Action::ShowUncached(v) => {
                    let shown = [(path.clone(), v, rec.head_size)];
                    self.local(move |l| l.show_uncached(&shown)).await?;
                    return Ok(Outcome::Done);
                }
                Action::Upload { expected } => {
                    let Some(bytes) = bytes else {
                        return Err(SyncError::Local(format!("{path}: upload without bytes")));
                    };
                    match self.upload(path, expected, local, bytes).await {
                        Ok(meta) => {
                            self.status.set_online(true);
                            self.agree(path, &meta, meta.size).await?;
                            tracing::debug!(%path, rev = %meta.rev, "uploaded");
                            return Ok(Outcome::Done);
                        }
                        Err(SyncError::Remote(RemoteError::Conflict(head))) => {
                            kept = local;
                            self.note_conflict_head(path, head).await?;
                        }
                        Err(SyncError::Remote(RemoteError::NameCollision {
                            existing,
                            message,
                        })) => match existing {
                            Some(twin) if !twin_synced && self.removed_here(&twin).await? => {
                                twin_synced = true;
                                tracing::info!(%path, %twin, "removing the old name on the server first");
                                self.sync_removed_twin(&twin, mode).await?;
                            }
                            _ => return Err(RemoteError::Refused(message).into()),
                        },
                        Err(e) => return Err(e),
                    }
                }
                Action::BackUp { expected } => {
                    let Some(bytes) = bytes else {
                        return Err(SyncError::Local(format!("{path}: backup without bytes")));
                    };
                    match self.upload(path, expected, local, bytes).await {
                        Ok(meta) => {
                            // The head was our base after all: no conflict any more.
                            self.agree(path, &meta, meta.size).await?;
                        }
                        Err(SyncError::Remote(RemoteError::Conflict(head))) => {
                            kept = local;
                            if let (Some(hash), Some(_)) = (local, &snap.conflict) {
                                let p = path.clone();
                                self.local(move |l| l.db().set_conflict_backed_up(&p, hash))
                                    .await
                                    .map_err(SyncError::local)?;
                            }
                            tracing::debug!(%path, "kept on the server as a conflict version");
                            self.note_conflict_head(path, head).await?;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Action::DeleteRemote { expected } => {
                    if let Some(done) = self.delete_remote(path, expected).await? {
                        return Ok(done);
                    }
                }
                Action::RemoveLocal(v) => {
                    let (p, seen) = (path.clone(), snap.entry.clone());
                    return match self.local(move |l| l.remove(&p, v, &seen)).await? {
                        Installed::Done => Ok(Outcome::Done),
                        Installed::Changed => Ok(Outcome::Busy),
                    };
                }
                Action::ShowConflict(v) => {
                    return self.conflict_copy(path, v, rec.head_size, input.backed_up).await;
                }
            }
        }
        Ok(Outcome::Busy)
    }

    /// Delete `path` on the server if its head is still `expected`. `Some` when settled,
    /// `None` when the head moved (decide again).
    async fn delete_remote(
        &self,
        path: &SavePath,
        expected: savesync_core::Rev,
    ) -> Result<Option<Outcome>, SyncError> {
        // A save moved away from this path before its bytes were ever downloaded has them
        // only on the server, as a version of this path: fetch them before the delete lets
        // retention prune that version.
        let p = path.clone();
        for moved in self.local(move |l| l.moved_from(&p)).await? {
            self.fetch_moved(&moved).await?;
        }
        match self.remote.delete(path.clone(), expected).await {
            Ok(meta) => {
                self.agree(path, &meta, 0).await?;
                tracing::info!(%path, rev = %meta.rev, "deleted on the server");
                Ok(Some(Outcome::Done))
            }
            Err(RemoteError::Conflict(head)) => {
                self.note_conflict_head(path, head).await?;
                Ok(None)
            }
            Err(RemoteError::NotFound) => {
                let p = path.clone();
                self.local(move |l| l.db().clear_head(&p).and_then(|()| l.db().set_base(&p, None)))
                    .await
                    .map_err(SyncError::local)?;
                Ok(Some(Outcome::Done))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Download `v` of `path` and make it the local content and the base.
    async fn download(
        &self,
        path: &SavePath,
        v: Version,
        seen: &Entry,
        mode: SyncMode,
    ) -> Result<Outcome, SyncError> {
        // A bulk prefetch may have (or be bringing) exactly these bytes: take them
        // instead of fetching; they are installed below like any download.
        let (tmp, fetched, bulk) = match self.prefetch.take(path, v).await {
            Parked::File { tmp, size } => (tmp, Fetched { version: v, size }, true),
            Parked::None => {
                let tmp = self.local.download_tmp(path);
                let fetched =
                    self.remote.download_to_file(path.clone(), Some(v.rev), tmp.clone()).await;
                match fetched {
                    Ok(f) => (tmp, f, false),
                    Err(e) => {
                        let _ = tokio::fs::remove_file(&tmp).await;
                        return Err(e.into());
                    }
                }
            }
        };
        self.status.set_online(true);
        let (p, seen) = (path.clone(), seen.clone());
        let installed =
            self.local(move |l| l.install(&p, tmp, fetched.version, fetched.size, &seen)).await?;
        if installed == Installed::Changed {
            // The file changed while we downloaded: the next decision sees the new bytes.
            tracing::debug!(%path, ?mode, "download discarded: local file changed meanwhile");
            return Ok(Outcome::Busy);
        }
        if bulk {
            self.prefetch.note_used();
        }
        tracing::debug!(%path, rev = %fetched.version.rev, bulk, "downloaded");
        Ok(Outcome::Done)
    }

    /// Show the other side's version `v` beside the save as `NAME.conflict`. `backed_up`
    /// is the hash of this device's bytes already kept on the server, if any.
    async fn conflict_copy(
        &self,
        path: &SavePath,
        v: Version,
        size: u64,
        backed_up: Option<ContentHash>,
    ) -> Result<Outcome, SyncError> {
        let Some(hash) = v.hash else { return Ok(Outcome::Done) };
        let tmp = self.local.download_tmp(path);
        if let Err(e) = self.remote.download_to_file(path.clone(), Some(v.rev), tmp.clone()).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e.into());
        }
        let row = ConflictRow { path: path.clone(), ino: 0, rev: v.rev, hash, size, backed_up };
        let p = path.clone();
        self.local(move |l| l.put_conflict(&p, tmp, &row)).await?;
        tracing::warn!(%path, rev = %v.rev, "conflict: the other version is shown as NAME.conflict");
        Ok(Outcome::Done)
    }

    async fn note_conflict_head(
        &self,
        path: &SavePath,
        head: Option<Box<SaveMeta>>,
    ) -> Result<(), SyncError> {
        self.status.set_online(true);
        let p = path.clone();
        self.local(move |l| match head {
            Some(h) => l.db().note_head(&p, h.version(), h.size),
            None => l.db().clear_head(&p),
        })
        .await
        .map_err(SyncError::local)
    }
}

/// What the device has for `path` as `snap` saw it: the hash and bytes of a cached file
/// (`None` when they changed while being read), the base's hash for a file never
/// downloaded, nothing for anything else.
fn local_content(
    l: &dyn LocalStore,
    path: &SavePath,
    snap: &Snapshot,
) -> Result<Option<LocalContent>, LocalError> {
    match (snap.entry.kind, snap.entry.cached) {
        (EntryKind::File, true) => {
            let (hash, bytes) = l.read(path)?;
            // Read after the snapshot: if the bytes moved in between (a write, truncate or
            // flush), what was read belongs to no closed version.
            let after = l.entry(path)?;
            let unmoved = !after.unflushed && after.token == snap.entry.token;
            Ok(unmoved.then_some((Some(hash), Some(bytes))))
        }
        (EntryKind::File, false) => Ok(Some((snap.record.base.and_then(|b| b.hash), None))),
        _ => Ok(Some((None, None))),
    }
}
