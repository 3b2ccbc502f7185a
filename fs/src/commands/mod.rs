//! The `savesync` subcommands. Each parses nothing itself (see `crate::cli`) and returns
//! `anyhow::Result` so startup errors reach the user as one readable line.

pub mod history;
pub mod mount;
pub use crate::mountinfo;
pub mod pair;
pub mod status;
pub mod track;

/// Log to stderr, filtered by `RUST_LOG` (default `default_level`). Never logs tokens:
/// nothing in this crate formats one.
pub(crate) fn init_tracing(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// A current-thread runtime for one-shot commands.
pub(crate) fn small_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}
