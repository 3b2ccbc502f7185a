//! File operations on a connected device over SFTP, each bounded and each safe to cut off
//! half way: a directory walk (bounded in depth and entries), reading a file into the blob
//! store's private staging (hashed while it streams, nothing visible until published),
//! writing a file as a temp name in the same directory that is then renamed over the target
//! with the version's mtime set, and removing a file.
//!
//! A run that dies mid-write leaves at most a temp file (`.savesync-tmp-*`), never a
//! partial save: the next walk finds and removes it (only one run per remote at a time
//! holds the lease, so any temp file seen is a leftover).

use super::error::RemoteError;
use super::plan::Seen;
use super::report::Counters;
use super::ssh::Connection;
use crate::blob::{BlobReader, BlobStore, Digests, StagedBlob};
use bytes::Bytes;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, StatusCode};
use savesync_core::{CONFLICT_SUFFIX, SavePath, is_local_only_name};
use std::collections::{BTreeMap, BTreeSet};
use tokio::io::AsyncReadExt;

/// Names the remote writes before renaming; never synced, removed when found.
pub const TEMP_PREFIX: &str = ".savesync-tmp-";
/// Bytes per SFTP read or write request (OpenSSH serves up to 255 KiB; 32 KiB is safe
/// everywhere).
const CHUNK: u32 = 32 * 1024;
/// Deepest directory level walked below a mapped directory.
const MAX_DEPTH: usize = 16;
/// Most entries one walk of one mapped directory lists.
pub const MAX_ENTRIES: usize = 50_000;

/// What a walk of one mapped directory found, keyed by `/`-separated path relative to it.
#[derive(Debug, Default)]
pub struct Listing {
    pub files: BTreeMap<String, Seen>,
    /// Relative paths `P` for which `P.conflict` exists.
    pub conflict_copies: BTreeSet<String>,
    /// Absolute paths of temp files left by an interrupted run.
    pub leftovers: Vec<String>,
    /// Entries that are not syncable saves (odd names, symlinks, devices).
    pub skipped: u64,
}

fn status_code(e: &SftpError) -> Option<StatusCode> {
    match e {
        SftpError::Status(s) => Some(s.status_code),
        _ => None,
    }
}

/// A failed operation: a status answer is the device's refusal; anything else (a timeout,
/// a closed channel) means the device went away.
fn failed(what: &str, path: &str, e: &SftpError) -> RemoteError {
    match e {
        SftpError::Status(s) => {
            RemoteError::Device(format!("{what} {path}: {}: {}", s.status_code, s.error_message))
        }
        other => RemoteError::Unreachable(format!("{what} {path}: {other}")),
    }
}

/// Join a device directory and a relative path.
#[must_use]
pub fn join(dir: &str, rel: &str) -> String {
    if dir.ends_with('/') { format!("{dir}{rel}") } else { format!("{dir}/{rel}") }
}

