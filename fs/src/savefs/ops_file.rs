//! File operations: create, open (fresh on open), read, write, setattr (truncate, times,
//! modes), flush, fsync, release.
//!
//! Durability rule: a flush (every close(2)) or fsync of a handle that wrote makes the
//! bytes durable (fdatasync of the cache file, the only disk sync) and records the new size
//! and the queue entry in one DB transaction *before* replying, so a kill -9 right after
//! close loses nothing, and after a power cut the next start finds the bytes again
//! (`tree::power_cut`). The upload itself happens later in the background.

use super::attr::{Attr, SetAttr, TimeSet};
use super::handles::OpenFile;
use super::{SaveFs, cache_stat, lock, now_ms, now_ns, to_ns};
use crate::error::{FsError, FsResult};
use crate::state::InodeKind;
use crate::sync::SyncError;
use savesync_core::SavePath;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Longest an open waits for the server before serving the cached copy (or failing, for
/// a save never downloaded).
const OPEN_FETCH_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The kernel's `__FMODE_EXEC` (0x20 on every Linux architecture): set in the flags of the
/// open an execve makes, and passed on to FUSE.
const FMODE_EXEC: i32 = 0x20;

fn open_cache(path: &std::path::Path, writable: bool, create: bool) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(writable || create).create(create).open(path)
}

