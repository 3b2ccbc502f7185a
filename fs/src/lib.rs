//! savesync-fs: the `savesync` mount. A FUSE filesystem whose tree is the user's save
//! library, backed by a local cache and the sync server.
//!
//! Layers (each testable without the one above it):
//! - [`fuse`]: thin fuser 0.18 adapter, errno mapping at one boundary;
//! - [`savefs`]: the filesystem layer ([`SaveFs`]): inodes ([`inode_table`]), handles,
//!   cache files, POSIX semantics, conflict resolution by unlink/rename;
//! - [`sync`]: the engine: durable queue, uploads, downloads, feed follower, conflicts,
//!   every decision by `savesync_core::decide`;
//! - [`remote`]: the narrow [`Remote`] trait over the HTTP client, with
//!   [`fake_remote::FakeRemote`] for tests;
//! - [`state`]: the SQLite state DB; [`profile`]: device profiles; [`cli`] and
//!   `commands`: the `savesync` binary.

pub mod cli;
mod commands;
pub mod error;
pub mod fake_remote;
pub mod fuse;
pub mod inode_table;
pub mod local;
pub mod profile;
pub mod remote;
pub mod savefs;
pub mod state;
pub mod sync;

pub use cli::cli_main;
pub use error::{FsError, FsResult};
pub use remote::Remote;
pub use savefs::{FsConfig, SaveFs};
