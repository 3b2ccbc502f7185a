//! The export directory's layout, the one format both directions share:
//!
//! ```text
//! DIR/manifest.json          format version, rows per table, blob count and bytes
//! DIR/tables/<table>.jsonl   first line {"columns": [...]}, then one JSON array per row
//! DIR/blobs/<sha256 hex>     each referenced blob's bytes
//! ```
//!
//! Rows are JSON (`crate::meta::tables::Cell`), so a dump is readable, diffable and
//! independent of the backend it came from. The manifest is written last: a directory
//! without one is an export that did not finish.

use crate::meta::tables::{Cell, Rows};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Lines, Write};
use std::path::{Path, PathBuf};

/// Bumped when the layout changes incompatibly.
pub const FORMAT: u32 = 1;

/// What an export holds, for the count check at the end of an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// Every table with its row count, in an order an import can follow.
    pub tables: Vec<TableCount>,
    pub blobs: u64,
    pub blob_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCount {
    pub name: String,
    pub rows: u64,
}

#[derive(Serialize, Deserialize)]
struct Header {
    columns: Vec<String>,
}

pub fn manifest_path(dir: &Path) -> PathBuf {
    dir.join("manifest.json")
}

pub fn table_path(dir: &Path, table: &str) -> PathBuf {
    dir.join("tables").join(format!("{table}.jsonl"))
}

pub fn blob_dir(dir: &Path) -> PathBuf {
    dir.join("blobs")
}

pub fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let path = manifest_path(dir);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        anyhow::anyhow!("{}: {e} (not an export, or an export that did not finish)", path.display())
    })?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a savesync manifest: {e}", path.display()))?;
    anyhow::ensure!(
        manifest.format == FORMAT,
        "{}: format {} is not the {FORMAT} this binary reads",
        path.display(),
        manifest.format
    );
    Ok(manifest)
}

pub fn write_manifest(dir: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let tmp = dir.join("manifest.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(manifest)?)?;
    File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, manifest_path(dir))?;
    Ok(())
}

/// Writes one table's file.
#[derive(Debug)]
pub struct TableWriter {
    out: BufWriter<File>,
    rows: u64,
}

impl TableWriter {
    pub fn create(dir: &Path, table: &str, columns: &[String]) -> anyhow::Result<TableWriter> {
        let path = table_path(dir, table);
        let mut out = BufWriter::new(File::create(&path)?);
        serde_json::to_writer(&mut out, &Header { columns: columns.to_vec() })?;
        out.write_all(b"\n")?;
        Ok(TableWriter { out, rows: 0 })
    }

    pub fn write(&mut self, rows: &Rows) -> anyhow::Result<()> {
        for row in rows {
            serde_json::to_writer(&mut self.out, row)?;
            self.out.write_all(b"\n")?;
            self.rows += 1;
        }
        Ok(())
    }

    /// Flush and fsync; returns the rows written.
    pub fn finish(self) -> anyhow::Result<u64> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(self.rows)
    }
}

/// Reads one table's file in pages.
#[derive(Debug)]
pub struct TableReader {
    pub columns: Vec<String>,
    lines: Lines<BufReader<File>>,
    path: PathBuf,
    line: u64,
}

impl TableReader {
    pub fn open(dir: &Path, table: &str) -> anyhow::Result<TableReader> {
        let path = table_path(dir, table);
        let file = File::open(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let mut lines = BufReader::new(file).lines();
        let first = lines.next().ok_or_else(|| anyhow::anyhow!("{}: empty", path.display()))??;
        let header: Header = serde_json::from_str(&first)
            .map_err(|e| anyhow::anyhow!("{}:1: not a header: {e}", path.display()))?;
        Ok(TableReader { columns: header.columns, lines, path, line: 1 })
    }

    /// Up to `max` more rows; empty at the end.
    pub fn next_page(&mut self, max: usize) -> anyhow::Result<Rows> {
        let mut rows = Vec::new();
        while rows.len() < max {
            let Some(line) = self.lines.next() else { break };
            self.line += 1;
            let row: Vec<Cell> = serde_json::from_str(&line?).map_err(|e| {
                anyhow::anyhow!("{}:{}: not a row: {e}", self.path.display(), self.line)
            })?;
            anyhow::ensure!(
                row.len() == self.columns.len(),
                "{}:{}: {} values for {} columns",
                self.path.display(),
                self.line,
                row.len(),
                self.columns.len()
            );
            rows.push(row);
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_file_reads_back_in_pages_and_a_bad_row_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tables")).unwrap();
        let cols = vec!["id".to_owned(), "name".to_owned()];
        let mut w = TableWriter::create(dir.path(), "users", &cols).unwrap();
        let rows: Rows = (0..5).map(|i| vec![Cell::Int(i), Cell::Text(format!("u{i}"))]).collect();
        w.write(&rows).unwrap();
        assert_eq!(w.finish().unwrap(), 5);
        let mut r = TableReader::open(dir.path(), "users").unwrap();
        assert_eq!(r.columns, cols);
        assert_eq!(r.next_page(3).unwrap(), rows[..3]);
        assert_eq!(r.next_page(3).unwrap(), rows[3..]);
        assert!(r.next_page(3).unwrap().is_empty());

        let path = table_path(dir.path(), "users");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("[1]\n");
        std::fs::write(&path, text).unwrap();
        let mut r = TableReader::open(dir.path(), "users").unwrap();
        let err = r.next_page(100).unwrap_err().to_string();
        assert!(err.contains(":7: 1 values for 2 columns"), "{err}");
    }

    #[test]
    fn a_missing_or_foreign_manifest_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_manifest(dir.path()).unwrap_err().to_string();
        assert!(err.contains("did not finish"), "{err}");
        std::fs::write(
            manifest_path(dir.path()),
            r#"{"format": 99, "tables": [], "blobs": 0, "blob_bytes": 0}"#,
        )
        .unwrap();
        let err = read_manifest(dir.path()).unwrap_err().to_string();
        assert!(err.contains("format 99"), "{err}");
    }
}
