//! The `savesync` subcommands. Each parses nothing itself (see `crate::cli`) and returns
//! `anyhow::Result` so startup errors reach the user as one readable line.

use crate::cli::{Cli, Command};
use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

mod daemon;
pub mod history;
pub mod mount;
pub use crate::mountinfo;
pub mod pair;
pub mod status;
mod status_wait;
pub mod sync;
mod sync_plan;
pub mod track;

/// Log to stderr, filtered by `RUST_LOG` (default `default_level`). Never logs tokens:
/// nothing in this crate formats one.
pub(crate) fn init_tracing(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour_log())
        .try_init();
}

/// A current-thread runtime for one-shot commands.
pub(crate) fn small_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Parse the command line and run the subcommand; errors are printed as one line.
pub fn cli_main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Pair(a) => pair::run(&a),
        Command::Mount(a) => {
            crate::heap::tune_for_daemon();
            mount::run(&a)
        }
        Command::Sync(a) => {
            crate::heap::tune_for_daemon();
            sync::run(&a)
        }
        Command::Status(a) => status::status(&a),
        Command::Conflicts(a) => status::conflicts(&a),
        Command::Resolve(a) => status::resolve(&a),
        Command::Untrack(a) => track::run(&a, true),
        Command::Track(a) => track::run(&a, false),
        Command::History(a) => history::history(&a),
        Command::Cat(a) => history::cat(&a),
        Command::Restore(a) => history::restore(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("savesync: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Colour codes only on a terminal, and not there either under `NO_COLOR`: a log that goes
/// to a file, a pipe or the journal stays plain text.
fn colour_log() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
