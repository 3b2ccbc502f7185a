//! [`sync_path`]: decide one save with `core::decide` and carry the decision out.
//!
//! Inputs: `local` is the hash of the cache file (for a save known only from the server
//! and never downloaded, its base: the device "has" the base without its bytes), `base`
//! and `head` come from the state DB. A lost compare-and-swap (409) records the head the
//! server returned and decides again, which turns it into a conflict or a convergence.
//!
//! No lock is held across network I/O: the snapshot is taken, the call made, and the
//! result installed only if the file did not change meanwhile (else decide again).

use super::install;
use crate::remote::RemoteError;
use crate::savefs::{SaveFs, lock};
use crate::state::{ConflictRow, InodeKind, Record};
use bytes::Bytes;
use savesync_core::{ContentHash, ContentHasher, Decision, Rev, SavePath, decide};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// Why `sync_path` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// From the queue: large downloads are left for open; busy files wait.
    Background,
    /// A FUSE thread opening (or renaming) the file: its bytes are needed now.
    Open,
}

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

/// What the device has for one save path right now.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub ino: Option<u64>,
    pub kind: Option<InodeKind>,
    pub cached: bool,
    /// Open for writing or written since the last flush: bytes must not be replaced.
    pub busy: bool,
    /// Written since the last flush/fsync: bytes are mid-change, do not upload yet.
    pub unflushed: bool,
    pub cache_mtime_ns: i64,
    pub record: Record,
    pub conflict: Option<ConflictRow>,
}

fn snapshot(fs: &SaveFs, path: &SavePath) -> Result<Snapshot, SyncError> {
    let record = fs.db.record(path).map_err(SyncError::local)?;
    let conflict = fs.db.conflict(path).map_err(SyncError::local)?;
    let t = lock(&fs.table);
    let ino = t.lookup_path(path);
    let inode = ino.and_then(|i| t.get(i));
    Ok(Snapshot {
        ino,
        kind: inode.map(|i| i.row.kind),
        cached: inode.is_some_and(|i| i.row.cached),
        busy: inode.is_some_and(|i| i.open_writers > 0 || i.unflushed),
        unflushed: inode.is_some_and(|i| i.unflushed),
        cache_mtime_ns: inode.map_or(0, |i| i.row.cache_mtime_ns),
        record,
        conflict,
    })
}

/// Saves up to this size are read into memory to hash and upload; bigger ones are hashed
/// and uploaded by streaming the cache file, so a 64 MiB memory card never sits in RAM.
const IN_MEMORY_MAX: u64 = 4 * 1024 * 1024;

/// The local bytes of a save, ready to upload.
#[derive(Debug, Clone)]
enum Local {
    Small(Bytes),
    Large(PathBuf),
}

/// Hash of a file, read in chunks.
pub(crate) fn hash_file(path: &Path) -> std::io::Result<ContentHash> {
    hash_file_reporting(path, |_| {})
}

/// Hash of a file, read in chunks; `on_read` hears the size of every chunk read.
pub(crate) fn hash_file_reporting(
    path: &Path,
    mut on_read: impl FnMut(u64),
) -> std::io::Result<ContentHash> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = ContentHasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        on_read(n as u64);
        hasher.update(&buf[..n]);
    }
}

async fn read_local(fs: &SaveFs, ino: u64) -> Result<(ContentHash, Local), SyncError> {
    let p = fs.cache_path(ino);
    let (hash, local, stat) = tokio::task::spawn_blocking(move || {
        let stat = crate::state::StatKey::of(&std::fs::metadata(&p)?);
        if stat.size <= IN_MEMORY_MAX {
            let bytes = Bytes::from(std::fs::read(&p)?);
            Ok((ContentHash::of(&bytes), Local::Small(bytes), stat))
        } else {
            Ok((hash_file(&p)?, Local::Large(p), stat))
        }
    })
    .await
    .map_err(SyncError::local)?
    .map_err(|e: std::io::Error| SyncError::local(e))?;
    fs.count_read(stat.size);
    super::hash_cache::remember(fs, ino, stat, hash);
    Ok((hash, local))
}