impl SaveFs {
    /// Create and open a new file.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &self,
        parent: u64,
        name: &str,
        mode: u32,
        flags: i32,
        uid: u32,
        gid: u32,
    ) -> FsResult<(Attr, u64)> {
        let ((row, dir), file) = {
            let mut t = lock(&self.tree.table);
            self.check_new_name(&t, parent, name)?;
            if t.child(parent, name).is_some() {
                return Err(FsError::exists(name));
            }
            let ino = t.alloc_ino();
            let file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(self.tree.cache_path(ino))
                .map_err(|e| FsError::io(format!("creating cache file of {name}"), &e))?;
            let row = self.tree.new_row(ino, parent, name, InodeKind::File, mode, (uid, gid));
            t.insert(row.clone());
            if let Some(inode) = t.get_mut(ino) {
                inode.open_handles += 1;
                inode.open_writers += 1;
                inode.unflushed = true;
                // Every byte of a new file goes through the kernel's page cache, so the next
                // open may keep that cache (dropping it made each warm read a READ trip).
                inode.replaced = false;
            }
            let dir = t.touch_dir(parent, row.ctime_ns);
            ((row, dir), file)
        };
        let rows: Vec<_> = std::iter::once(row.clone()).chain(dir).collect();
        // Tagged with its origin, a created file whose row a power cut takes back is put
        // back at the next start; untagged, the create itself must be durable.
        let stored = if crate::tree::power_cut::note_origin(&file, parent, name) {
            self.tree.db.put_created(&rows)
        } else {
            self.tree.db.put_inodes(&rows, &[])
        };
        stored.map_err(|e| FsError::db(format!("create {name}"), &e))?;
        let fh = lock(&self.handles).add_file(OpenFile {
            ino: row.ino,
            file,
            writable: true,
            exec: false,
            append: flags & libc::O_APPEND != 0,
            // A new file is a change even if nothing is written into it.
            written: true.into(),
        });
        let attr = self.getattr(row.ino)?;
        Ok((attr, fh))
    }

    /// Open a file. A synced save that is not cached, or whose known server head is newer
    /// than what this device has, is brought up to date first (the network call runs with
    /// no lock held). Offline, a cached file is served as it is.
    pub fn open(&self, ino: u64, flags: i32) -> FsResult<u64> {
        self.open_with_cache_hint(ino, flags).map(|(fh, _)| fh)
    }

    /// [`SaveFs::open`], plus whether the kernel may keep its page cache of the file: true
    /// unless the bytes were replaced from the server since the last open (local writes go
    /// through the kernel, so its cache already has them).
    pub fn open_with_cache_hint(&self, ino: u64, flags: i32) -> FsResult<(u64, bool)> {
        if super::history::is_virtual(ino) {
            return self.history_open(ino, flags);
        }
        let acc = flags & libc::O_ACCMODE;
        let writable = acc != libc::O_RDONLY;
        let (kind, path, busy) = {
            let t = lock(&self.tree.table);
            let inode = t.get(ino).ok_or_else(|| FsError::not_found(format!("inode {ino}")))?;
            (inode.row.kind, t.save_path(ino), inode.open_writers > 0 || inode.unflushed)
        };
        match kind {
            InodeKind::Dir => return Err(FsError::is_dir(format!("inode {ino}"))),
            InodeKind::Conflict if writable => {
                return Err(FsError::new(
                    libc::EACCES,
                    "conflict copies are read-only: delete it to keep yours, or rename it \
                     over the save to take it",
                ));
            }
            _ => {}
        }
        if let (Some(path), false) = (path, busy)
            && self.needs_fresh(ino, &path)?
        {
            self.fetch_for_open(ino, &path)?;
        }
        let mut t = lock(&self.tree.table);
        let inode = t.get_mut(ino).ok_or_else(|| FsError::not_found(format!("inode {ino}")))?;
        // With atomic_o_trunc the kernel treats a successful O_TRUNC open as done and drops
        // the file's size and page cache at once, before its own ETXTBSY check of an
        // O_RDONLY|O_TRUNC open: a program running from this file would lose the pages
        // it still has to map and die with SIGSEGV mid-exec. So the refusal is ours.
        if flags & libc::O_TRUNC != 0 && inode.open_execs > 0 {
            return Err(FsError::new(
                libc::ETXTBSY,
                format!("inode {ino}: a program is running from this file"),
            ));
        }
        if !inode.row.cached {
            return Err(FsError::new(
                libc::EIO,
                format!("inode {ino}: not cached and the server is unreachable"),
            ));
        }
        let file = open_cache(&self.tree.content_path(&inode.row), writable, false)
            .map_err(|e| FsError::io(format!("opening cache of inode {ino}"), &e))?;
        // O_TRUNC delivered with the open (atomic_o_trunc): the truncate belongs to this
        // handle, made durable and queued by its close like the writes that follow.
        let truncated = writable && flags & libc::O_TRUNC != 0 && inode.row.kind == InodeKind::File;
        if truncated {
            file.set_len(0).map_err(|e| FsError::io(format!("truncate inode {ino}"), &e))?;
            let now = now_ns();
            inode.row.size = 0;
            inode.row.mtime_ns = now;
            inode.row.ctime_ns = now;
            inode.unflushed = true;
        }
        inode.open_handles += 1;
        if writable {
            inode.open_writers += 1;
        }
        let exec = flags & FMODE_EXEC != 0;
        if exec {
            inode.open_execs += 1;
        }
        let keep_cache = !std::mem::replace(&mut inode.replaced, false);
        drop(t);
        let fh = lock(&self.handles).add_file(OpenFile {
            ino,
            file,
            writable,
            exec,
            append: flags & libc::O_APPEND != 0,
            written: truncated.into(),
        });
        Ok((fh, keep_cache))
    }

    fn needs_fresh(&self, ino: u64, path: &SavePath) -> FsResult<bool> {
        let cached = lock(&self.tree.table).get(ino).is_some_and(|i| i.row.cached);
        if !cached {
            return Ok(true);
        }
        let rec = self.tree.db.record(path).map_err(|e| FsError::db("open", &e))?;
        Ok(match (rec.base, rec.head) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(b), Some(h)) => h.rev > b.rev,
        })
    }

    /// Ask the engine to make `path` fresh now, on this thread (fresh on open, rename of an
    /// uncached file). Offline, a cached file is left as it is.
    pub(crate) fn fetch_for_open(&self, ino: u64, path: &SavePath) -> FsResult<()> {
        let cached = lock(&self.tree.table).get(ino).is_some_and(|i| i.row.cached);
        if cached && !self.is_online() {
            // Known offline: do not make a game wait for a connect timeout.
            return Ok(());
        }
        let outcome = self.rt.block_on(async {
            // A moved save never downloaded gets its bytes from its old path first.
            tokio::time::timeout(OPEN_FETCH_LIMIT, self.engine.make_fresh(path)).await
        });
        let outcome = outcome.unwrap_or_else(|_| {
            Err(SyncError::Local(format!("no answer within {OPEN_FETCH_LIMIT:?}")))
        });
        match outcome {
            Ok(_) => Ok(()),
            Err(e) if cached => {
                tracing::debug!(%path, "serving cached copy: {e}");
                Ok(())
            }
            Err(e) => Err(FsError::new(libc::EIO, format!("{path}: cannot fetch: {e}"))),
        }
    }

    fn handle(&self, fh: u64) -> FsResult<Arc<OpenFile>> {
        lock(&self.handles).file(fh).ok_or_else(|| FsError::bad_handle(fh))
    }

    /// Read up to `size` bytes at `offset`.
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let h = self.handle(fh)?;
        let mut buf = vec![0u8; size as usize];
        let mut done = 0;
        while done < buf.len() {
            match h.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FsError::io(format!("read of inode {}", h.ino), &e)),
            }
        }
        buf.truncate(done);
        Ok(buf)
    }

    /// Write `data` at `offset` (at the end for O_APPEND handles) into the cache file.
    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        let h = self.handle(fh)?;
        if !h.writable {
            return Err(FsError::bad_handle(fh));
        }
        // Marked in motion BEFORE the bytes change, so a sync reading them concurrently
        // sees the mark afterwards and leaves them for the flush (`sync::reconcile`).
        let offset = {
            let mut t = lock(&self.tree.table);
            let inode = t.get_mut(h.ino);
            let append_at = inode.as_ref().filter(|_| h.append).map(|i| i.row.size);
            if let Some(inode) = inode {
                inode.unflushed = true;
            }
            append_at.unwrap_or(offset)
        };
        h.file
            .write_all_at(data, offset)
            .map_err(|e| FsError::io(format!("write to inode {}", h.ino), &e))?;
        h.written.store(true, Ordering::SeqCst);
        let mut t = lock(&self.tree.table);
        if let Some(inode) = t.get_mut(h.ino) {
            let now = now_ns();
            inode.row.size = inode.row.size.max(offset + data.len() as u64);
            inode.row.mtime_ns = now;
            inode.row.ctime_ns = now;
            inode.unflushed = true;
        }
        Ok(data.len() as u32)
    }

    /// close(2) of one fd: make written bytes durable and queue the upload.
    pub fn flush(&self, fh: u64) -> FsResult<()> {
        let h = self.handle(fh)?;
        if h.written.swap(false, Ordering::SeqCst) {
            self.durable_flush(h.ino, &h.file)?;
        }
        Ok(())
    }

    /// fsync(2): like flush, and durable even if nothing new was written.
    pub fn fsync(&self, fh: u64) -> FsResult<()> {
        let h = self.handle(fh)?;
        if h.written.swap(false, Ordering::SeqCst) {
            self.durable_flush(h.ino, &h.file)
        } else {
            h.file.sync_data().map_err(|e| FsError::io(format!("fsync inode {}", h.ino), &e))
        }
    }

    /// Last close of a handle.
    pub fn release(&self, fh: u64) -> FsResult<()> {
        let Some(h) = lock(&self.handles).remove_file(fh) else {
            return Err(FsError::bad_handle(fh));
        };
        let result = if h.written.swap(false, Ordering::SeqCst) {
            self.durable_flush(h.ino, &h.file)
        } else {
            Ok(())
        };
        let mut t = lock(&self.tree.table);
        if let Some(inode) = t.get_mut(h.ino) {
            inode.open_handles = inode.open_handles.saturating_sub(1);
            if h.writable {
                inode.open_writers = inode.open_writers.saturating_sub(1);
            }
            if h.exec {
                inode.open_execs = inode.open_execs.saturating_sub(1);
            }
        }
        t.forget_if_orphan(h.ino);
        result
    }

    /// fdatasync the cache file, then record size, cache stat and the queue entry in one
    /// transaction (not synced itself: see the module doc).
    pub(crate) fn durable_flush(&self, ino: u64, file: &File) -> FsResult<()> {
        file.sync_data().map_err(|e| FsError::io(format!("fdatasync inode {ino}"), &e))?;
        let meta = file.metadata().map_err(|e| FsError::io(format!("stat inode {ino}"), &e))?;
        let (size, mtime) = cache_stat(&meta);
        let (row, path) = {
            let mut t = lock(&self.tree.table);
            let path = t.save_path(ino);
            let Some(inode) = t.get_mut(ino) else { return Ok(()) };
            if !inode.linked {
                return Ok(());
            }
            inode.unflushed = false;
            inode.row.size = size;
            inode.row.cache_size = size;
            inode.row.cache_mtime_ns = mtime;
            (inode.row.clone(), path)
        };
        let due = now_ms() + self.cfg.debounce.as_millis() as i64;
        self.tree
            .db
            .flush_file(&row, path.as_ref().map(|p| (p, due)))
            .map_err(|e| FsError::db(format!("flush inode {ino}"), &e))?;
        if path.is_some() {
            self.engine.wake();
        }
        Ok(())
    }

    /// Change attributes: size (truncate), mode, owner, times.
    pub fn setattr(&self, ino: u64, set: SetAttr, fh: Option<u64>) -> FsResult<Attr> {
        self.history_refuse_change(ino)?;
        let handle = match fh {
            Some(fh) => lock(&self.handles).file(fh),
            None => None,
        };
        if let Some(size) = set.size {
            self.truncate(ino, size, handle.as_deref())?;
        }
        let row = {
            let mut t = lock(&self.tree.table);
            let inode = t.get_mut(ino).ok_or_else(|| FsError::not_found(format!("inode {ino}")))?;
            let now = now_ns();
            if let Some(mode) = set.mode {
                inode.row.mode = mode & 0o7777;
            }
            if let Some(uid) = set.uid {
                inode.row.uid = uid;
            }
            if let Some(gid) = set.gid {
                inode.row.gid = gid;
            }
            let pick = |t: TimeSet| match t {
                TimeSet::Now => now,
                TimeSet::At(at) => to_ns(at),
            };
            if let Some(a) = set.atime {
                inode.row.atime_ns = pick(a);
            }
            if let Some(m) = set.mtime {
                inode.row.mtime_ns = pick(m);
            }
            inode.row.ctime_ns = now;
            inode.row.clone()
        };
        self.tree
            .db
            .put_inode(&row)
            .map_err(|e| FsError::db(format!("setattr inode {ino}"), &e))?;
        self.getattr(ino)
    }

    fn truncate(&self, ino: u64, size: u64, handle: Option<&OpenFile>) -> FsResult<()> {
        let (kind, cached, path) = {
            let t = lock(&self.tree.table);
            let inode = t.get(ino).ok_or_else(|| FsError::not_found(format!("inode {ino}")))?;
            (inode.row.kind, inode.row.cached, t.save_path(ino))
        };
        match kind {
            InodeKind::Dir => return Err(FsError::is_dir(format!("inode {ino}"))),
            InodeKind::Conflict => {
                return Err(FsError::new(libc::EACCES, "conflict copies are read-only"));
            }
            // The kernel refuses truncate on anything but regular files before asking us.
            kind if kind.is_special() => {
                return Err(FsError::new(libc::EINVAL, "only regular files have a size to set"));
            }
            _ => {}
        }
        if !cached && let Some(path) = &path {
            self.fetch_for_open(ino, path)?;
        }
        self.mark_in_motion(ino);
        match handle {
            Some(h) => {
                h.file
                    .set_len(size)
                    .map_err(|e| FsError::io(format!("truncate inode {ino}"), &e))?;
                h.written.store(true, Ordering::SeqCst);
                self.note_resized(ino, size);
            }
            None => {
                // truncate(2) by path: no close will follow, so make it durable now.
                let file = open_cache(&self.tree.cache_path(ino), true, true)
                    .map_err(|e| FsError::io(format!("open cache of inode {ino}"), &e))?;
                file.set_len(size).map_err(|e| FsError::io(format!("truncate {ino}"), &e))?;
                self.note_resized(ino, size);
                self.durable_flush(ino, &file)?;
            }
        }
        Ok(())
    }

    /// The cache file's bytes are about to change: a concurrent sync must not take them.
    fn mark_in_motion(&self, ino: u64) {
        if let Some(inode) = lock(&self.tree.table).get_mut(ino) {
            inode.unflushed = true;
        }
    }

    fn note_resized(&self, ino: u64, size: u64) {
        let mut t = lock(&self.tree.table);
        if let Some(inode) = t.get_mut(ino) {
            let now = now_ns();
            inode.row.size = size;
            inode.row.cached = true;
            inode.row.mtime_ns = now;
            inode.row.ctime_ns = now;
            inode.unflushed = true;
        }
    }
}
