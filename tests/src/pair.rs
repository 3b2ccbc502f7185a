//! [`DevicePair`]: the fixture two-device scenarios start from: a real server, two paired
//! and mounted devices of one user, and a view of what reached the server.

use crate::{Device, RemoteView, TestServer, require_fuse};

/// Two mounted devices of one user against their own server. Fields drop in order: the
/// mounts go first, then the server.
#[derive(Debug)]
pub struct DevicePair {
    pub a: Device,
    pub b: Device,
    pub view: RemoteView,
    pub server: TestServer,
}

impl DevicePair {
    /// Start a server, pair `handheld-a` and `desktop-b` for `user` and mount both; `None`
    /// when FUSE is not usable here (see [`require_fuse`]: under `CI=true` that fails
    /// instead).
    #[must_use]
    pub fn start(user: &str) -> Option<DevicePair> {
        DevicePair::start_named(user, "handheld-a", "desktop-b")
    }

    /// [`DevicePair::start`] with the device names a scenario needs.
    #[must_use]
    pub fn start_named(user: &str, a_name: &str, b_name: &str) -> Option<DevicePair> {
        if !require_fuse() {
            return None;
        }
        let server = TestServer::start_blocking();
        let view = RemoteView::new(&server, user);
        let mut a = Device::pair(&server, user, a_name);
        let mut b = Device::pair(&server, user, b_name);
        a.mount();
        b.mount();
        Some(DevicePair { a, b, view, server })
    }
}
