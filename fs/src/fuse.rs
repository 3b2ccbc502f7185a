//! The FUSE adapter: a thin translation of fuser 0.18 requests into [`SaveFs`] calls.
//! Errors become errno here and only here ([`reply_err`]). No logic lives in this file:
//! everything it calls is tested without FUSE.
//!
//! Names are normalised to NFC here, at the boundary ([`name_nfc`]): a program that
//! creates or looks up `Poke\u{301}mon.sav` (NFD, as macOS and many Samba clients send it)
//! gets the save `Pok\u{e9}mon.sav`. The kernel caches names byte for byte, so an entry
//! found through a non-NFC spelling is replied with a zero TTL: that alias is never cached
//! and cannot outlive a later rename or unlink of the NFC name.
//!
//! Extended attributes are refused with a consistent ENOTSUP (the save library has none
//! to keep, and a half-working xattr store would confuse Samba more than a clear "no").

use crate::error::{FsError, FsResult};
use crate::savefs::{Attr, RenameOptions, SaveFs, SetAttr, TimeSet};
use crate::state::InodeKind;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use std::borrow::Cow;
use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long the kernel may cache attributes and names. Not zero (the kernel then
/// revalidates on every access, which is slow and racy); remote changes are pushed with
/// explicit invalidations instead (`Invalidation`), and every local change goes through
/// this mount, so a long TTL is safe. With 1 s, reading 1,000 saves a few seconds after
/// writing them paid a LOOKUP round trip per open.
const TTL: Duration = Duration::from_secs(60);

/// The mount's [`Filesystem`] implementation.
#[derive(Debug)]
pub struct SaveFsFuse {
    fs: Arc<SaveFs>,
}

impl SaveFsFuse {
    #[must_use]
    pub fn new(fs: Arc<SaveFs>) -> SaveFsFuse {
        SaveFsFuse { fs }
    }
}

fn errno(e: &FsError) -> Errno {
    Errno::from_i32(e.errno())
}

/// Log an error at the right level and turn it into an errno.
fn reply_err(op: &str, e: &FsError) -> Errno {
    match e.errno() {
        // EROFS and ENETUNREACH come from `.history` (a refused write; an outage it logs
        // once itself).
        libc::ENOENT | libc::EEXIST | libc::ENOTEMPTY | libc::EROFS | libc::ENETUNREACH => {
            tracing::debug!("{op}: {}", e.message())
        }
        _ => tracing::warn!("{op}: {}", e.message()),
    }
    errno(e)
}

/// Answer a request that returns nothing: ok, or the errno of the failure.
fn reply_empty(reply: ReplyEmpty, op: &str, result: FsResult<()>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(reply_err(op, &e)),
    }
}

/// Answer a request that creates or finds a name: its entry (cached for `ttl`, see
/// [`name_ttl`]), or the errno of the failure.
fn reply_entry_ttl(reply: ReplyEntry, op: &str, result: FsResult<Attr>, ttl: Duration) {
    match result {
        Ok(a) => reply.entry(&ttl, &to_fuse(&a), GEN),
        Err(e) => reply.error(reply_err(op, &e)),
    }
}

/// How long the kernel may cache a name it sent as `name`: not at all unless it was NFC.
/// (Borrowed means `name_nfc` found it already NFC: the variant is the information.)
#[allow(clippy::ptr_arg)]
fn name_ttl(name: &Cow<'_, str>) -> Duration {
    match name {
        Cow::Borrowed(_) => TTL,
        Cow::Owned(_) => Duration::ZERO,
    }
}

fn file_type(kind: InodeKind) -> FileType {
    match kind {
        InodeKind::Dir => FileType::Directory,
        InodeKind::File | InodeKind::Conflict => FileType::RegularFile,
        InodeKind::Symlink => FileType::Symlink,
        InodeKind::Fifo => FileType::NamedPipe,
        InodeKind::Socket => FileType::Socket,
        InodeKind::CharDev => FileType::CharDevice,
        InodeKind::BlockDev => FileType::BlockDevice,
    }
}

