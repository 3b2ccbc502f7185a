//! What the Pair page tells the user to enter on devices that do not run `savesync`
//! itself. Each kind of device the server can serve adds one [`PairTarget`] here, and
//! the page lists them under the code: this file is the one place to add them.
//!
//! TODO(issue 9): RetroArch Cloud Sync over WebDAV (`server/src/dav/`) and SSH push-pull
//! remotes (`server/src/remotes/`) add their entries when they land.

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
pub fn targets(_server: &str) -> Vec<PairTarget> {
    Vec::new()
}
