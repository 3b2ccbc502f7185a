//! savesync-fs: the `savesync` device program. One sync engine with front-ends on top: a
//! FUSE mount whose tree is the user's save library, backed by a local cache and the sync
//! server.
//!
//! Layers, top to bottom (each depends only on the ones below it):
//! - front-ends: [`fuse`] (thin fuser 0.18 adapter, errno mapping at one boundary) over
//!   [`savefs`] ([`SaveFs`]: handles, POSIX semantics, conflict resolution by
//!   unlink/rename); and [`folder`], the synced folder (`savesync sync DIR`) for devices
//!   without FUSE (its own local store over an ordinary directory);
//! - [`sync`]: the engine ([`sync::SyncEngine`]): durable queue, uploads, downloads, feed
//!   follower, conflicts, every decision by `savesync_core::decide` and the pure policy
//!   [`sync::plan`];
//! - [`local`]: the [`local::LocalStore`] trait the engine works through, implemented by
//!   the mount's [`tree`] ([`tree::LocalTree`]: inode table, cache files, conflict copies);
//! - [`remote`]: the narrow [`Remote`] trait over the HTTP client (and, with the
//!   `fake-remote` feature, `fake_remote::FakeRemote` for tests);
//! - [`state`]: the SQLite state DB; [`profile`]: device profiles; [`cli`] and
//!   `commands`: the `savesync` binary.

pub mod cli;
pub mod clock;
mod commands;
pub mod error;
#[cfg(feature = "fake-remote")]
pub mod fake_remote;
pub mod file_hash;
pub mod folder;
pub mod fuse;
pub mod heap;
pub mod local;
pub mod mountinfo;
pub mod profile;
pub mod remote;
pub mod savefs;
pub mod state;
pub mod sync;
pub mod tree;

pub use commands::cli_main;
pub use error::{FsError, FsResult};
pub use remote::Remote;
pub use savefs::{FsConfig, SaveFs};
