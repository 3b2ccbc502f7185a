//! Creating a RetroArch device, and what to type into RetroArch's Cloud Sync settings.
//!
//! RetroArch can only be told a URL, a user name and a password, so there is no pairing
//! code to redeem: the admin creates the device (`savesync-server pair --kind retroarch`),
//! which gets a fresh device token as its password and a library folder as its root. The
//! token is shown once and stored hashed, like every device token.

use super::paths::MOUNT;
use crate::app::App;
use crate::meta::NewDavDevice;
use crate::secrets::Token;
use crate::timestamps::now_unix;
use savesync_core::SavePath;

/// RetroArch's Settings > Saving > Cloud Sync fields for a device (the password is shown
/// once, at creation, and is not part of this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetroArchSettings {
    /// "Cloud Sync URL": the WebDAV base URL, ending in `/`.
    pub url: String,
    /// "Username": the device name.
    pub username: String,
}

/// The settings for the device named `device_name` on a server reached at `server_url`
/// (the URL devices use, as `pair` prints it). For the dashboard's pair page too.
#[must_use]
pub fn retroarch_settings(server_url: &str, device_name: &str) -> RetroArchSettings {
    RetroArchSettings {
        url: format!("{}{MOUNT}/", server_url.trim_end_matches('/')),
        username: device_name.to_owned(),
    }
}

/// A created RetroArch device. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DavCredentials {
    pub device_id: i64,
    pub user: String,
    pub username: String,
    /// The device token: RetroArch's "Password". Shown once.
    pub password: String,
    pub root: SavePath,
}

impl std::fmt::Debug for DavCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DavCredentials")
            .field("device_id", &self.device_id)
            .field("user", &self.user)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("root", &self.root)
            .finish()
    }
}

/// Create a WebDAV device `name` of `user` (created if missing) rooted at library folder
/// `prefix` (slashes around it are ignored; it must be a valid save path).
pub async fn create_device(
    app: &App,
    user: &str,
    name: &str,
    prefix: &str,
) -> anyhow::Result<DavCredentials> {
    let user = user.trim();
    anyhow::ensure!(!user.is_empty(), "user name must not be empty");
    let name = crate::device_label::printable_label(name, 128, true)
        .map_err(|e| anyhow::anyhow!("device name {name:?}: {e:?}"))?;
    anyhow::ensure!(!name.contains(':'), "a device name used as a user name cannot hold ':'");
    let root = SavePath::parse(prefix.trim_matches('/'))
        .map_err(|e| anyhow::anyhow!("library prefix {prefix:?}: {e}"))?;
    let token = Token::generate();
    let device = app
        .meta()
        .create_dav_device(&NewDavDevice {
            user,
            name,
            kind: "retroarch",
            token_hash: &token.hash(),
            prefix: &root,
            now: now_unix(),
        })
        .await?;
    Ok(DavCredentials {
        device_id: device.device_id,
        user: device.user_name,
        username: name.to_owned(),
        password: token.reveal().to_owned(),
        root,
    })
}

#[cfg(test)]
mod tests {
    use super::retroarch_settings;

    #[test]
    fn settings_point_at_the_dav_mount_with_a_trailing_slash() {
        for base in ["http://nas.local:7878", "http://nas.local:7878/"] {
            let s = retroarch_settings(base, "steamdeck");
            assert_eq!(s.url, "http://nas.local:7878/dav/");
            assert_eq!(s.username, "steamdeck");
        }
    }
}
