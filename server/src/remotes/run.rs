//! One run of one remote: connect, then for each mapped directory walk the device, list
//! the library below the prefix, and carry out [`plan`]'s step for every path either side
//! (or the remembered state) knows. Device files whose size and mtime are unchanged are
//! not read; changed ones are read into staging, hashed as they stream.
//!
//! Every library write goes through `crate::publish` with the remote's device as the
//! actor, a compare-and-swap on the base revision exactly like a device upload, so the
//! feed wakes mounts at once and history names the remote. Every device write is a temp
//! file renamed over the target, only if the target still looks as it did when the run
//! decided (otherwise the file waits for the next run: `deferred`).
//!
//! A lost connection aborts the run (nothing half-done is recorded: state is written per
//! file, after that file's transfer completed); any other failure of one file is counted
//! and the run goes on with the next.

use super::device::{self, Listing};
use super::error::RemoteError;
use super::plan::{Seen, Step, cached_hash, plan, stat_is_stable};
use super::report::{Counters, RunReport};
use super::ssh::{self, Connection, Login};
use crate::app::App;
use crate::blob::StagedBlob;
use crate::meta::remotes::{DeviceStat, RemoteFile, RemoteMap, RemoteRecord};
use crate::meta::{Actor, CommitOutcome, CommitRequest, NewContent};
use crate::publish::commit_and_publish;
use crate::timestamps::now_unix;
use savesync_core::wire::SaveMeta;
use savesync_core::{CONFLICT_SUFFIX, ContentHash, Rev, SavePath};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Connect to `remote` with its pinned host key. A different key is remembered as
/// offered (for `remotes list` and `remotes trust`) and refused.
pub async fn connect_pinned(app: &App, remote: &RemoteRecord) -> Result<Connection, RemoteError> {
    let login = Login {
        name: &remote.name,
        user: &remote.ssh_user,
        host: &remote.host,
        port: remote.port,
        key_path: &remote.key_path,
        pinned: Some(&remote.host_key),
    };
    match ssh::connect(&login).await {
        Err(RemoteError::HostKeyChanged { name, pinned, offered }) => {
            app.meta().remote_store().offer_host_key(remote.id, &offered).await?;
            Err(RemoteError::HostKeyChanged { name, pinned, offered })
        }
        other => other,
    }
}

/// Sync `remote` once (the caller holds its run lease).
pub async fn sync_remote(
    app: &App,
    remote: &RemoteRecord,
    counters: &Counters,
) -> Result<RunReport, RemoteError> {
    if app.meta().device_revoked(remote.device_id).await? {
        return Err(RemoteError::Revoked);
    }
    let conn = connect_pinned(app, remote).await?;
    let states: HashMap<SavePath, RemoteFile> = app
        .meta()
        .remote_store()
        .remote_files(remote.id)
        .await?
        .into_iter()
        .map(|f| (f.path.clone(), f))
        .collect();
    let mut report = RunReport::default();
    let run = Run { app, remote, conn: &conn, counters, states: &states };
    for map in &remote.maps {
        run.map(map, &mut report).await?;
    }
    report.take_counters(counters);
    Ok(report)
}

struct Run<'a> {
    app: &'a App,
    remote: &'a RemoteRecord,
    conn: &'a Connection,
    counters: &'a Counters,
    states: &'a HashMap<SavePath, RemoteFile>,
}

/// One path's inputs.
struct FileJob<'a> {
    path: SavePath,
    device_path: String,
    seen: Option<Seen>,
    head: Option<&'a SaveMeta>,
    state: Option<&'a RemoteFile>,
    copy_present: bool,
}

/// The path of `save` relative to `prefix` (`None` for the prefix itself or outside it).
fn relative<'p>(prefix: &SavePath, save: &'p SavePath) -> Option<&'p str> {
    save.as_str().strip_prefix(prefix.as_str())?.strip_prefix('/')
}

/// Unix seconds of a head's commit time, for the mtime of the file written from it.
fn commit_time(meta: &SaveMeta) -> i64 {
    OffsetDateTime::parse(&meta.committed_at, &Rfc3339)
        .map_or_else(|_| now_unix(), OffsetDateTime::unix_timestamp)
}

