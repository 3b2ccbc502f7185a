//! Open file and directory handles. A file handle owns its own fd on the cache file, so an
//! unlinked or replaced file keeps serving the handles that had it open. A directory
//! handle owns the listing snapshot taken at opendir, which makes readdir offsets stable.

use super::attr::DirEntry;
use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// One open file.
#[derive(Debug)]
pub struct OpenFile {
    pub ino: u64,
    pub file: File,
    pub writable: bool,
    /// Opened by an execve (see `Inode::open_execs`).
    pub exec: bool,
    pub append: bool,
    /// Written (or truncated) through this handle since its last flush.
    pub written: AtomicBool,
}

/// All open handles of the mount.
#[derive(Debug, Default)]
pub struct Handles {
    next: u64,
    files: HashMap<u64, Arc<OpenFile>>,
    dirs: HashMap<u64, Arc<Vec<DirEntry>>>,
}

impl Handles {
    fn alloc(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    pub fn add_file(&mut self, f: OpenFile) -> u64 {
        let fh = self.alloc();
        self.files.insert(fh, Arc::new(f));
        fh
    }

    pub fn file(&self, fh: u64) -> Option<Arc<OpenFile>> {
        self.files.get(&fh).cloned()
    }

    pub fn remove_file(&mut self, fh: u64) -> Option<Arc<OpenFile>> {
        self.files.remove(&fh)
    }

    pub fn add_dir(&mut self, entries: Vec<DirEntry>) -> u64 {
        let fh = self.alloc();
        self.dirs.insert(fh, Arc::new(entries));
        fh
    }

    pub fn dir(&self, fh: u64) -> Option<Arc<Vec<DirEntry>>> {
        self.dirs.get(&fh).cloned()
    }

    pub fn remove_dir(&mut self, fh: u64) -> Option<Arc<Vec<DirEntry>>> {
        self.dirs.remove(&fh)
    }
}
