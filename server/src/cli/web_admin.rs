//! Admin subcommands for the web dashboard: `users passwd NAME` (argon2-hashed password)
//! and `login-link NAME` (a one-time sign-in link). Like the other admin commands they
//! work on the data directory directly, also while `serve` runs.

use super::DataDirArg;
use super::advertised_url::{AdvertisedUrl, advertised_url, local_host_name};
use crate::app::App;
use crate::config::Config;
use anyhow::Context;
use clap::Args;
use std::io::{BufRead, IsTerminal};

#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// The user (as created by `pair --user`).
    name: String,
    #[command(flatten)]
    data: DataDirArg,
}

#[derive(Debug, Args)]
pub struct LoginLinkArgs {
    /// The user to sign in.
    name: String,
    #[command(flatten)]
    data: DataDirArg,
    /// The server's URL as browsers reach it, for the printed link.
    #[arg(long, env = "SAVESYNC_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
}

/// The new password: asked twice on a terminal, else one line of standard input.
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("New password: ")?;
        let second = rpassword::prompt_password("Again: ")?;
        anyhow::ensure!(first == second, "the two passwords differ; nothing changed");
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

pub fn passwd(mut config: Config, args: &PasswdArgs) -> anyhow::Result<()> {
    args.data.apply(&mut config);
    let app = App::open(config)?;
    let password = read_password()?;
    futures::executor::block_on(crate::web::set_user_password(&app, &args.name, &password))?;
    println!("Password set for {:?}; their signed-in browsers were signed out.", args.name.trim());
    Ok(())
}

pub fn login_link(mut config: Config, args: &LoginLinkArgs) -> anyhow::Result<()> {
    args.data.apply(&mut config);
    if let Some(url) = &args.public_url {
        config.public_url = Some(url.clone());
    }
    let app = App::open(config)?;
    let AdvertisedUrl { url: base, warning } =
        advertised_url(app.config(), local_host_name().as_deref());
    if let Some(warning) = warning {
        eprintln!("warning: {warning}");
    }
    let link = futures::executor::block_on(crate::web::issue_login_link(&app, &args.name, &base))?;
    println!("{}", link.url);
    eprintln!("Works once, until {}.", link.expires_at);
    Ok(())
}
