//! Moving an install between backends: `savesync-server export DIR` writes every metadata
//! table and every referenced blob of the configured stores to a directory
//! ([`dump`]), and `savesync-server import DIR` loads such a directory into the configured
//! stores, which must be empty. SQLite + a blob directory to Postgres + S3 is export on
//! the old config and import on the new one; the way back is the same two commands.
//!
//! Checks: an export fails if a table's row count changed while it was written (the server
//! was still taking writes) or a referenced blob is missing or does not hash to its name.
//! An import verifies each blob's hash as the store receives it, and ends with the count
//! check: every table holds exactly the exported rows and every blob a version references
//! is in the target store.
//!
//! Run either with the server stopped (an export of a live server fails its count check).

pub mod dump;

use crate::blob::BlobStore;
use crate::meta::MetaStore;
use dump::{Manifest, TableCount, TableReader, TableWriter};
use futures::StreamExt;
use savesync_core::ContentHash;
use sha2::{Digest, Sha256};
use std::path::Path;
use tokio::io::AsyncReadExt;

/// Rows per page read from or written to a database.
pub const PAGE_ROWS: usize = 2000;

/// Tables the stores maintain themselves from other tables (the quota totals follow
/// `versions` by trigger on both backends). An import does not insert their rows: it
/// checks that what the target computed equals what was exported.
pub const DERIVED_TABLES: &[&str] = &["user_usage"];

/// What a long export or import reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Table { name: String, rows: u64 },
    Blobs { done: u64, total: u64, bytes: u64 },
}

/// Export the stores into `dir` (created; it must not exist or be empty).
pub async fn export(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
    dir: &Path,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> anyhow::Result<Manifest> {
    let occupied = std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false);
    anyhow::ensure!(!occupied, "{} is not empty: export into a new directory", dir.display());
    std::fs::create_dir_all(dir.join("tables"))?;
    std::fs::create_dir_all(dump::blob_dir(dir))?;
    let access = meta.tables();
    let mut tables = Vec::new();
    for name in access.tables().await? {
        let columns = access.columns(&name).await?;
        let mut writer = TableWriter::create(dir, &name, &columns)?;
        let mut offset = 0u64;
        loop {
            let page = access.read_rows(&name, &columns, offset, PAGE_ROWS as u64).await?;
            if page.is_empty() {
                break;
            }
            offset += page.len() as u64;
            writer.write(&page)?;
        }
        let rows = writer.finish()?;
        let now = access.count(&name).await?;
        anyhow::ensure!(
            now == rows,
            "{name} changed during the export ({rows} rows written, {now} now): stop the server and export again"
        );
        progress(Progress::Table { name: name.clone(), rows });
        tables.push(TableCount { name, rows });
    }
    let mut hashes: Vec<ContentHash> = meta.referenced_hashes().await?.into_iter().collect();
    hashes.sort_by_key(ContentHash::to_hex);
    let total = hashes.len() as u64;
    let mut bytes = 0u64;
    for (i, hash) in hashes.iter().enumerate() {
        bytes += export_blob(blobs, hash, dir).await?;
        if (i + 1) % 500 == 0 || i + 1 == hashes.len() {
            progress(Progress::Blobs { done: i as u64 + 1, total, bytes });
        }
    }
    let manifest = Manifest { format: dump::FORMAT, tables, blobs: total, blob_bytes: bytes };
    dump::write_manifest(dir, &manifest)?;
    Ok(manifest)
}

/// Copy one blob to the dump, hashing as it goes; returns its size.
async fn export_blob(blobs: &dyn BlobStore, hash: &ContentHash, dir: &Path) -> anyhow::Result<u64> {
    let (mut reader, _) = blobs
        .get(hash)
        .await
        .map_err(|e| anyhow::anyhow!("blob {hash} that a version references: {e}"))?;
    let path = dump::blob_dir(dir).join(hash.to_hex());
    let mut out = std::fs::File::create(&path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        std::io::Write::write_all(&mut out, &buf[..n])?;
        size += n as u64;
    }
    let actual = ContentHash::from_bytes(hasher.finalize().into());
    anyhow::ensure!(actual == *hash, "blob {hash} is damaged in the store: it hashes to {actual}");
    out.sync_all()?;
    Ok(size)
}

