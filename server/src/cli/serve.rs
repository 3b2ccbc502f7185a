//! `savesync-server serve`.

use super::DataDirArg;
use super::advertised_url::{advertised_url, local_host_name};
use crate::app::App;
use crate::config::Config;
use anyhow::Context;
use clap::Args;
use std::net::SocketAddr;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    data: DataDirArg,
    /// Address to listen on.
    #[arg(long, env = "SAVESYNC_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// URL devices use to reach this server (shown by `pair`).
    #[arg(long, env = "SAVESYNC_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
}

pub fn run(mut config: Config, args: &ServeArgs) -> anyhow::Result<()> {
    args.data.apply(&mut config);
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(url) = &args.public_url {
        config.public_url = Some(url.clone());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let app = App::connect(config.clone()).await?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        // With `--listen ...:0` only the bound socket knows the port devices need.
        let mut bound = config.clone();
        bound.listen = listener.local_addr().unwrap_or(config.listen);
        let shown = advertised_url(&bound, local_host_name().as_deref());
        tracing::info!(data_dir = %config.data_dir.display(), url = %shown.url, "savesync-server starting");
        if let Some(warning) = shown.warning {
            tracing::warn!("{warning}");
        }
        crate::launch(app, listener, shutdown_signal()).await
    })
}

/// Ctrl-C or SIGTERM (what `systemctl stop` and `docker stop` send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
