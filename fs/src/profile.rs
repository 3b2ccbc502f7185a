//! Device profiles: `$XDG_CONFIG_HOME/savesync/profiles/<name>.toml` (fallback
//! `~/.config`), mode 0600 in a 0700 directory because it holds the device token.
//!
//! The data dir defaults to `$XDG_DATA_HOME/savesync/<name>` (fallback `~/.local/share`),
//! deliberately not the XDG *cache* dir: it holds saves not yet uploaded, which a cache
//! cleaner must never delete.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// One paired device.
#[derive(Clone, Serialize, Deserialize)]
pub struct Profile {
    pub server_url: String,
    pub token: String,
    pub device_id: i64,
    pub user: String,
    #[serde(default)]
    pub device_name: String,
    pub data_dir: PathBuf,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("server_url", &self.server_url)
            .field("token", &"<redacted>")
            .field("device_id", &self.device_id)
            .field("user", &self.user)
            .field("device_name", &self.device_name)
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from).context("HOME is not set")
}

fn xdg(var: &str, fallback: &[&str]) -> anyhow::Result<PathBuf> {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => Ok(PathBuf::from(v)),
        _ => Ok(fallback.iter().fold(home()?, |p, c| p.join(c))),
    }
}

/// Directory holding the profiles.
pub fn profiles_dir() -> anyhow::Result<PathBuf> {
    Ok(xdg("XDG_CONFIG_HOME", &[".config"])?.join("savesync").join("profiles"))
}

/// Path of profile `name`.
pub fn profile_path(name: &str) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
        "profile names use letters, digits, '-', '_' and '.': {name:?}"
    );
    Ok(profiles_dir()?.join(format!("{name}.toml")))
}

/// Default data dir of profile `name`.
pub fn default_data_dir(name: &str) -> anyhow::Result<PathBuf> {
    Ok(xdg("XDG_DATA_HOME", &[".local", "share"])?.join("savesync").join(name))
}

/// Create `dir` (and parents) with mode 0700.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

impl Profile {
    /// Load profile `name`.
    pub fn load(name: &str) -> anyhow::Result<Profile> {
        let path = profile_path(name)?;
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("reading profile {}: pair this device first (savesync pair)", path.display())
        })?;
        toml::from_str(&text).with_context(|| format!("parsing profile {}", path.display()))
    }

    /// Write profile `name` (0600, atomically). Returns its path.
    pub fn save(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = profile_path(name)?;
        let dir = path.parent().context("profile path has no parent")?;
        create_private_dir(dir)?;
        let text = toml::to_string(self).context("serializing profile")?;
        let tmp = dir.join(format!(".{name}.toml.tmp"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}
