//! [`SoloDevice`]: the fixture single-device scenarios start from: a real server, one
//! paired and mounted device, and a view of what reached the server.

use crate::{Device, RemoteView, TestServer, require_fuse};

/// One mounted device against its own server. Fields drop in order: the mount goes first,
/// then the server.
#[derive(Debug)]
pub struct SoloDevice {
    pub a: Device,
    pub view: RemoteView,
    pub server: TestServer,
}

impl SoloDevice {
    /// Start a server, pair `device` for `user` and mount it; `None` when FUSE is not
    /// usable here (see [`require_fuse`]: under `CI=true` that fails instead).
    #[must_use]
    pub fn start(user: &str, device: &str) -> Option<SoloDevice> {
        if !require_fuse() {
            return None;
        }
        let server = TestServer::start_blocking();
        let view = RemoteView::new(&server, user);
        let mut a = Device::pair(&server, user, device);
        a.mount();
        Some(SoloDevice { a, view, server })
    }
}