/// Import `dir` (an export) into the stores, which must hold no data yet.
pub async fn import(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
    dir: &Path,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> anyhow::Result<Manifest> {
    let manifest = dump::read_manifest(dir)?;
    let access = meta.tables();
    let order = access.tables().await?;
    let exported: Vec<&str> = manifest.tables.iter().map(|t| t.name.as_str()).collect();
    let mut theirs: Vec<&str> = exported.clone();
    theirs.sort_unstable();
    let mut ours: Vec<&str> = order.iter().map(String::as_str).collect();
    ours.sort_unstable();
    anyhow::ensure!(
        theirs == ours,
        "the export's tables {theirs:?} are not this server's {ours:?}: import with the savesync-server version that exported it"
    );
    let mut occupied = Vec::new();
    for name in &order {
        if access.count(name).await? > 0 {
            occupied.push(name.clone());
        }
    }
    anyhow::ensure!(
        occupied.is_empty(),
        "the target already holds data (in {occupied:?}): import only into a new, empty database"
    );
    for name in order.iter().filter(|t| !DERIVED_TABLES.contains(&t.as_str())) {
        let mut reader = TableReader::open(dir, name)?;
        let mut rows = 0u64;
        loop {
            let page = reader.next_page(PAGE_ROWS)?;
            if page.is_empty() {
                break;
            }
            rows += page.len() as u64;
            access.insert_rows(name, &reader.columns, &page).await?;
        }
        progress(Progress::Table { name: name.clone(), rows });
    }
    access.finish_import().await?;
    for name in order.iter().filter(|t| DERIVED_TABLES.contains(&t.as_str())) {
        check_derived(access, dir, name).await?;
        progress(Progress::Table { name: name.clone(), rows: access.count(name).await? });
    }
    let (done, bytes) = import_blobs(blobs, dir, manifest.blobs, progress).await?;
    check_counts(meta, blobs, &manifest, done, bytes).await?;
    Ok(manifest)
}

async fn import_blobs(
    blobs: &dyn BlobStore,
    dir: &Path,
    total: u64,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> anyhow::Result<(u64, u64)> {
    let (mut done, mut bytes) = (0u64, 0u64);
    for entry in std::fs::read_dir(dump::blob_dir(dir))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let hash: ContentHash = name
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: not a blob of an export: {e}", path.display()))?;
        let file = tokio::fs::File::open(&path).await?;
        let body = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).boxed();
        bytes += blobs
            .put(&hash, body, u64::MAX)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        done += 1;
        if done % 500 == 0 || done == total {
            progress(Progress::Blobs { done, total, bytes });
        }
    }
    Ok((done, bytes))
}

/// A derived table computed by the target holds exactly the exported rows.
async fn check_derived(
    access: &dyn crate::meta::tables::TableAccess,
    dir: &Path,
    name: &str,
) -> anyhow::Result<()> {
    let mut reader = TableReader::open(dir, name)?;
    let mut exported = Vec::new();
    loop {
        let page = reader.next_page(PAGE_ROWS)?;
        if page.is_empty() {
            break;
        }
        exported.extend(page);
    }
    let mut computed = Vec::new();
    loop {
        let page = access
            .read_rows(name, &reader.columns, computed.len() as u64, PAGE_ROWS as u64)
            .await?;
        if page.is_empty() {
            break;
        }
        computed.extend(page);
    }
    let key = |rows: Vec<Vec<crate::meta::tables::Cell>>| {
        let mut lines: Vec<String> =
            rows.iter().map(|r| serde_json::to_string(r).unwrap_or_default()).collect();
        lines.sort_unstable();
        lines
    };
    anyhow::ensure!(
        key(exported) == key(computed),
        "{name}: the totals the target computed from the imported rows differ from the exported ones"
    );
    Ok(())
}

/// Every table holds what was exported, and every referenced blob is stored.
async fn check_counts(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
    manifest: &Manifest,
    blob_count: u64,
    blob_bytes: u64,
) -> anyhow::Result<()> {
    let access = meta.tables();
    for t in &manifest.tables {
        let now = access.count(&t.name).await?;
        anyhow::ensure!(now == t.rows, "{}: {now} rows imported, {} exported", t.name, t.rows);
    }
    anyhow::ensure!(
        (blob_count, blob_bytes) == (manifest.blobs, manifest.blob_bytes),
        "{blob_count} blobs ({blob_bytes} bytes) imported, {} ({} bytes) exported",
        manifest.blobs,
        manifest.blob_bytes
    );
    for hash in meta.referenced_hashes().await? {
        anyhow::ensure!(
            blobs.contains(&hash).await?,
            "blob {hash} is referenced but was not imported"
        );
    }
    Ok(())
}
