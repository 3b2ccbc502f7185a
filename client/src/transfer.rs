//! Streaming transfers between the server and local files, for saves too big to hold in
//! memory comfortably (memory cards, PC saves, whole save folders packed by a frontend).
//!
//! Downloads never expose a half-written or unverified file: bytes go to a hidden temp
//! sibling of the destination (`.NAME.<random>.savesync.tmp`, a name the mount keeps
//! local), are hashed on the way, fsynced, and only then renamed over the destination; the
//! directory is fsynced so the rename survives a crash. Any failure removes the temp file.
//!
//! Uploads hash the file first, then stream exactly that many bytes with the hash in the
//! header; if the file changes in between, the server refuses it with `hash_mismatch` and
//! stores nothing.

use crate::client::{Client, decode_json, transport_error};
use crate::error::{ClientError, Result};
use crate::retry::Repeat;
use crate::saves::content_headers;
use rand::Rng;
use reqwest::Method;
use reqwest::header::CONTENT_LENGTH;
use savesync_core::wire::{HASH_HEADER, SaveMeta};
use savesync_core::{ContentHash, ContentHasher, Rev, SavePath, Version};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

/// Read size for hashing and streaming files.
const CHUNK: usize = 64 * 1024;

/// What [`Client::download_to_file`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadedFile {
    /// The `(rev, hash)` now in the file: the device's new base for this save.
    pub version: Version,
    pub size: u64,
}

impl Client {
    /// Stream the head of `path` (or revision `rev`) into `dest`, atomically: `dest` is
    /// either untouched or holds exactly the verified bytes.
    pub async fn download_to_file(
        &self,
        path: &SavePath,
        rev: Option<Rev>,
        dest: &Path,
    ) -> Result<DownloadedFile> {
        let url = self.content_url(path, rev.map(|r| ("rev", r)));
        self.retrying(Repeat::Safe, || async {
            let request = self.request(Method::GET, url.clone());
            let idle = self.request_timeout();
            let mut response = tokio::time::timeout(idle, self.send(request, None))
                .await
                .map_err(|_| ClientError::Timeout(idle))??;
            let (rev, expected) = content_headers(response.headers())?;

            let (temp, mut file) = TempFile::create_beside(dest).await?;
            let (actual, size) = stream_body(&mut response, &mut file, idle, &temp.path).await?;
            if actual != expected {
                return Err(ClientError::HashMismatch { expected, actual });
            }
            file.flush().await.map_err(|e| ClientError::io(&temp.path, e))?;
            file.sync_all().await.map_err(|e| ClientError::io(&temp.path, e))?;
            drop(file);
            temp.persist(dest).await?;
            Ok(DownloadedFile { version: Version { rev, hash: Some(actual) }, size })
        })
        .await
    }

    /// Stream the head of `path` (or revision `rev`) into `out` chunk by chunk (nothing is
    /// held whole in memory), hashing on the way. Bytes reach `out` before the hash can be
    /// checked, so a mismatch is reported after the fact as [`ClientError::HashMismatch`]:
    /// the caller must then treat what it wrote as garbage. Retried only until the first
    /// byte is written.
    pub async fn download_to_writer<W>(
        &self,
        path: &SavePath,
        rev: Option<Rev>,
        out: &mut W,
        label: &Path,
    ) -> Result<DownloadedFile>
    where
        W: tokio::io::AsyncWrite + Unpin,
    {
        let url = self.content_url(path, rev.map(|r| ("rev", r)));
        let idle = self.request_timeout();
        let mut response = self
            .retrying(Repeat::Safe, || async {
                let request = self.request(Method::GET, url.clone());
                tokio::time::timeout(idle, self.send(request, None))
                    .await
                    .map_err(|_| ClientError::Timeout(idle))?
            })
            .await?;
        let (rev, expected) = content_headers(response.headers())?;
        let (actual, size) = stream_body(&mut response, out, idle, label).await?;
        out.flush().await.map_err(|e| ClientError::io(label, e))?;
        if actual != expected {
            return Err(ClientError::HashMismatch { expected, actual });
        }
        Ok(DownloadedFile { version: Version { rev, hash: Some(actual) }, size })
    }

