//! `savesync untrack PATH` / `savesync track PATH`: opt this device out of one save (or
//! back in). The choice lives on the server, per device (`PUT`/`DELETE
//! /api/v1/untracked`); the device's negotiate (mount or synced folder) then answers `untracked` for that save and
//! leaves it alone. Needs the server to be reachable; changes nothing locally.

use crate::cli::TrackArgs;
use crate::profile::Profile;
use anyhow::Context;
use savesync_core::SavePath;

/// Set or clear the untracked mark of `args.path` for this device.
pub fn run(args: &TrackArgs, untracked: bool) -> anyhow::Result<()> {
    let profile = Profile::load(&args.profile)?;
    let path = library_path(&args.path)?;
    let client = savesync_client::Client::new(&profile.server_url, Some(profile.token.clone()))
        .context("bad server URL in profile")?;
    super::small_runtime()?
        .block_on(client.set_untracked(&path, untracked))
        .with_context(|| format!("telling the server at {}", profile.server_url))?;
    if untracked {
        println!(
            "{path} is no longer synced on this device (other devices keep syncing it). \
             A running mount or synced folder applies this at its next reconnect or start."
        );
    } else {
        println!("{path} is synced on this device again from its next reconnect or start.");
    }
    Ok(())
}

/// A save path inside the library ("snes/Zelda.srm"); a leading `/` is ignored.
fn library_path(arg: &str) -> anyhow::Result<SavePath> {
    let rel = arg.trim_start_matches('/');
    SavePath::parse(rel).with_context(|| format!("{arg:?} is not a save path"))
}

#[cfg(test)]
mod tests {
    use super::library_path;

    #[test]
    fn library_paths_ignore_a_leading_slash_and_refuse_escapes() {
        assert_eq!(library_path("/snes/Zelda.srm").unwrap().as_str(), "snes/Zelda.srm");
        assert!(library_path("../etc/passwd").is_err());
    }
}
