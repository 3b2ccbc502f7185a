//! The `savesync-server` command line: `serve`, `pair`, `devices`, `users`, `login-link`,
//! `remotes`, `migrate`.
//!
//! Configuration precedence: defaults < TOML file (`--config` / `$SAVESYNC_CONFIG`) <
//! `SAVESYNC_*` environment < command-line flags.

mod admin;
mod advertised_url;
mod migrate;
mod remotes;
mod serve;
mod transfer;
mod web_admin;

pub(crate) use admin::pair_link;

use crate::config::Config;
use clap::{Args, Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// savesync sync server: keeps game saves in step across devices.
#[derive(Debug, Parser)]
#[command(name = "savesync-server", version, about, long_about = None)]
struct Cli {
    /// TOML config file. Keys: data_dir, listen, public_url, max_body_bytes, max_json_bytes,
    /// pairing_ttl_secs, long_poll_max_secs, request_timeout_secs, gc_interval_secs,
    /// trust_forwarded_for, pairing_max_wrong_guesses, pairing_mint_burst,
    /// pairing_mint_interval_secs, admin_cli_only, revocation_check_secs, remote_check_ms,
    /// remote_concurrency, database_url, database_max_connections,
    /// and a [retention] table with keep_versions, keep_days. Each is also settable as SAVESYNC_<KEY>
    /// (SAVESYNC_KEEP_VERSIONS, SAVESYNC_KEEP_DAYS for retention).
    #[arg(long, global = true, env = "SAVESYNC_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API until Ctrl-C or SIGTERM.
    Serve(serve::ServeArgs),
    /// Print a one-time pairing code (and QR code) for a new device of USER.
    Pair(admin::PairArgs),
    /// List or revoke devices.
    #[command(subcommand)]
    Devices(admin::DevicesCommand),
    /// List users; set a user's dashboard password.
    #[command(subcommand)]
    Users(admin::UsersCommand),
    /// Print a one-time link that signs USER in to the web dashboard.
    LoginLink(web_admin::LoginLinkArgs),
    /// SSH push-pull remotes: devices that run only sshd, synced by the server.
    #[command(subcommand)]
    Remotes(remotes::RemotesCommand),
    /// Bring the metadata database's schema up to this version and print the version
    /// (SQLite file, or Postgres when database_url / SAVESYNC_DATABASE_URL is set).
    Migrate(migrate::MigrateArgs),
    /// Write every table and referenced blob of the configured stores to a new directory
    /// (to move the install to other backends with `import`). Stop the server first.
    Export(transfer::ExportArgs),
    /// Load a directory written by `export` into the configured stores, which must be
    /// empty, then check every count and blob hash.
    Import(transfer::ImportArgs),
}

/// Where the data lives; shared by every subcommand.
#[derive(Debug, Clone, Args)]
struct DataDirArg {
    /// Directory holding savesync.db and blobs/.
    #[arg(long, env = "SAVESYNC_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl DataDirArg {
    fn apply(&self, config: &mut Config) {
        if let Some(dir) = &self.data_dir {
            config.data_dir.clone_from(dir);
        }
    }
}

/// Colour codes only on a terminal, and not there either under `NO_COLOR`: a log that goes
/// to a file, a pipe or the journal stays plain text.
fn colour_log() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour_log())
        .try_init();
}

/// What the `savesync-server` binary runs.
pub fn cli_main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = Config::load(cli.config.as_deref()).and_then(|config| match cli.command {
        Command::Serve(args) => serve::run(config, &args),
        Command::Pair(args) => admin::pair(config, &args),
        Command::Devices(cmd) => admin::devices(config, &cmd),
        Command::Users(cmd) => admin::users(config, &cmd),
        Command::LoginLink(args) => web_admin::login_link(config, &args),
        Command::Remotes(cmd) => remotes::remotes(config, &cmd),
        Command::Migrate(args) => migrate::run(config, &args),
        Command::Export(args) => transfer::export(config, &args),
        Command::Import(args) => transfer::import(config, &args),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
