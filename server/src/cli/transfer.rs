//! `savesync-server export DIR` and `savesync-server import DIR`: move an install between
//! backends (`crate::transfer`). Both act on the stores the config names, so moving from
//! SQLite + a blob directory to Postgres + S3 is `export` with the old config and
//! `import` with the new one. Progress goes to stderr, the summary to stdout.

use super::DataDirArg;
use crate::config::Config;
use crate::transfer::{self, Progress};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    data: DataDirArg,
    /// New (or empty) directory to write the export to: tables as JSON lines, blobs by
    /// hash, and a manifest with the counts. Stop the server first: a changing database
    /// fails the export's count check.
    dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    data: DataDirArg,
    /// A directory written by `savesync-server export`. The configured stores must be
    /// new and empty; the import ends by checking every table's row count and that every
    /// referenced blob arrived with its hash.
    dir: PathBuf,
}

fn report(p: Progress) {
    match p {
        Progress::Table { name, rows } => eprintln!("  table {name}: {rows} rows"),
        Progress::Blobs { done, total, bytes } => {
            eprintln!("  blobs: {done}/{total} ({:.1} MiB)", bytes as f64 / 1048576.0);
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

pub fn export(mut config: Config, args: &ExportArgs) -> anyhow::Result<()> {
    args.data.apply(&mut config);
    runtime()?.block_on(async {
        let meta = crate::meta::open_from_config(&config).await?;
        let blobs = crate::blob::open_from_config(&config).await?;
        eprintln!("exporting to {}", args.dir.display());
        let m = transfer::export(meta.as_ref(), blobs.as_ref(), &args.dir, &mut report)
            .await
            .with_context(|| format!("exporting to {}", args.dir.display()))?;
        let rows: u64 = m.tables.iter().map(|t| t.rows).sum();
        println!(
            "exported {} tables ({rows} rows) and {} blobs ({} bytes) to {}",
            m.tables.len(),
            m.blobs,
            m.blob_bytes,
            args.dir.display()
        );
        Ok(())
    })
}

pub fn import(mut config: Config, args: &ImportArgs) -> anyhow::Result<()> {
    args.data.apply(&mut config);
    // A directory that is not an export is refused before any store is opened or created.
    transfer::dump::read_manifest(&args.dir)?;
    runtime()?.block_on(async {
        crate::data_dir::prepare(&config.data_dir, &config.db_path())?;
        let meta = crate::meta::open_from_config(&config).await?;
        let blobs = crate::blob::open_from_config(&config).await?;
        eprintln!("importing {}", args.dir.display());
        let m = transfer::import(meta.as_ref(), blobs.as_ref(), &args.dir, &mut report)
            .await
            .with_context(|| format!("importing {}", args.dir.display()))?;
        let rows: u64 = m.tables.iter().map(|t| t.rows).sum();
        println!(
            "imported {} tables ({rows} rows) and {} blobs ({} bytes); counts and hashes match",
            m.tables.len(),
            m.blobs,
            m.blob_bytes
        );
        Ok(())
    })
}
