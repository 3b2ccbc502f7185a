//! The mount loads its whole inode table at start, so its size per save is what a device
//! with 100,000 saves pays in memory (issue 12's start target). Counted exactly, with a
//! counting allocator, on a table shaped like the benchmark's: 100 folders of 1,000 saves.
//! The count includes room allocated but not yet used (the inode store's tail), which is
//! never touched and so never resident: the resident share is smaller.

#![allow(unsafe_code)]

use savesync_fs::state::{InodeKind, InodeRow};
use savesync_fs::tree::inode_table::InodeTable;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes currently allocated by this test binary.
static LIVE: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: forwards every call to the system allocator unchanged, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn row(ino: u64, parent: u64, name: String, kind: InodeKind) -> InodeRow {
    InodeRow {
        ino,
        parent,
        name: name.into(),
        kind,
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        size: 8192,
        atime_ns: 0,
        mtime_ns: 0,
        ctime_ns: 0,
        cached: false,
        cache_size: 0,
        cache_mtime_ns: 0,
    }
}

#[test]
fn a_table_of_100_000_saves_takes_under_250_bytes_per_save() {
    const FOLDERS: u64 = 100;
    const PER_FOLDER: u64 = 1000;
    let before = LIVE.load(Ordering::Relaxed);
    let mut table = InodeTable::with_root(row(1, 1, String::new(), InodeKind::Dir));
    table.insert(row(2, 1, "saves".into(), InodeKind::Dir));
    let mut ino = 3;
    for f in 0..FOLDERS {
        let dir = ino;
        table.insert(row(dir, 2, format!("Game {f:03}"), InodeKind::Dir));
        ino += 1;
        for i in 0..PER_FOLDER {
            table.insert(row(
                ino,
                dir,
                format!("Save-{:06}.srm", f * PER_FOLDER + i),
                InodeKind::File,
            ));
            ino += 1;
        }
    }
    let per_save = (LIVE.load(Ordering::Relaxed) - before) as u64 / (FOLDERS * PER_FOLDER);
    eprintln!("inode table: {per_save} bytes per save");
    assert_eq!(table.len() as u64, 2 + FOLDERS + FOLDERS * PER_FOLDER);
    assert!(per_save < 250, "the inode table takes {per_save} bytes per save");
}
