//! `savesync pair URL CODE`: trade a one-time code for a device token and write the
//! profile. Prints what it did, never the token.

use crate::cli::PairArgs;
use crate::profile::{Profile, create_private_dir, default_data_dir};
use anyhow::Context;

pub fn run(args: &PairArgs) -> anyhow::Result<()> {
    super::init_tracing("warn");
    let name = match &args.name {
        Some(n) => n.clone(),
        None => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "device".to_owned()),
    };
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => default_data_dir(&args.profile)?,
    };
    let client = savesync_client::Client::new(&args.url, None)
        .with_context(|| format!("bad server URL {:?}", args.url))?;
    let rt = super::small_runtime()?;
    let paired = rt
        .block_on(client.pair(&args.code, &name, &args.kind))
        .with_context(|| format!("pairing with {}", args.url))?;
    create_private_dir(&data_dir)?;
    let profile = Profile {
        server_url: args.url.clone(),
        token: paired.token,
        device_id: paired.device_id,
        user: paired.user.clone(),
        device_name: name.clone(),
        data_dir: data_dir.clone(),
    };
    let path = profile.save(&args.profile)?;
    println!(
        "Paired device {name:?} (id {}) as user {:?} with {}.",
        paired.device_id, paired.user, args.url
    );
    println!("Profile {:?} written to {} (mode 0600).", args.profile, path.display());
    println!("Saves are cached in {}.", data_dir.display());
    let flag = if args.profile == "default" {
        String::new()
    } else {
        format!(" --profile {}", args.profile)
    };
    println!("Next: savesync mount <DIR>{flag}");
    Ok(())
}
