//! Every negotiation opens a sync session on the server; the device completes it with the
//! counts of its plan, so the server's session list and audit log show finished syncs.

use savesync_core::SavePath;
use savesync_core::wire::AuditEntry;
use savesync_tests::{Device, RemoteView, TestServer, require_fuse, wait_until};
use std::time::Duration;

const USER: &str = "sam";
const DEVICE: &str = "handheld-s";

fn audit(view: &RemoteView) -> Vec<AuditEntry> {
    view.block_on(view.client().audit(200)).expect("GET /audit").entries
}

/// The session number in an audit detail such as "session 3: ...".
fn session_of(detail: &str) -> Option<i64> {
    detail.strip_prefix("session ")?.split(':').next()?.parse().ok()
}

#[test]
fn the_start_up_negotiation_session_is_completed_with_its_counts() {
    if !require_fuse() {
        return;
    }
    let server = TestServer::start_blocking();
    let view = RemoteView::new(&server, USER);
    // One save only the server has: the device's plan is one download.
    let path = SavePath::parse("ps1/card.mcd").unwrap();
    view.block_on(view.client().upload(&path, savesync_core::Rev::NONE, b"card".to_vec().into()))
        .expect("seed a save");
    let mut a = Device::pair(&server, USER, DEVICE);
    a.mount();
    let opened = wait_until(Duration::from_secs(20), "the device's negotiate session", || {
        audit(&view)
            .iter()
            .find(|e| e.operation == "negotiate" && e.device.as_deref() == Some(DEVICE))
            .and_then(|e| session_of(&e.detail))
    });
    let done = wait_until(Duration::from_secs(20), "that session completed", || {
        audit(&view).into_iter().find(|e| {
            e.operation == "session_complete"
                && e.device.as_deref() == Some(DEVICE)
                && session_of(&e.detail) == Some(opened)
        })
    });
    assert!(
        done.detail.contains("downloaded 1"),
        "the report counts the download: {}",
        done.detail
    );
    assert!(done.detail.contains("uploaded 0"), "{}", done.detail);
}