    /// Upload the content of `file` as the new head of `path`, conditional on `base`.
    pub async fn upload_file(&self, path: &SavePath, base: Rev, file: &Path) -> Result<SaveMeta> {
        let url = self.content_url(path, Some(("base_rev", base)));
        self.retrying(Repeat::Safe, || async {
            let (hash, size) = hash_file(file).await?;
            let reader = tokio::fs::File::open(file).await.map_err(|e| ClientError::io(file, e))?;
            // Send exactly the bytes that were hashed; if the file grew meanwhile the tail
            // is not sent, and the server's hash check catches any other change.
            let body =
                reqwest::Body::wrap_stream(ReaderStream::with_capacity(reader.take(size), CHUNK));
            let limit = self.transfer_timeout(size);
            let request = self
                .request(Method::PUT, url.clone())
                .header(HASH_HEADER, hash.to_hex())
                .header(CONTENT_LENGTH, size)
                .body(body);
            let response = self.send(request, Some(limit)).await?;
            decode_json(response, limit).await
        })
        .await
    }
}

/// SHA-256 and length of a file's current content.
pub(crate) async fn hash_file(path: &Path) -> Result<(ContentHash, u64)> {
    let mut file = tokio::fs::File::open(path).await.map_err(|e| ClientError::io(path, e))?;
    let mut hasher = ContentHasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).await.map_err(|e| ClientError::io(path, e))?;
        if n == 0 {
            return Ok((hasher.finish(), size));
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
}

/// A temp file beside a destination, removed on drop unless persisted.
struct TempFile {
    path: PathBuf,
    persisted: bool,
}

impl TempFile {
    async fn create_beside(dest: &Path) -> Result<(TempFile, tokio::fs::File)> {
        let dir = parent_dir(dest);
        let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let nonce: u64 = rand::rng().random();
        let path = dir.join(format!(".{name}.{nonce:016x}.savesync.tmp"));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| ClientError::io(&path, e))?;
        Ok((TempFile { path, persisted: false }, file))
    }

    /// Rename over `dest` and fsync the directory so the rename is durable.
    async fn persist(mut self, dest: &Path) -> Result<()> {
        tokio::fs::rename(&self.path, dest).await.map_err(|e| ClientError::io(dest, e))?;
        self.persisted = true;
        let dir = parent_dir(dest);
        tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
            .await
            .map_err(|e| ClientError::io(dest, std::io::Error::other(e)))?
            .map_err(|e| ClientError::io(dest, e))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            // Best effort: a leftover temp file is harmless and carries a recognisable name.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn parent_dir(dest: &Path) -> PathBuf {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Stream a response body into `out`, hashing it on the way; returns its hash and size.
/// The idle deadline is per chunk rather than for the whole body: a big save on a slow
/// link is fine as long as bytes keep arriving. `label` names `out` in I/O errors.
async fn stream_body<W>(
    response: &mut reqwest::Response,
    out: &mut W,
    idle: std::time::Duration,
    label: &Path,
) -> Result<(ContentHash, u64)>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut hasher = ContentHasher::new();
    let mut size = 0u64;
    while let Some(chunk) = tokio::time::timeout(idle, response.chunk())
        .await
        .map_err(|_| ClientError::Timeout(idle))?
        .map_err(|e| transport_error(e, idle))?
    {
        hasher.update(&chunk);
        size += chunk.len() as u64;
        out.write_all(&chunk).await.map_err(|e| ClientError::io(label, e))?;
    }
    Ok((hasher.finish(), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_file_matches_one_shot_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("card1.mcd");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        assert_eq!(hash_file(&path).await.unwrap(), (ContentHash::of(&data), data.len() as u64));
    }

    #[tokio::test]
    async fn unpersisted_temp_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a.srm");
        let (temp, file) = TempFile::create_beside(&dest).await.unwrap();
        assert!(temp.path.exists());
        drop((temp, file));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