/// Walk `root` (which must exist: a missing mapped directory, e.g. an SD card not
/// mounted, is an error rather than "every file was deleted").
pub async fn walk(conn: &Connection, root: &str) -> Result<Listing, RemoteError> {
    let mut listing = Listing::default();
    let mut entries = 0usize;
    let mut pending: Vec<(String, usize)> = vec![(String::new(), 0)];
    while let Some((rel_dir, depth)) = pending.pop() {
        let dir = if rel_dir.is_empty() { root.to_owned() } else { join(root, &rel_dir) };
        let handle = match conn.sftp.opendir(dir.as_str()).await {
            Ok(h) => h.handle,
            Err(e) if rel_dir.is_empty() && status_code(&e) == Some(StatusCode::NoSuchFile) => {
                return Err(RemoteError::Device(format!(
                    "the mapped directory {root} does not exist on the device"
                )));
            }
            Err(e) => return Err(failed("list", &dir, &e)),
        };
        let batch = loop_readdir(conn, &handle, &dir).await;
        let _ = conn.sftp.close(handle).await;
        for (name, attrs) in batch? {
            entries += 1;
            if entries > MAX_ENTRIES {
                return Err(RemoteError::Device(format!(
                    "{root} holds more than {MAX_ENTRIES} entries; map a narrower directory"
                )));
            }
            if name == "." || name == ".." {
                continue;
            }
            let rel = if rel_dir.is_empty() { name.clone() } else { format!("{rel_dir}/{name}") };
            if name.starts_with(TEMP_PREFIX) {
                listing.leftovers.push(join(root, &rel));
                continue;
            }
            if attrs.is_dir() {
                if depth + 1 < MAX_DEPTH && syncable_name(&rel) {
                    pending.push((rel, depth + 1));
                } else {
                    listing.skipped += 1;
                }
                continue;
            }
            if let Some(stem) = name.strip_suffix(CONFLICT_SUFFIX) {
                let original =
                    if rel_dir.is_empty() { stem.to_owned() } else { format!("{rel_dir}/{stem}") };
                listing.conflict_copies.insert(original);
                continue;
            }
            if !attrs.is_regular() || !syncable_name(&rel) {
                listing.skipped += 1;
                continue;
            }
            let seen =
                Seen { size: attrs.size.unwrap_or(0), mtime: i64::from(attrs.mtime.unwrap_or(0)) };
            listing.files.insert(rel, seen);
        }
    }
    Ok(listing)
}

async fn loop_readdir(
    conn: &Connection,
    handle: &str,
    dir: &str,
) -> Result<Vec<(String, FileAttributes)>, RemoteError> {
    let mut out = Vec::new();
    loop {
        match conn.sftp.readdir(handle).await {
            Ok(name) => {
                if name.files.is_empty() {
                    return Ok(out);
                }
                out.extend(name.files.into_iter().map(|f| (f.filename, f.attrs)));
                if out.len() > MAX_ENTRIES {
                    return Ok(out); // the caller reports the bound
                }
            }
            Err(e) if status_code(&e) == Some(StatusCode::Eof) => return Ok(out),
            Err(e) => return Err(failed("list", dir, &e)),
        }
    }
}

/// A name the library can hold exactly as the device spells it (valid, already NFC, not
/// an emulator's temp file). Others are left alone on the device.
fn syncable_name(rel: &str) -> bool {
    let last = rel.rsplit('/').next().unwrap_or(rel);
    !is_local_only_name(last) && SavePath::parse(rel).is_ok_and(|p| p.as_str() == rel)
}

/// Size and mtime of `path`, `None` when absent.
pub async fn stat(conn: &Connection, path: &str) -> Result<Option<Seen>, RemoteError> {
    match conn.sftp.lstat(path).await {
        Ok(a) if a.attrs.is_regular() => Ok(Some(Seen {
            size: a.attrs.size.unwrap_or(0),
            mtime: i64::from(a.attrs.mtime.unwrap_or(0)),
        })),
        Ok(_) => Err(RemoteError::Device(format!("{path} is not a regular file"))),
        Err(e) if status_code(&e) == Some(StatusCode::NoSuchFile) => Ok(None),
        Err(e) => Err(failed("stat", path, &e)),
    }
}

/// Read `path` into private staging, hashing as it streams, at most `limit` bytes.
pub async fn read_to_staging(
    conn: &Connection,
    blobs: &dyn BlobStore,
    path: &str,
    limit: u64,
    counters: &Counters,
) -> Result<Box<dyn StagedBlob>, RemoteError> {
    let handle = conn
        .sftp
        .open(path, OpenFlags::READ, FileAttributes::default())
        .await
        .map_err(|e| failed("open", path, &e))?
        .handle;
    // Why the stream ended early, if it was the device's doing.
    let mut cut_short: Option<RemoteError> = None;
    let staged = {
        let sftp = &conn.sftp;
        let handle = handle.as_str();
        let cut_short = &mut cut_short;
        let chunks = async_stream::stream! {
            let mut offset = 0u64;
            loop {
                match sftp.read(handle, offset, CHUNK).await {
                    Ok(data) if data.data.is_empty() => break,
                    Ok(data) => {
                        let n = data.data.len() as u64;
                        offset += n;
                        counters.add_read(n);
                        yield Ok(Bytes::from(data.data));
                    }
                    Err(e) if status_code(&e) == Some(StatusCode::Eof) => break,
                    Err(e) => {
                        let message = e.to_string();
                        *cut_short = Some(failed("read", path, &e));
                        yield Err(std::io::Error::other(message));
                        break;
                    }
                }
            }
        };
        // The stream borrows the connection, so it is staged right here (not spawned).
        stage_local(blobs, chunks, limit).await
    };
    let _ = conn.sftp.close(handle).await;
    match staged {
        Ok(staged) => Ok(staged),
        Err(e) => Err(cut_short.unwrap_or(e)),
    }
}

