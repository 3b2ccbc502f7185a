//! Opening a version file: its bytes are downloaded then (the server's hash checked by the
//! client, and against the hash the listing showed), into the tree's `tmp/`, opened and
//! unlinked at once, so the handle owns the only reference and the bytes are gone when
//! the last handle closes (or when the mount dies: `tmp/` is swept at start). Nothing is
//! cached between opens; each open downloads once, bounded by
//! [`super::DOWNLOAD_TIMEOUT`].

use super::inodes::{Node, VersionNode};
use super::{DOWNLOAD_TIMEOUT, HISTORY_DIR, bounded};
use crate::error::{FsError, FsResult};
use crate::savefs::handles::OpenFile;
use crate::savefs::{SaveFs, lock};
use savesync_core::wire::VersionKind;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// `r12` or `c17`, as the file name shows it.
fn label(v: &VersionNode) -> String {
    match v.kind {
        VersionKind::Commit => format!("r{}", v.rev.0),
        VersionKind::Conflict => format!("c{}", v.version_id),
    }
}

impl SaveFs {
    /// Open the version file `ino` for reading (any write access is EROFS).
    pub(crate) fn history_open(&self, ino: u64, flags: i32) -> FsResult<(u64, bool)> {
        if flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0 {
            return Err(FsError::new(libc::EROFS, format!("{HISTORY_DIR} is read-only")));
        }
        let node = lock(&self.history.nodes)
            .get(ino)
            .ok_or_else(|| FsError::not_found(format!("{HISTORY_DIR} inode {ino}")))?;
        let v = match node {
            Node::Version(v) => v,
            Node::Root | Node::Dir(_) => return Err(FsError::is_dir(HISTORY_DIR)),
        };
        let tmp = self.tree.tmp_path("history");
        let h = &self.history;
        h.calls.fetch_add(1, Ordering::Relaxed);
        let remote = Arc::clone(&h.remote);
        let (path, rev, id, kind, dest) =
            (v.save.clone(), v.rev, v.version_id, v.kind, tmp.clone());
        let got = self.rt.block_on(bounded(DOWNLOAD_TIMEOUT, async move {
            match kind {
                // A commit streams to the file by its rev.
                VersionKind::Commit => remote.download_to_file(path, Some(rev), dest).await,
                // A conflict version's rev is the base it was made on: fetch it by id.
                VersionKind::Conflict => remote.download_version_to_file(path, id, dest).await,
            }
        }));
        let fetched = match got {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                let what = format!("downloading {} of {}", label(&v), v.save);
                return Err(h.net_error(&what, &e));
            }
        };
        h.net_ok();
        let opened = std::fs::File::open(&tmp);
        let _ = std::fs::remove_file(&tmp);
        if fetched.version.hash != v.hash {
            return Err(FsError::new(
                libc::EIO,
                format!("{HISTORY_DIR}: {} of {} is not the version listed", label(&v), v.save),
            ));
        }
        let file =
            opened.map_err(|e| FsError::io(format!("opening r{} of {}", v.rev.0, v.save), &e))?;
        let fh = lock(&self.handles).add_file(OpenFile {
            ino,
            file,
            writable: false,
            // Versions are read-only: there is nothing an execve has to protect.
            exec: false,
            append: false,
            written: false.into(),
        });
        // A version's bytes never change: the kernel may keep what it cached.
        Ok((fh, true))
    }
}
