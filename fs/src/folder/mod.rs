//! The synced folder: `savesync sync DIR` keeps an ordinary directory in sync with the
//! user's library, through the same engine, state DB layout, conflict rules and
//! local-only names as the mount. It is the front-end for devices that cannot (or should
//! not) mount FUSE.
//!
//! - [`store`]: [`FolderStore`], the [`crate::local::LocalStore`] over the directory
//!   (entries by stat, hashes cached by stat, installs by temp + fsync + rename, real
//!   `NAME.conflict` files);
//! - [`watch`]: inotify, recursive, overflow -> rescan; [`scan`]: the full walk at start and
//!   after lost events; [`quiet`] and [`writers`]: when a written file counts as finished;
//! - [`resolve`]: conflict resolution by deleting or renaming the copy;
//! - [`front`]: the loop between watcher, store and engine; [`first_sync`]: the plan
//!   `--dry-run` prints; [`paths`]: which files are saves; [`walk`]: listing them;
//!   [`wait_barrier`]: how `savesync status --wait` knows the watcher caught up.

pub mod first_sync;
pub mod front;
pub mod paths;
pub mod quiet;
pub mod resolve;
pub mod scan;
pub mod store;
pub mod wait_barrier;
pub mod walk;
pub mod watch;
pub mod writers;

pub use store::{FolderConfig, FolderStore};

#[cfg(test)]
mod tests;
