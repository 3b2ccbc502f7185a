//! What the Pair page tells the user to enter on devices that do not run `savesync`
//! itself. Each kind of device the server can serve adds one [`PairTarget`] here, and
//! the page lists them under the pairing code: this file is the one place to add them.
//!
//! RetroArch's Cloud Sync (WebDAV, `crate::dav`): its devices are created on the page
//! itself (`pair_retroarch`). SSH push-pull remotes (`crate::remotes`): the server's admin
//! registers them with `savesync-server remotes add`, since that reads a key file on the
//! server; the page says what to run.

/// Instructions for one kind of device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairTarget {
    /// Heading, e.g. "RetroArch (Cloud Sync)".
    pub title: &'static str,
    /// Label and value pairs to show, e.g. ("URL", "http://nas:7878/dav/").
    pub fields: Vec<(&'static str, String)>,
    /// One sentence of help.
    pub note: &'static str,
}

/// The targets to show, given the server's base URL as the browser reached it.
#[must_use]
pub fn targets(server: &str) -> Vec<PairTarget> {
    let retroarch = crate::dav::retroarch_settings(server, "");
    let ssh = PairTarget {
        title: "A handheld with only SSH (muOS, Knulli, ROCKNIX, Batocera, ArkOS)",
        fields: vec![(
            "On the server, as its admin",
            "savesync-server remotes add NAME --user USER --ssh root@HANDHELD --key KEYFILE \
             --map /path/to/saves=PREFIX --every 15m"
                .to_owned(),
        )],
        note: "Nothing is installed on the handheld: the server syncs it over SFTP, pinning \
               its host key on first use (check the fingerprint it prints). `remotes list` \
               shows when each last synced.",
    };
    vec![
        PairTarget {
            title: "RetroArch (Cloud Sync)",
            fields: vec![
                ("Settings > Saving > Cloud Sync", "ON".to_owned()),
                ("Cloud Sync Backend", "webdav".to_owned()),
                ("Cloud Storage URL", retroarch.url),
            ],
            note: "Username and Password come from creating a RetroArch device below: its name is \
               the Username, and its password is shown once.",
        },
        ssh,
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn retroarch_is_told_the_webdav_url_of_this_server() {
        let targets = super::targets("http://nas.local:7878");
        let url = targets[0].fields.iter().find(|(k, _)| *k == "Cloud Storage URL").unwrap();
        assert_eq!(url.1, "http://nas.local:7878/dav/");
    }

    #[test]
    fn an_ssh_handheld_is_told_the_remotes_add_command() {
        let targets = super::targets("http://nas.local:7878");
        let ssh = targets.iter().find(|t| t.title.contains("SSH")).expect("an SSH entry");
        assert!(ssh.fields[0].1.starts_with("savesync-server remotes add NAME"), "{ssh:?}");
    }
}