impl Run<'_> {
    fn actor(&self) -> Actor {
        Actor { user_id: self.remote.user_id, device_id: Some(self.remote.device_id) }
    }

    async fn map(&self, map: &RemoteMap, report: &mut RunReport) -> Result<(), RemoteError> {
        let listing: Listing = device::walk(self.conn, &map.remote_dir).await?;
        for leftover in &listing.leftovers {
            device::remove_leftover(self.conn, leftover).await;
            report.leftovers_removed += 1;
        }
        report.skipped += listing.skipped;
        report.files_seen += listing.files.len() as u64;
        let (saves, _) =
            self.app.meta().list_saves(self.remote.user_id, Some(&map.prefix), true).await?;
        let heads: BTreeMap<String, SaveMeta> = saves
            .into_iter()
            .filter_map(|s| relative(&map.prefix, &s.path).map(str::to_owned).map(|r| (r, s)))
            .collect();
        let mut paths: BTreeSet<String> = listing.files.keys().cloned().collect();
        paths.extend(heads.keys().cloned());
        paths
            .extend(self.states.keys().filter_map(|p| relative(&map.prefix, p)).map(str::to_owned));
        for rel in paths {
            let Ok(path) = SavePath::parse(&format!("{}/{rel}", map.prefix)) else {
                report.skipped += 1;
                continue;
            };
            let job = FileJob {
                device_path: device::join(&map.remote_dir, &rel),
                seen: listing.files.get(&rel).copied(),
                head: heads.get(&rel),
                state: self.states.get(&path),
                copy_present: listing.conflict_copies.contains(&rel),
                path,
            };
            match self.file(&job, report).await {
                Ok(()) => {}
                Err(e @ (RemoteError::Unreachable(_) | RemoteError::Revoked)) => return Err(e),
                Err(e) => {
                    tracing::warn!(remote = %self.remote.name, path = %job.path, error = %e, "file not synced");
                    report.fail(format!("{}: {e}", job.path));
                }
            }
        }
        Ok(())
    }

    async fn stage(&self, device_path: &str) -> Result<Box<dyn StagedBlob>, RemoteError> {
        self.counters.file_read();
        let limit = self.app.config().max_body_bytes;
        device::read_to_staging(
            self.conn,
            self.app.blobs().as_ref(),
            device_path,
            limit,
            self.counters,
        )
        .await
    }

    async fn file(&self, job: &FileJob<'_>, report: &mut RunReport) -> Result<(), RemoteError> {
        let recorded = job.state.and_then(|s| s.device.as_ref());
        let mut staged = None;
        let local = match job.seen {
            None => None,
            Some(seen) => match cached_hash(recorded, seen) {
                Some(hash) => Some(hash),
                None if seen.size > self.app.config().max_body_bytes => {
                    report.skipped += 1;
                    return Ok(());
                }
                None => {
                    let blob = self.stage(&job.device_path).await?;
                    let hash = blob.hash();
                    staged = Some(blob);
                    Some(hash)
                }
            },
        };
        // A look the state already vouched for stays; a fresh read is remembered only if
        // the file was not modified this very moment (`stat_is_stable`): else the next run
        // reads it again.
        let device_now = match (job.seen, local) {
            (Some(seen), Some(hash)) if staged.is_none() => {
                Some(DeviceStat { size: seen.size, mtime: seen.mtime, hash })
            }
            (Some(seen), Some(hash)) if stat_is_stable(seen.mtime, now_unix()) => {
                Some(DeviceStat { size: seen.size, mtime: seen.mtime, hash })
            }
            _ => None,
        };
        let base = job.state.and_then(|s| s.base);
        let step = plan(job.state, local, job.head.map(SaveMeta::version), job.copy_present);
        let mut next =
            RemoteFile { path: job.path.clone(), base, device: device_now, conflict: None };
        match step {
            Step::Nothing => {}
            Step::Record(v) => next.base = v,
            Step::AwaitResolution => {
                next.conflict = job.state.and_then(|s| s.conflict);
                report.open_conflicts += 1;
            }
            Step::Upload { expected } => {
                let Some(local) = local else { return Ok(()) };
                let Some(blob) = self.staged_as(job, staged, local, report).await? else {
                    return Ok(());
                };
                match self.commit_bytes(job, blob, expected).await? {
                    CommitOutcome::Committed(meta) | CommitOutcome::Unchanged(meta) => {
                        next.base = Some(meta.version());
                        report.uploaded += 1;
                    }
                    CommitOutcome::Conflict(Some(head)) if head.hash.is_some() => {
                        // The library moved on meanwhile; the device bytes are kept as a
                        // conflict version already. Show the head beside them.
                        self.write_conflict_copy(job, &head).await?;
                        next.base = Some(head.version());
                        next.conflict = head.hash;
                        report.conflicts += 1;
                    }
                    outcome => return Err(unexpected(&job.path, &outcome)),
                }
            }
            Step::DeleteOnServer { expected } => {
                let request = self.request(job, expected, NewContent::Tombstone, "delete");
                match commit_and_publish(self.app, &request, None).await? {
                    CommitOutcome::Committed(meta) | CommitOutcome::Unchanged(meta) => {
                        next.base = Some(meta.version());
                        report.deleted_on_server += 1;
                    }
                    CommitOutcome::NotFound => next.base = None,
                    outcome => return Err(unexpected(&job.path, &outcome)),
                }
            }
            Step::Download(v) => {
                let Some(head) = job.head else { return Ok(()) };
                match self.write_version(&job.device_path, head, job.seen).await? {
                    Some(written) => {
                        next.base = Some(v);
                        next.device = v.hash.map(|hash| DeviceStat {
                            size: written.size,
                            mtime: written.mtime,
                            hash,
                        });
                        report.downloaded += 1;
                    }
                    None => {
                        report.deferred += 1;
                        return Ok(());
                    }
                }
            }
            Step::DeleteOnDevice(v) => {
                if device::remove_file(self.conn, &job.device_path, job.seen).await? {
                    next.base = Some(v);
                    next.device = None;
                    report.deleted_on_device += 1;
                } else {
                    report.deferred += 1;
                    return Ok(());
                }
            }
            Step::Conflict(v) => {
                let (Some(local), Some(head)) = (local, job.head) else { return Ok(()) };
                let Some(blob) = self.staged_as(job, staged, local, report).await? else {
                    return Ok(());
                };
                // Rev::NONE against an existing head can only lose the compare-and-swap,
                // so the store keeps the device's bytes as a `conflict` version.
                let outcome = self.commit_bytes(job, blob, Rev::NONE).await?;
                if !matches!(outcome, CommitOutcome::Conflict(_)) {
                    return Err(unexpected(&job.path, &outcome));
                }
                self.write_conflict_copy(job, head).await?;
                next.base = Some(v);
                next.conflict = v.hash;
                report.conflicts += 1;
            }
            Step::RefreshConflictCopy(v) => {
                let Some(head) = job.head else { return Ok(()) };
                self.write_conflict_copy(job, head).await?;
                next.base = Some(v);
                next.conflict = v.hash;
                report.open_conflicts += 1;
            }
        }
        if job.state != Some(&next) {
            self.app.meta().remote_store().put_remote_file(self.remote.id, &next).await?;
        }
        Ok(())
    }

    /// The device bytes the plan was made on: the blob staged during this run, or (when
    /// the cached hash was used) a fresh read that must still hash the same.
    async fn staged_as(
        &self,
        job: &FileJob<'_>,
        staged: Option<Box<dyn StagedBlob>>,
        local: ContentHash,
        report: &mut RunReport,
    ) -> Result<Option<Box<dyn StagedBlob>>, RemoteError> {
        let blob = match staged {
            Some(blob) => blob,
            None => self.stage(&job.device_path).await?,
        };
        if blob.hash() == local {
            Ok(Some(blob))
        } else {
            report.deferred += 1; // changed while we looked; the next run sees it
            Ok(None)
        }
    }

    fn request(
        &self,
        job: &FileJob<'_>,
        base_rev: Rev,
        content: NewContent,
        operation: &'static str,
    ) -> CommitRequest {
        CommitRequest {
            actor: self.actor(),
            path: job.path.clone(),
            base_rev,
            content,
            operation,
            now: now_unix(),
        }
    }

    async fn commit_bytes(
        &self,
        job: &FileJob<'_>,
        blob: Box<dyn StagedBlob>,
        base_rev: Rev,
    ) -> Result<CommitOutcome, RemoteError> {
        let (hash, size) = (blob.hash(), blob.size());
        crate::quota::enforce(self.app, self.remote.user_id, hash, size)
            .await
            .map_err(|e| RemoteError::Store(e.message))?;
        let request = self.request(job, base_rev, NewContent::Bytes { hash, size }, "upload");
        let outcome = commit_and_publish(self.app, &request, Some(blob)).await?;
        if matches!(outcome, CommitOutcome::Committed(_)) {
            crate::metrics::add(&self.app.metrics().upload_bytes, size);
        }
        Ok(outcome)
    }

    /// Write `head`'s bytes to `device_path` if it still looks like `expect`.
    async fn write_version(
        &self,
        device_path: &str,
        head: &SaveMeta,
        expect: Option<Seen>,
    ) -> Result<Option<Seen>, RemoteError> {
        let Some(hash) = head.hash else { return Ok(None) };
        let (reader, _) = self.app.blobs().get(&hash).await?;
        let written = device::write_file(
            self.conn,
            device_path,
            reader,
            commit_time(head),
            expect,
            self.counters,
        )
        .await?;
        if written.is_some() {
            crate::metrics::add(&self.app.metrics().download_bytes, head.size);
        }
        Ok(written)
    }

    /// Write `head` as `NAME.conflict` beside the device's file (replacing an older copy).
    async fn write_conflict_copy(
        &self,
        job: &FileJob<'_>,
        head: &SaveMeta,
    ) -> Result<(), RemoteError> {
        let copy = format!("{}{CONFLICT_SUFFIX}", job.device_path);
        let current = device::stat(self.conn, &copy).await?;
        match self.write_version(&copy, head, current).await? {
            Some(_) => Ok(()),
            None => Err(RemoteError::Device(format!("{copy} changed while it was being replaced"))),
        }
    }
}

fn unexpected(path: &SavePath, outcome: &CommitOutcome) -> RemoteError {
    let what = match outcome {
        CommitOutcome::NameCollision(existing) => {
            format!("its name collides with {} (names differ only in case)", existing.path)
        }
        CommitOutcome::Conflict(_) => "the library changed meanwhile; retried next run".to_owned(),
        _ => "unexpected commit outcome".to_owned(),
    };
    RemoteError::Device(format!("{path}: {what}"))
}