async fn upload_local(
    fs: &SaveFs,
    path: &SavePath,
    expected: Rev,
    local: Local,
) -> Result<savesync_core::wire::SaveMeta, RemoteError> {
    match local {
        Local::Small(bytes) => fs.remote.upload(path.clone(), expected, bytes).await,
        Local::Large(file) => {
            // Streamed from the cache file: read once more.
            fs.count_read(std::fs::metadata(&file).map_or(0, |m| m.len()));
            fs.remote.upload_file(path.clone(), expected, file).await
        }
    }
}

/// Decide `path` and act. Bounded: a handful of compare-and-swap rounds at most.
pub async fn sync_path(fs: &SaveFs, path: &SavePath, mode: SyncMode) -> Result<Outcome, SyncError> {
    let path_lock = fs.path_lock(path);
    let _guard = path_lock.lock().await;
    // Our bytes that were offered and refused (409) in this call: the server holds them
    // now, as a `conflict` version.
    let mut kept: Option<ContentHash> = None;
    // Set once the old name of a case-only rename was synced first (`names.rs`).
    let mut twin_synced = false;
    for _round in 0..4 {
        let snap = snapshot(fs, path)?;
        if snap.kind.is_some_and(|k| k != InodeKind::File) {
            // A local directory (or symlink, FIFO, ...) shadows a server save of the same
            // name: leave both alone.
            return Ok(Outcome::Done);
        }
        let (local, bytes) = match (snap.ino, snap.cached) {
            (None, _) => (None, None),
            (Some(_), false) => (snap.record.base.and_then(|b| b.hash), None),
            (Some(ino), true) => {
                let (hash, local) = read_local(fs, ino).await?;
                (Some(hash), Some(local))
            }
        };
        let rec = snap.record;
        let decision = decide(local, rec.base, rec.head);
        tracing::debug!(%path, ?decision, "sync decision");
        if snap.conflict.is_some() && !matches!(decision, Decision::Conflict(_)) {
            install::drop_conflict(fs, path, snap.conflict.as_ref())?;
        }
        match decision {
            Decision::NoOp | Decision::RecordBase(_) => {
                if let Decision::RecordBase(v) = decision {
                    fs.db.set_base(path, v).map_err(SyncError::local)?;
                }
                // A save shown without its bytes: fetch them when opened, or now if small
                // enough to prefetch for offline play.
                let prefetch = mode == SyncMode::Open
                    || (rec.head_size <= fs.cfg.prefetch_max_bytes && !snap.busy);
                if prefetch && snap.ino.is_some() && !snap.cached {
                    if let Some(v) = rec.head.filter(|h| h.hash.is_some()).or(rec.base) {
                        return install::download(fs, path, v, &snap, mode).await;
                    }
                }
                return Ok(Outcome::Done);
            }
            Decision::Upload { expected } => {
                // An emulator may keep its save open for hours and fsync it: what was
                // flushed is uploaded; only bytes still in motion wait.
                if snap.unflushed && mode == SyncMode::Background {
                    return Ok(Outcome::Busy);
                }
                let Some(bytes) = bytes else {
                    return Err(SyncError::Local(format!("{path}: upload without bytes")));
                };
                match upload_local(fs, path, expected, bytes).await {
                    Ok(meta) => {
                        fs.online.store(true, Ordering::Relaxed);
                        fs.db.agree(path, meta.version(), meta.size).map_err(SyncError::local)?;
                        tracing::debug!(%path, rev = %meta.rev, "uploaded");
                        return Ok(Outcome::Done);
                    }
                    Err(RemoteError::Conflict(head)) => {
                        kept = local;
                        note_conflict_head(fs, path, head)?;
                    }
                    Err(RemoteError::NameCollision { existing, message }) => match existing {
                        Some(twin) if !twin_synced && super::names::removed_here(fs, &twin)? => {
                            twin_synced = true;
                            tracing::info!(%path, %twin, "removing the old name on the server first");
                            super::names::sync_removed_twin(fs, &twin, mode).await?;
                        }
                        _ => return Err(RemoteError::Refused(message).into()),
                    },
                    Err(e) => return Err(e.into()),
                }
            }
            Decision::DeleteRemote { expected } => {
                // A save moved away from this path before its bytes were ever downloaded
                // has them only on the server, as a version of this path: fetch them
                // before the delete lets retention prune that version.
                for ino in fs.db.moved_from(path).map_err(SyncError::local)? {
                    fs.fetch_moved(ino).await?;
                }
                match fs.remote.delete(path.clone(), expected).await {
                    Ok(meta) => {
                        fs.db.agree(path, meta.version(), 0).map_err(SyncError::local)?;
                        tracing::info!(%path, rev = %meta.rev, "deleted on the server");
                        return Ok(Outcome::Done);
                    }
                    Err(RemoteError::Conflict(head)) => note_conflict_head(fs, path, head)?,
                    Err(RemoteError::NotFound) => {
                        fs.db.clear_head(path).map_err(SyncError::local)?;
                        fs.db.set_base(path, None).map_err(SyncError::local)?;
                        return Ok(Outcome::Done);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Decision::Download(v) => {
                if snap.busy {
                    return Ok(Outcome::Busy);
                }
                let large = rec.head_size > fs.cfg.prefetch_max_bytes;
                if mode == SyncMode::Background && large && (snap.ino.is_none() || !snap.cached) {
                    // Too big to prefetch: show it, fetch it when opened.
                    install::show_uncached(fs, path, v, rec.head_size)?;
                    return Ok(Outcome::Done);
                }
                return install::download(fs, path, v, &snap, mode).await;
            }
            Decision::DeleteLocal(v) => {
                if snap.busy {
                    return Ok(Outcome::Busy);
                }
                install::remove_local(fs, path, v)?;
                return Ok(Outcome::Done);
            }
            Decision::Conflict(v) => {
                // While the conflict is open, every new closed version of our bytes is
                // offered against our (stale) base: the compare-and-swap fails and the
                // server keeps them in the save's history as a `conflict` version, so
                // whichever side the user picks, nothing closed here is lost. What was
                // kept is remembered, so unchanged bytes are not sent twice. Bytes still
                // being written wait for their flush, which queues the save again.
                let backed_up = kept.or(snap.conflict.as_ref().and_then(|c| c.backed_up));
                let in_motion = snap.unflushed && mode == SyncMode::Background;
                if let Some(bytes) = bytes.filter(|_| local != backed_up && !in_motion) {
                    let expected = rec.base.map_or(Rev::NONE, |b| b.rev);
                    match upload_local(fs, path, expected, bytes).await {
                        Ok(meta) => {
                            // The head was our base after all: no conflict any more.
                            fs.db
                                .agree(path, meta.version(), meta.size)
                                .map_err(SyncError::local)?;
                            continue;
                        }
                        Err(RemoteError::Conflict(head)) => {
                            kept = local;
                            if let (Some(hash), Some(_)) = (local, &snap.conflict) {
                                fs.db
                                    .set_conflict_backed_up(path, hash)
                                    .map_err(SyncError::local)?;
                            }
                            tracing::debug!(%path, "kept on the server as a conflict version");
                            note_conflict_head(fs, path, head)?;
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                if snap.conflict.as_ref().is_some_and(|c| c.version() == v) {
                    return Ok(Outcome::Done);
                }
                return install::conflict_copy(fs, path, v, rec.head_size, backed_up).await;
            }
        }
    }
    Ok(Outcome::Busy)
}

fn note_conflict_head(
    fs: &SaveFs,
    path: &SavePath,
    head: Option<Box<savesync_core::wire::SaveMeta>>,
) -> Result<(), SyncError> {
    fs.online.store(true, Ordering::Relaxed);
    match head {
        Some(h) => fs.db.note_head(path, h.version(), h.size).map_err(SyncError::local),
        None => fs.db.clear_head(path).map_err(SyncError::local),
    }
}
