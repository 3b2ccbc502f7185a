//! What a power cut may take back, and how the next start gets it back.
//!
//! A close(2) or fsync(2) that wrote costs one disk sync: the cache file's fdatasync. The
//! DB transaction that records the new size and queues the upload is committed with
//! `synchronous=NORMAL`: a kill -9 cannot lose it (it is in the WAL), but a power cut can,
//! until the next checkpoint or fully synced commit. The bytes themselves are on disk, so
//! the next start only has to find them again:
//!
//! - **The mount was not stopped cleanly** (the `unclean` marker in the data dir exists from
//!   start to clean stop): every cached save is hashed and queued when its bytes differ
//!   from the version this device last agreed on with the server (`cache_check`, once the
//!   mount serves). The stat comparison in `recover_after_crash` alone would miss a rewrite
//!   of the same size in the same clock tick.
//! - **A file created since the last synced commit lost its row.** At create, the cache
//!   file gets an extended attribute naming its parent inode and name (`origin`); a cache
//!   file with no row is put back there. A file system without user xattrs (vfat, exFAT)
//!   makes the create itself durable instead, so it never needs its origin.
//! - A cache file with no row and no origin is a download whose install was rolled back:
//!   the server has its bytes. It is left alone, and inode numbers are never handed out
//!   below it, so nothing ever truncates it.

use super::{LocalTree, ROOT_INO, cache_stat, lock};
use crate::state::InodeKind;
use std::fs::File;
use std::path::Path;

/// Present in the data dir while a mount runs; left behind by kill -9 or a power cut.
const MARKER: &str = "unclean";
/// Extended attribute of a created cache file: `<parent inode>/<name>`.
const ORIGIN_XATTR: &str = "user.savesync.origin";

/// `<parent>/<name>`, the value of the origin attribute.
fn encode_origin(parent: u64, name: &str) -> String {
    format!("{parent}/{name}")
}

/// The parent inode and name an origin attribute names, if it is well formed.
fn decode_origin(value: &[u8]) -> Option<(u64, String)> {
    let text = std::str::from_utf8(value).ok()?;
    let (parent, name) = text.split_once('/')?;
    let valid = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0']);
    Some((parent.parse().ok()?, name.to_owned())).filter(|_| valid)
}

/// Tag a new cache file with where it was created. False when the file system cannot keep
/// the tag: the caller must then make the create durable itself.
pub(crate) fn note_origin(file: &File, parent: u64, name: &str) -> bool {
    let value = encode_origin(parent, name);
    match rustix::fs::fsetxattr(
        file,
        ORIGIN_XATTR,
        value.as_bytes(),
        rustix::fs::XattrFlags::empty(),
    ) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!("cache file origin not kept ({e}): the create is synced instead");
            false
        }
    }
}

fn read_origin(path: &Path) -> Option<(u64, String)> {
    let mut buf = [0u8; 512];
    let n = rustix::fs::getxattr(path, ORIGIN_XATTR, &mut buf).ok()?;
    decode_origin(&buf[..n])
}

/// Whether the last run stopped without [`end`]; creates the marker for this run.
pub(crate) fn begin(data_dir: &Path) -> std::io::Result<bool> {
    let marker = data_dir.join(MARKER);
    let unclean = marker.exists();
    if !unclean {
        File::create(&marker)?.sync_all()?;
        File::open(data_dir)?.sync_all()?;
    }
    Ok(unclean)
}

/// A clean stop: everything committed is synced, so the next start needs no rescan.
pub(crate) fn end(data_dir: &Path) -> std::io::Result<()> {
    std::fs::remove_file(data_dir.join(MARKER))
}

impl LocalTree {
    /// After an unclean stop: give rows back to created files that lost theirs, and note
    /// that every cached save must be checked by hash (`cache_check`, run once the mount
    /// serves).
    pub(super) fn recover_after_power_cut(&self) -> anyhow::Result<()> {
        let restored = self.restore_orphans()?;
        self.require_cache_check()?;
        tracing::info!(
            restored,
            "the last run did not stop cleanly: the cache is checked once the mount serves"
        );
        Ok(())
    }

    /// Put cache files without a row back where their origin says; returns how many.
    fn restore_orphans(&self) -> anyhow::Result<usize> {
        let mut rows = Vec::new();
        let mut t = lock(&self.table);
        let mut highest = 0;
        for entry in std::fs::read_dir(self.cfg.data_dir.join("cache"))?.flatten() {
            let Some(ino) = entry.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            if t.get(ino).is_some() {
                continue;
            }
            highest = highest.max(ino);
            let Some((parent, name)) = read_origin(&entry.path()) else {
                tracing::info!(ino, "cache file without a row or origin (a rolled-back download)");
                continue;
            };
            let parent = if t.get(parent).is_some_and(|p| p.row.kind == InodeKind::Dir) {
                parent
            } else {
                ROOT_INO
            };
            let name = if t.child(parent, &name).is_none() {
                name
            } else {
                format!("{name}.recovered-{ino}")
            };
            let (size, mtime) = cache_stat(&entry.metadata()?);
            let mut row = self.new_row(
                ino,
                parent,
                &name,
                InodeKind::File,
                self.cfg.file_mode,
                (self.cfg.uid, self.cfg.gid),
            );
            row.size = size;
            row.cache_size = size;
            row.cache_mtime_ns = mtime;
            tracing::warn!(ino, parent, %name, "a created save lost its row to a power cut: restored");
            t.insert(row.clone());
            rows.push(row);
        }
        t.raise_next_ino(highest + 1);
        drop(t);
        self.db.put_inodes(&rows, &[])?;
        Ok(rows.len())
    }

    /// A clean stop: sync every commit, then drop the marker.
    pub fn close_clean(&self) -> anyhow::Result<()> {
        self.db.checkpoint()?;
        end(&self.cfg.data_dir)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An origin attribute's raw value and what it decodes to.
    type OriginCase = (&'static [u8], Option<(u64, &'static str)>);

    #[test]
    fn origins_round_trip_and_malformed_ones_are_refused() {
        let cases: &[OriginCase] = &[
            (b"1/Pokemon Emerald.sav", Some((1, "Pokemon Emerald.sav"))),
            (b"42/a/b", None),
            (b"42/", None),
            (b"42/..", None),
            (b"x/name", None),
            (b"noslash", None),
            (b"7/\xff", None),
        ];
        for (value, want) in cases {
            let got = decode_origin(value);
            assert_eq!(
                got.as_ref().map(|(p, n)| (*p, n.as_str())),
                *want,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
        assert_eq!(decode_origin(encode_origin(9, "x.srm").as_bytes()), Some((9, "x.srm".into())));
    }

    #[test]
    fn the_marker_reports_a_run_that_did_not_end() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!begin(dir.path()).unwrap(), "first run: nothing before it");
        assert!(begin(dir.path()).unwrap(), "a run that never ended is reported");
        end(dir.path()).unwrap();
        assert!(!begin(dir.path()).unwrap(), "after a clean end the next run is clean");
    }
}
