//! `.history/`: a read-only view of every save's server history at the root of the mount.
//!
//! `.history/snes/Chrono Trigger.srm/` is a directory whose files are the versions the
//! server keeps of that save (`2026-11-30T18-04-22 deck r12.srm`, see [`names`]), with
//! their sizes and the version times as mtimes. Directories above it mirror the library's
//! directories as the mount shows them (plus saves deleted here whose records remain, so a
//! deleted save's history can be reached). Reading a version downloads it when it is
//! opened (into the tree's `tmp/`, hash verified, unlinked at once, so it is gone when the
//! last handle closes); copying one over the live save is an ordinary write of that save,
//! which is how a file manager restores.
//!
//! Rules:
//! - Nothing here is a save: the nodes live in their own inode space ([`inodes`]), never in
//!   the tree or the state DB, so nothing is queued, uploaded or negotiated.
//! - Read-only: every create, write, unlink, rename or setattr inside it is EROFS; at the
//!   mount root the name `.history` is taken (creating or renaming onto it is EEXIST,
//!   removing or renaming it is EROFS). A save `.history/...` made by another device
//!   stays in the tree, hidden behind this directory.
//! - Free until used: nothing is built at mount time; listing a library directory reads
//!   the in-memory tree only; listing a save's versions calls the server's history endpoint
//!   (answers kept [`LIST_TTL`] in a cache of [`MAX_CACHED`] saves).
//! - Offline: a listing or a read that needs the server fails with ENETUNREACH after at
//!   most [`NET_TIMEOUT`] ([`DOWNLOAD_TIMEOUT`] for a read), logged once per outage.
//! - Hidden from the root's listing unless `show` (`savesync mount --show-history`);
//!   `lookup(".history")` always works.
//!
//! Files: `names` (version file names, pure), `inodes` (virtual inode numbers and their
//! bounded registry), `listing` (directory contents and lookups), `open` (downloading a
//! version for reading), `hooks` (the checks the mount's operations call).

mod hooks;
pub mod inodes;
mod listing;
pub mod names;
mod open;

use crate::error::FsError;
use crate::remote::{Remote, RemoteError};
use inodes::Registry;
use lru::LruCache;
use savesync_core::SavePath;
use savesync_core::wire::HistoryEntry;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub use inodes::{VIRTUAL_BASE, is_virtual};

/// The name at the mount root.
pub const HISTORY_DIR: &str = ".history";

/// How long a save's version list is reused before the server is asked again.
pub const LIST_TTL: Duration = Duration::from_secs(5);

/// Saves whose version lists are cached.
pub const MAX_CACHED: usize = 64;

/// Longest a listing waits for the server.
pub const NET_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest opening a version waits for its download.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A save's version list and when the server gave it.
type CachedList = (Instant, Arc<Vec<HistoryEntry>>);

/// The `.history` tree of one mount.
#[derive(Debug)]
pub struct HistoryDir {
    remote: Arc<dyn Remote>,
    /// Show `.history` in the root's listing.
    show: bool,
    nodes: Mutex<Registry>,
    versions: Mutex<LruCache<SavePath, CachedList>>,
    /// Time shown on the virtual directories (the mount's start).
    born: SystemTime,
    /// An outage was logged and no call has succeeded since.
    outage_logged: AtomicBool,
    /// History calls made to the server (for `status` and tests).
    calls: AtomicU64,
}

impl HistoryDir {
    #[must_use]
    pub fn new(remote: Arc<dyn Remote>, show: bool) -> HistoryDir {
        HistoryDir {
            remote,
            show,
            nodes: Mutex::new(Registry::default()),
            versions: Mutex::new(LruCache::new(
                NonZeroUsize::new(MAX_CACHED).unwrap_or(NonZeroUsize::MIN),
            )),
            born: SystemTime::now(),
            outage_logged: AtomicBool::new(false),
            calls: AtomicU64::new(0),
        }
    }

    /// History calls made to the server since the mount started.
    #[must_use]
    pub fn server_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Turn a failed server call into the errno the reader gets, logging an outage once.
    fn net_error(&self, what: &str, e: &RemoteError) -> FsError {
        let errno = match e {
            RemoteError::Offline(_) => libc::ENETUNREACH,
            RemoteError::NotFound => libc::ENOENT,
            _ => libc::EIO,
        };
        if errno == libc::ENETUNREACH {
            if !self.outage_logged.swap(true, Ordering::Relaxed) {
                tracing::warn!("{HISTORY_DIR}: the server is unreachable ({e}); {what} fails");
            }
        } else {
            tracing::warn!("{HISTORY_DIR}: {what}: {e}");
        }
        FsError::new(errno, format!("{HISTORY_DIR}: {what}: {e}"))
    }

    fn net_ok(&self) {
        if self.outage_logged.swap(false, Ordering::Relaxed) {
            tracing::info!("{HISTORY_DIR}: the server answers again");
        }
    }
}

/// Run `fut` for at most `limit`, a timeout counting as the server being unreachable.
async fn bounded<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, RemoteError>>,
) -> Result<T, RemoteError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(RemoteError::Offline(format!("no answer within {limit:?}"))),
    }
}