/// `BlobStore::stage` wants a `'static` stream; a borrowed one is forwarded through a
/// small channel while this task drives it.
async fn stage_local(
    blobs: &dyn BlobStore,
    chunks: impl futures::Stream<Item = std::io::Result<Bytes>>,
    limit: u64,
) -> Result<Box<dyn StagedBlob>, RemoteError> {
    use futures::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    let body = Box::pin(tokio_stream_from(rx));
    let feed = async move {
        let mut chunks = std::pin::pin!(chunks);
        while let Some(chunk) = chunks.next().await {
            if tx.send(chunk).await.is_err() {
                break; // staging gave up (too large, disk full)
            }
        }
    };
    let (staged, ()) = tokio::join!(blobs.stage(body, limit, Digests::Sha256), feed);
    staged.map_err(RemoteError::from)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    async_stream::stream! {
        while let Some(item) = rx.recv().await {
            yield item;
        }
    }
}

/// Create `dir` and its missing parents.
async fn make_dirs(conn: &Connection, dir: &str) -> Result<(), RemoteError> {
    let mut missing = Vec::new();
    let mut current = dir.to_owned();
    loop {
        match conn.sftp.stat(current.as_str()).await {
            Ok(_) => break,
            Err(e) if status_code(&e) == Some(StatusCode::NoSuchFile) => {
                let parent = current.rsplit_once('/').map(|(p, _)| p.to_owned());
                missing.push(current);
                match parent {
                    Some(p) if !p.is_empty() && missing.len() < MAX_DEPTH * 2 => current = p,
                    _ => break,
                }
            }
            Err(e) => return Err(failed("stat", &current, &e)),
        }
    }
    for dir in missing.into_iter().rev() {
        if let Err(e) = conn.sftp.mkdir(dir.as_str(), FileAttributes::default()).await {
            // Another writer may have made it meanwhile; only a real failure matters.
            if !matches!(conn.sftp.stat(dir.as_str()).await, Ok(a) if a.attrs.is_dir()) {
                return Err(failed("mkdir", &dir, &e));
            }
        }
    }
    Ok(())
}

/// Rename `from` over `to`: `posix-rename@openssh.com` when offered (atomic), else remove
/// then rename (the only way plain SFTP v3 replaces a file).
async fn rename_over(conn: &Connection, from: &str, to: &str) -> Result<(), RemoteError> {
    if conn.posix_rename {
        let mut data = Vec::with_capacity(8 + from.len() + to.len());
        for s in [from, to] {
            let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
            data.extend_from_slice(&len.to_be_bytes());
            data.extend_from_slice(s.as_bytes());
        }
        return match conn.sftp.extended("posix-rename@openssh.com", data).await {
            Ok(Packet::Status(s)) if s.status_code == StatusCode::Ok => Ok(()),
            Ok(Packet::Status(s)) => Err(RemoteError::Device(format!(
                "rename {from} over {to}: {}: {}",
                s.status_code, s.error_message
            ))),
            Ok(_) => Err(RemoteError::Device(format!("rename {from}: unexpected answer"))),
            Err(e) => Err(failed("rename", from, &e)),
        };
    }
    match conn.sftp.remove(to).await {
        Ok(_) => {}
        Err(e) if status_code(&e) == Some(StatusCode::NoSuchFile) => {}
        Err(e) => return Err(failed("remove", to, &e)),
    }
    conn.sftp.rename(from, to).await.map(drop).map_err(|e| failed("rename", from, &e))
}

