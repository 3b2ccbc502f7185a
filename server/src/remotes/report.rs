//! What a run did, counted as it goes ([`Counters`], readable while the run is under way)
//! and reported at the end ([`RunReport`], printed by `remotes sync --json` and returned by
//! the API). Tests assert on these: two runs in a row with nothing changed read and write
//! zero bytes.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one run.
#[derive(Debug, Default)]
pub struct Counters {
    files_read: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
}

impl Counters {
    pub(crate) fn add_read(&self, n: u64) {
        self.bytes_read.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn file_read(&self) {
        self.files_read.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_written(&self, n: u64) {
        self.bytes_written.fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes read from the device so far.
    #[must_use]
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// Bytes written to the device so far.
    #[must_use]
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }
}

/// The outcome of one completed run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// Device files seen in the mapped directories.
    pub files_seen: u64,
    /// Device files read (new or changed size/mtime).
    pub files_read: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Device versions committed to the library.
    pub uploaded: u64,
    /// Library versions written to the device.
    pub downloaded: u64,
    pub deleted_on_server: u64,
    pub deleted_on_device: u64,
    /// New conflicts (device version kept, server version written as `NAME.conflict`).
    pub conflicts: u64,
    /// Conflicts still waiting for the user on the device.
    pub open_conflicts: u64,
    /// Files left for the next run because the device changed them while this run looked.
    pub deferred: u64,
    /// Entries that are not syncable saves, and files over the size limit.
    pub skipped: u64,
    /// Temp files of an interrupted run removed.
    pub leftovers_removed: u64,
    /// Files that failed (each logged); the run still did the others.
    pub failed: u64,
    /// The first per-file failure, if any.
    pub first_failure: Option<String>,
}

impl RunReport {
    pub(crate) fn take_counters(&mut self, counters: &Counters) {
        self.files_read = counters.files_read.load(Ordering::Relaxed);
        self.bytes_read = counters.bytes_read();
        self.bytes_written = counters.bytes_written();
    }

    pub(crate) fn fail(&mut self, message: String) {
        self.failed += 1;
        if self.first_failure.is_none() {
            self.first_failure = Some(message);
        }
    }

    /// True when nothing was transferred or changed on either side.
    #[must_use]
    pub fn transferred_nothing(&self) -> bool {
        self.bytes_read == 0
            && self.bytes_written == 0
            && self.uploaded + self.downloaded + self.deleted_on_server + self.deleted_on_device
                == 0
    }
}
