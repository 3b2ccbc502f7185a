//! Admin subcommands that work on the data directory directly, also while `serve` runs
//! (same SQLite file in WAL mode): `pair` (a pairing code, or with `--kind retroarch` a
//! WebDAV device and the settings to type into RetroArch), `devices list|revoke`,
//! `users list`.

use super::DataDirArg;
use super::advertised_url::{AdvertisedUrl, advertised_url, local_host_name};
use crate::app::App;
use crate::config::Config;
use crate::timestamps::now_unix;
use clap::{Args, Subcommand, ValueEnum};
use qrcode::QrCode;
use qrcode::render::unicode;

#[derive(Debug, Args)]
pub struct PairArgs {
    /// The user the new device will belong to (created if missing).
    #[arg(long, env = "SAVESYNC_USER")]
    user: String,
    #[command(flatten)]
    data: DataDirArg,
    /// URL devices use to reach the server, for the printed command and QR code.
    #[arg(long, env = "SAVESYNC_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// Print only the code, on one line (for scripts); with `--kind retroarch`, only the
    /// password.
    #[arg(long)]
    quiet: bool,
    /// What will sync: a savesync device (prints a pairing code), or RetroArch's own Cloud
    /// Sync over WebDAV (creates the device now and prints its URL, username, password).
    #[arg(long, value_enum, default_value_t = PairKind::Savesync)]
    kind: PairKind,
    /// The RetroArch device's name: its WebDAV user name (with `--kind retroarch`).
    #[arg(long, default_value = "retroarch")]
    name: String,
    /// The library folder RetroArch's `saves/` and `states/` go under (with
    /// `--kind retroarch`), e.g. `retroarch` gives `retroarch/saves/<core>/<game>.srm`.
    #[arg(long, default_value = "retroarch", value_name = "FOLDER")]
    prefix: String,
}

/// What `pair` sets up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PairKind {
    /// A device running `savesync` (a pairing code to redeem).
    Savesync,
    /// RetroArch's Cloud Sync (WebDAV, Basic auth).
    Retroarch,
}

#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// List devices (of one user, or all).
    List {
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Revoke a device: its token stops working at once.
    Revoke {
        /// Device id, as shown by `devices list`.
        id: i64,
        #[command(flatten)]
        data: DataDirArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List users with their device and save counts.
    List {
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Set a user's password for the web dashboard (asked on the terminal, or read as one
    /// line from standard input; never taken from the command line).
    Passwd(super::web_admin::PasswdArgs),
}

/// The link a device app can open from the QR code.
pub(crate) fn pair_link(server: &str, code: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("server", server)
        .append_pair("code", code)
        .finish();
    format!("savesync://pair?{query}")
}

pub fn pair(mut config: Config, args: &PairArgs) -> anyhow::Result<()> {
    args.data.apply(&mut config);
    if let Some(url) = &args.public_url {
        config.public_url = Some(url.clone());
    }
    let app = App::open(config)?;
    if args.kind == PairKind::Retroarch {
        return pair_retroarch(&app, args);
    }
    let code = app.issue_pairing_code(&args.user)?;
    if args.quiet {
        println!("{}", code.code);
        return Ok(());
    }
    let AdvertisedUrl { url: server, warning } =
        advertised_url(app.config(), local_host_name().as_deref());
    if let Some(warning) = warning {
        eprintln!("warning: {warning}");
        eprintln!();
    }
    println!("Pairing code for user {:?}: {}", args.user.trim(), code.code);
    println!("Valid once, until {}.", code.expires_at);
    println!();
    println!("On the device, run:");
    println!("    savesync pair {server} {}", code.code);
    println!();
    match QrCode::new(pair_link(&server, &code.code)) {
        Ok(qr) => {
            println!("Or scan:");
            let image = qr
                .render::<unicode::Dense1x2>()
                .dark_color(unicode::Dense1x2::Light)
                .light_color(unicode::Dense1x2::Dark)
                .build();
            println!("{image}");
        }
        Err(e) => eprintln!("(no QR code: {e})"),
    }
    Ok(())
}

/// Create the RetroArch device and print exactly what to type into RetroArch.
fn pair_retroarch(app: &App, args: &PairArgs) -> anyhow::Result<()> {
    let created = futures::executor::block_on(crate::dav::create_device(
        app,
        &args.user,
        &args.name,
        &args.prefix,
    ))?;
    if args.quiet {
        println!("{}", created.password);
        return Ok(());
    }
    let AdvertisedUrl { url: server, warning } =
        advertised_url(app.config(), local_host_name().as_deref());
    if let Some(warning) = warning {
        eprintln!("warning: {warning}");
        eprintln!();
    }
    let settings = crate::dav::retroarch_settings(&server, &created.username);
    println!(
        "RetroArch device {:?} (id {}) of user {:?}: its saves and states go to {}/ in the library.",
        created.username, created.device_id, created.user, created.root
    );
    println!();
    println!("In RetroArch, Settings > Saving > Cloud Sync:");
    println!("    Cloud Sync Enable:    ON");
    println!("    Cloud Sync Backend:   webdav");
    println!("    Cloud Storage URL:    {}", settings.url);
    println!("    Username:             {}", settings.username);
    println!("    Password:             {}", created.password);
    println!();
    println!("The password is shown only now. To cut this device off later:");
    println!("    savesync-server devices revoke {}", created.device_id);
    Ok(())
}

pub fn devices(mut config: Config, cmd: &DevicesCommand) -> anyhow::Result<()> {
    match cmd {
        DevicesCommand::List { user, data } => {
            data.apply(&mut config);
            let app = App::open(config)?;
            let devices = futures::executor::block_on(app.meta().admin_devices(user.as_deref()))?;
            println!(
                "{:>5}  {:<16} {:<24} {:<12} {:<22} STATUS",
                "ID", "USER", "NAME", "KIND", "LAST SEEN"
            );
            for d in devices {
                let status = if d.info.revoked { "revoked" } else { "active" };
                let seen = d.info.last_seen_at.as_deref().unwrap_or("never");
                println!(
                    "{:>5}  {:<16} {:<24} {:<12} {:<22} {status}",
                    d.info.id, d.user_name, d.info.name, d.info.kind, seen
                );
            }
        }
        DevicesCommand::Revoke { id, data } => {
            data.apply(&mut config);
            let app = App::open(config)?;
            anyhow::ensure!(
                futures::executor::block_on(app.meta().revoke_device(None, *id, now_unix()))?,
                "no device with id {id}"
            );
            println!("device {id} revoked");
        }
    }
    Ok(())
}

pub fn users(mut config: Config, cmd: &UsersCommand) -> anyhow::Result<()> {
    let data = match cmd {
        UsersCommand::List { data } => data,
        UsersCommand::Passwd(args) => return super::web_admin::passwd(config, args),
    };
    data.apply(&mut config);
    let app = App::open(config)?;
    println!("{:<24} {:>8} {:>8} {:>10}", "USER", "DEVICES", "SAVES", "CURSOR");
    for u in futures::executor::block_on(app.meta().admin_users())? {
        println!("{:<24} {:>8} {:>8} {:>10}", u.name, u.devices, u.saves, u.seq.0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn pair_link_percent_encodes_the_server_url() {
        assert_eq!(
            super::pair_link("http://nas.local:7878/x y", "K7QM-3XWP"),
            "savesync://pair?server=http%3A%2F%2Fnas.local%3A7878%2Fx+y&code=K7QM-3XWP"
        );
    }
}