fn to_fuse(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.ctime,
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: 4096,
        flags: 0,
    }
}

/// The NFC form of a name from the kernel (borrowed when it already is NFC).
fn name_nfc(name: &OsStr) -> Result<Cow<'_, str>, Errno> {
    // Save names are UTF-8 on every device; anything else cannot be synced.
    name.to_str().map(savesync_core::to_nfc).ok_or(Errno::EINVAL)
}

fn time_set(t: Option<TimeOrNow>) -> Option<TimeSet> {
    t.map(|t| match t {
        TimeOrNow::SpecificTime(at) => TimeSet::At(at),
        TimeOrNow::Now => TimeSet::Now,
    })
}

const GEN: Generation = Generation(0);

impl Filesystem for SaveFsFuse {
    fn init(&mut self, _req: &Request, config: &mut fuser::KernelConfig) -> std::io::Result<()> {
        // READDIRPLUS: a listing also fills the kernel's name and attribute caches, so a
        // stat of every listed entry (`ls -l`, a file manager, a frontend scanning saves)
        // costs no LOOKUP each. Optional: without it the kernel sends plain READDIR.
        if config.add_capabilities(fuser::InitFlags::FUSE_DO_READDIRPLUS).is_err() {
            tracing::debug!("kernel without READDIRPLUS; listings use READDIR");
        }
        // O_TRUNC arrives with OPEN instead of as a separate truncate before it, so
        // `open(O_TRUNC)` + write + close (cp, most emulators) is one change of the save,
        // never an empty version queued on its own.
        if config.add_capabilities(fuser::InitFlags::FUSE_ATOMIC_O_TRUNC).is_err() {
            tracing::debug!("kernel without ATOMIC_O_TRUNC; O_TRUNC arrives as a truncate");
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = match name_nfc(name) {
            Ok(n) => n,
            Err(_) => return reply.error(Errno::ENOENT),
        };
        reply_entry_ttl(reply, "lookup", self.fs.lookup(parent.0, &name), name_ttl(&name))
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        // Only `.history` inodes are counted (real inodes live in the tree for good).
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.getattr(ino.0) {
            Ok(a) => reply.attr(&TTL, &to_fuse(&a)),
            Err(e) => reply.error(reply_err("getattr", &e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr { mode, uid, gid, size, atime: time_set(atime), mtime: time_set(mtime) };
        match self.fs.setattr(ino.0, set, fh.map(|f| f.0)) {
            Ok(a) => reply.attr(&TTL, &to_fuse(&a)),
            Err(e) => reply.error(reply_err("setattr", &e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let name = match name_nfc(name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        reply_entry_ttl(
            reply,
            "mkdir",
            self.fs.mkdir(parent.0, &name, mode & !umask, req.uid(), req.gid()),
            name_ttl(&name),
        )
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = match name_nfc(name) {
            Ok(n) => n,
            Err(_) => return reply.error(Errno::ENOENT),
        };
        reply_empty(reply, "unlink", self.fs.unlink(parent.0, &name))
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = match name_nfc(name) {
            Ok(n) => n,
            Err(_) => return reply.error(Errno::ENOENT),
        };
        reply_empty(reply, "rmdir", self.fs.rmdir(parent.0, &name))
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (name, newname) = match (name_nfc(name), name_nfc(newname)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return reply.error(Errno::EINVAL),
        };
        let opts = RenameOptions {
            no_replace: flags.contains(RenameFlags::RENAME_NOREPLACE),
            exchange: flags.contains(RenameFlags::RENAME_EXCHANGE),
        };
        reply_empty(reply, "rename", self.fs.rename(parent.0, &name, newparent.0, &newname, opts))
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.fs.open_with_cache_hint(ino.0, flags.0) {
            Ok((fh, keep_cache)) => {
                let mut fopen =
                    if keep_cache { FopenFlags::FOPEN_KEEP_CACHE } else { FopenFlags::empty() };
                // A read-only handle never has anything to flush: spare close(2) the
                // synchronous FLUSH round trip.
                if flags.0 & libc::O_ACCMODE == libc::O_RDONLY {
                    fopen |= FopenFlags::FOPEN_NOFLUSH;
                }
                reply.opened(FileHandle(fh), fopen);
            }
            Err(e) => reply.error(reply_err("open", &e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.fs.read(fh.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(reply_err("read", &e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.fs.write(fh.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(reply_err("write", &e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, "flush", self.fs.flush(fh.0))
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, "release", self.fs.release(fh.0))
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, "fsync", self.fs.fsync(fh.0))
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.fs.opendir(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(reply_err("opendir", &e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.fs.readdir(fh.0, offset) {
            Ok(entries) => {
                for (next, e) in entries {
                    if reply.add(INodeNo(e.ino), next, file_type(e.kind), &e.name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(reply_err("readdir", &e)),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: fuser::ReplyDirectoryPlus,
    ) {
        let entries = match self.fs.readdir(fh.0, offset) {
            Ok(entries) => entries,
            Err(e) => return reply.error(reply_err("readdirplus", &e)),
        };
        let dir_attr = self.fs.getattr(ino.0).ok();
        for (next, e) in entries {
            // "." and ".." get the directory's attributes when theirs are not at hand (the
            // kernel ignores attributes of those two); an entry removed meanwhile is skipped.
            let attr = match (self.fs.getattr(e.ino), &dir_attr) {
                (Ok(a), _) => a,
                (Err(_), Some(d)) if e.name == "." || e.name == ".." => *d,
                (Err(_), _) => continue,
            };
            if reply.add(INodeNo(e.ino), next, &e.name, &TTL, &to_fuse(&attr), GEN) {
                break;
            }
            // The kernel counts every entry but "." and ".." as looked up.
            if e.name != "." && e.name != ".." {
                self.fs.note_listed(e.ino);
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.fs.releasedir(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Directory changes are written through to the state DB as they happen.
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.fs.statfs() {
            Ok(s) => reply.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
            ),
            Err(e) => reply.error(reply_err("statfs", &e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::from_i32(libc::ENOTSUP));
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(Errno::from_i32(libc::ENOTSUP));
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::from_i32(libc::ENOTSUP));
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::from_i32(libc::ENOTSUP));
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let name = match name_nfc(name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        match self.fs.create(parent.0, &name, mode & !umask, flags, req.uid(), req.gid()) {
            Ok((a, fh)) => {
                let ttl = name_ttl(&name);
                reply.created(&ttl, &to_fuse(&a), GEN, FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(reply_err("create", &e)),
        }
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        // Terminals ask (TCGETS) on every isatty(); saves are never terminals.
        reply.error(Errno::ENOTTY);
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let name = match name_nfc(name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let ttl = name_ttl(&name);
        // FIFOs, sockets and device nodes are local-only entries; a regular file is a save
        // (mknod is how some tools create empty files).
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply_entry_ttl(
                reply,
                "mknod",
                self.fs.mknod(parent.0, &name, mode & !umask, rdev, req.uid(), req.gid()),
                ttl,
            );
        }
        let created = self
            .fs
            .create(parent.0, &name, mode & !umask, libc::O_WRONLY, req.uid(), req.gid())
            .and_then(|(a, fh)| self.fs.release(fh).map(|()| a));
        reply_entry_ttl(reply, "mknod", created, ttl)
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        use std::os::unix::ffi::OsStrExt;
        let name = match name_nfc(link_name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let target = target.as_os_str().as_bytes();
        let made = self.fs.symlink(parent.0, &name, target, req.uid(), req.gid());
        reply_entry_ttl(reply, "symlink", made, name_ttl(&name))
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.fs.readlink(ino.0) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(reply_err("readlink", &e)),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let name = match name_nfc(newname) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        reply_entry_ttl(reply, "link", self.fs.link(ino.0, newparent.0, &name), name_ttl(&name))
    }
}
