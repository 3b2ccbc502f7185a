//! savesync-server: the sync server library (the `savesync-server` binary is a thin
//! wrapper around [`cli_main`]).
//!
//! Layout: [`config`] (settings), [`app`] (shared state), `meta` (SQLite metadata behind
//! the `MetaStore` trait), `blob` (content-addressed blobs behind `BlobStore`), `http`
//! (the axum API and its accept loop), `feed` (cursor notifications), `gc` (blob and
//! staging collection), `pair_limiter` (throttling pairing-code guesses), `revocation`
//! (ending a revoked device's streams), `data_dir` (private permissions, pairing key),
//! `quota` (the per-user byte quota), `sessions` (sync-session retention), [`dav`] (the
//! WebDAV face for RetroArch's Cloud Sync), `cli`, `web` (the dashboard for users, under
//! `/web/`).
//! Tests and embedders start a server with [`launch`] on their own listener.

mod app;
pub mod blob;
mod cli;
mod config;
mod data_dir;
pub mod dav;
mod device_label;
mod error;
mod feed;
mod feed_bus;
mod gc;
mod http;
pub mod meta;
mod metrics;
mod pair_limiter;
mod publish;
mod quota;
pub mod remotes;
mod revocation;
mod secrets;
mod sessions;
mod timestamps;
pub mod transfer;
pub mod web;

pub use app::App;
pub use config::{Config, RetentionConfig};
pub use gc::{GcError, collect_garbage};
pub use http::launch;

/// What the `savesync-server` binary runs.
#[must_use]
pub fn cli_main() -> std::process::ExitCode {
    cli::cli_main()
}
