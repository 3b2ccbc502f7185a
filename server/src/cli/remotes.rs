//! `savesync-server remotes add|list|remove|sync|trust`: SSH push-pull remotes
//! (`crate::remotes`). They work on the data directory directly, also while `serve` runs;
//! `sync` runs in this process (a run already under way elsewhere makes it fail as busy).

use super::DataDirArg;
use crate::app::App;
use crate::config::Config;
use crate::remotes::{self, AddRemote, Counters};
use anyhow::Context;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum RemotesCommand {
    /// Register a device reached over SSH/SFTP; connects once and pins its host key.
    Add(AddArgs),
    /// List remotes with their status (last_ok, last_error, next run).
    List {
        #[arg(long)]
        user: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Remove a remote (its device row is revoked; history keeps its name).
    Remove {
        name: String,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Sync a remote now, in this process.
    Sync {
        name: String,
        /// Print the run's counters as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Accept the host key the device offers now (after a reinstall), printing old and new.
    Trust {
        name: String,
        #[command(flatten)]
        data: DataDirArg,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Name of the remote (also its device name in history).
    name: String,
    /// The user whose library it syncs (created if missing).
    #[arg(long)]
    user: String,
    /// USER@HOST[:PORT] of the device's sshd.
    #[arg(long, value_name = "USER@HOST[:PORT]")]
    ssh: String,
    /// Private key file (unencrypted) the server logs in with. Read at each connect, never
    /// stored or logged.
    #[arg(long, value_name = "FILE")]
    key: String,
    /// REMOTE_DIR=LIBRARY_PREFIX: an absolute directory on the device and the library
    /// prefix its files sync with. Repeatable.
    #[arg(long = "map", value_name = "REMOTE_DIR=LIBRARY_PREFIX", required = true)]
    maps: Vec<String>,
    /// How often to sync, e.g. 30s, 15m, 2h.
    #[arg(long, default_value = "15m")]
    every: String,
    #[command(flatten)]
    data: DataDirArg,
}

fn data_of(cmd: &RemotesCommand) -> &DataDirArg {
    match cmd {
        RemotesCommand::Add(a) => &a.data,
        RemotesCommand::List { data, .. }
        | RemotesCommand::Remove { data, .. }
        | RemotesCommand::Sync { data, .. }
        | RemotesCommand::Trust { data, .. } => data,
    }
}

pub fn remotes(mut config: Config, cmd: &RemotesCommand) -> anyhow::Result<()> {
    data_of(cmd).apply(&mut config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let app = App::connect(config).await?;
        run(&app, cmd).await
    })
}

async fn run(app: &App, cmd: &RemotesCommand) -> anyhow::Result<()> {
    match cmd {
        RemotesCommand::Add(a) => {
            let every_secs = remotes::parse_every(&a.every).map_err(anyhow::Error::msg)?;
            let request = AddRemote {
                name: a.name.clone(),
                user: a.user.clone(),
                ssh: a.ssh.clone(),
                key_path: a.key.clone(),
                maps: a.maps.clone(),
                every_secs,
            };
            let added = remotes::add(app, &request).await?;
            println!("remote {:?} added for user {:?}", added.name, added.user_name);
            println!("host key: {}", added.host_key);
            println!(
                "Check it on the device with: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub"
            );
            println!("(or the key type it uses). A different key later is refused until");
            println!("`savesync-server remotes trust {}`.", added.name);
        }
        RemotesCommand::List { user, json, .. } => {
            let mut list = remotes::status(app, None).await?;
            list.retain(|r| user.as_ref().is_none_or(|u| &r.user == u));
            if *json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            for r in list {
                println!("{}  (user {}, {}, every {}s)", r.name, r.user, r.ssh, r.every_secs);
                for map in &r.maps {
                    println!("    map      {map}");
                }
                println!("    host key {}", r.host_key);
                if let Some(offered) = &r.offered_host_key {
                    println!(
                        "    OFFERED  {offered}  (refused; `remotes trust {}` to accept)",
                        r.name
                    );
                }
                println!("    last_ok  {}", r.last_ok.as_deref().unwrap_or("never"));
                println!("    last_error {}", r.last_error.as_deref().unwrap_or("-"));
                println!("    next run {}", r.next_run);
            }
        }
        RemotesCommand::Remove { name, .. } => {
            anyhow::ensure!(remotes::remove(app, name).await?, "no remote named {name:?}");
            println!("remote {name:?} removed");
        }
        RemotesCommand::Sync { name, json, .. } => {
            let report = remotes::sync_now(app, name, &Counters::default()).await?;
            if *json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "synced {name:?}: {} uploaded, {} downloaded, {} deleted here, {} deleted there, \
                     {} conflicts ({} open), {} bytes read, {} bytes written",
                    report.uploaded,
                    report.downloaded,
                    report.deleted_on_server,
                    report.deleted_on_device,
                    report.conflicts,
                    report.open_conflicts,
                    report.bytes_read,
                    report.bytes_written
                );
                if let Some(f) = &report.first_failure {
                    println!("{} file(s) failed; first: {f}", report.failed);
                }
            }
        }
        RemotesCommand::Trust { name, .. } => {
            let trusted = remotes::trust(app, name).await?;
            println!("old host key: {}", trusted.old);
            println!("new host key: {}", trusted.new);
            if trusted.old == trusted.new {
                println!("unchanged");
            } else {
                println!("the new key is pinned for {name:?}");
            }
        }
    }
    Ok(())
}