/// Write `reader` to `path` through a temp file in the same directory, set its mtime,
/// and rename it over `path` unless `path` no longer looks like `expect` (the device
/// changed it meanwhile: then nothing is replaced and `Ok(None)` says so). Returns the new
/// file's size and mtime.
pub async fn write_file(
    conn: &Connection,
    path: &str,
    mut reader: BlobReader,
    mtime: i64,
    expect: Option<Seen>,
    counters: &Counters,
) -> Result<Option<Seen>, RemoteError> {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    make_dirs(conn, dir).await?;
    let temp = format!("{dir}/{TEMP_PREFIX}{:016x}-{name}", rand::random::<u64>());
    let temp = if temp.rsplit('/').next().is_some_and(|n| n.len() > 255) {
        format!("{dir}/{TEMP_PREFIX}{:016x}", rand::random::<u64>())
    } else {
        temp
    };
    let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::EXCLUDE;
    let handle = conn
        .sftp
        .open(temp.as_str(), flags, FileAttributes::default())
        .await
        .map_err(|e| failed("create", &temp, &e))?
        .handle;
    let written = copy_in(conn, &handle, &temp, &mut reader, counters).await;
    let closed = conn.sftp.close(handle).await.map_err(|e| failed("close", &temp, &e));
    let outcome = async {
        written?;
        closed?;
        let when = u32::try_from(mtime.max(0)).unwrap_or(u32::MAX);
        let times = FileAttributes { atime: Some(when), mtime: Some(when), ..Default::default() };
        conn.sftp
            .setstat(temp.as_str(), times)
            .await
            .map_err(|e| failed("set mtime", &temp, &e))?;
        if stat(conn, path).await? != expect {
            return Ok(None);
        }
        rename_over(conn, &temp, path).await?;
        stat(conn, path).await
    }
    .await;
    if !matches!(outcome, Ok(Some(_))) {
        // Best effort: a device that went away keeps the temp file until the next run.
        let _ = conn.sftp.remove(temp.as_str()).await;
    }
    outcome
}

async fn copy_in(
    conn: &Connection,
    handle: &str,
    temp: &str,
    reader: &mut BlobReader,
    counters: &Counters,
) -> Result<(), RemoteError> {
    let mut buf = vec![0u8; CHUNK as usize];
    let mut offset = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|e| RemoteError::Store(format!("reading a stored blob: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        conn.sftp
            .write(handle, offset, buf[..n].to_vec())
            .await
            .map_err(|e| failed("write", temp, &e))?;
        offset += n as u64;
        counters.add_written(n as u64);
    }
}

/// Remove `path` unless it no longer looks like `expect`; true when removed (or already
/// gone).
pub async fn remove_file(
    conn: &Connection,
    path: &str,
    expect: Option<Seen>,
) -> Result<bool, RemoteError> {
    let now = stat(conn, path).await?;
    if now.is_none() {
        return Ok(true);
    }
    if now != expect {
        return Ok(false);
    }
    match conn.sftp.remove(path).await {
        Ok(_) => Ok(true),
        Err(e) if status_code(&e) == Some(StatusCode::NoSuchFile) => Ok(true),
        Err(e) => Err(failed("remove", path, &e)),
    }
}

/// Remove a leftover temp file (best effort).
pub async fn remove_leftover(conn: &Connection, path: &str) {
    if let Err(e) = conn.sftp.remove(path).await {
        tracing::debug!(path, error = %e, "could not remove a leftover temp file");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn syncable_names() {
        assert!(super::syncable_name("gba/Pokemon Emerald.sav"));
        assert!(
            !super::syncable_name("gba/.DS_Store")
                || !savesync_core::is_local_only_name(".DS_Store")
        );
        assert!(!super::syncable_name("gba/a\\b.sav"));
        assert!(!super::syncable_name("e\u{301}.sav"), "NFD names are left alone");
    }

    #[test]
    fn joins() {
        assert_eq!(super::join("/saves", "gba/a.sav"), "/saves/gba/a.sav");
        assert_eq!(super::join("/", "a.sav"), "/a.sav");
    }
}
