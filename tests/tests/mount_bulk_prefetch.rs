//! Bulk prefetch on a real mount against a real server: a fresh device fetches the
//! library's small saves in bulk streams (no single download per save), installs them into
//! its cache, and serves every one with the right bytes after the server is gone; a save
//! over the per-save limit is only listed; a lowered budget leaves the rest to single
//! downloads; a burst of remote changes while mounted comes in bulk too.
//!
//! "In bulk" is read off the server's `/metrics`: `POST /saves/bulk` requests, and no
//! `GET /saves/content` for the saves that came that way.

use savesync_core::{Rev, SavePath};
use savesync_tests::{
    Device, RemoteView, TestServer, dir_names, require_fuse, save_bytes, wait_until,
};
use std::time::Duration;

const USER: &str = "bulk";
const DEADLINE: Duration = Duration::from_secs(30);
const SAVE_LEN: usize = 64 * 1024;

/// Requests the server answered for `route` and `method`, from `/metrics`.
fn requests(view: &RemoteView, route: &str, method: &str) -> u64 {
    let text = view.block_on(view.client().metrics()).expect("server metrics");
    let prefix = format!("savesync_http_requests_total{{route=\"{route}\",method=\"{method}\"");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

fn single_downloads(view: &RemoteView) -> u64 {
    requests(view, "/api/v1/saves/content", "GET")
}

fn bulk_requests(view: &RemoteView) -> u64 {
    requests(view, "/api/v1/saves/bulk", "POST")
}

/// Upload `n` saves `lib/save-NNN.srm` through the API (another device's work).
fn upload_library(view: &RemoteView, server: &TestServer, n: usize) -> Vec<(String, Vec<u8>)> {
    let client = view.block_on(server.client_for(USER, "device-a"));
    let saves: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| (format!("lib/save-{i:03}.srm"), save_bytes(9000 + i as u64, SAVE_LEN)))
        .collect();
    for (path, bytes) in &saves {
        let path = SavePath::parse(path).unwrap();
        view.block_on(client.upload(&path, Rev::NONE, bytes.clone().into())).expect("upload");
    }
    saves
}

/// Wait until `device` has followed the feed up to the server's cursor and drained its queue.
fn wait_drained(device: &Device, view: &RemoteView) {
    let cursor = view.block_on(view.client().list(None, true)).expect("list").cursor.0;
    wait_until(DEADLINE, "the device to catch up and drain its queue", || {
        let s = device.status_json();
        (s["cursor"].as_u64() >= Some(cursor) && s["pending"] == 0).then_some(())
    });
}

#[test]
fn a_fresh_device_prefetches_in_bulk_and_reads_everything_offline() {
    if !require_fuse() {
        return;
    }
    let mut server = TestServer::start_blocking();
    let view = RemoteView::new(&server, USER);
    let saves = upload_library(&view, &server, 300);
    // Over the default 1 MiB per-save limit: listed, never prefetched.
    let big = save_bytes(77, 2 * 1024 * 1024);
    let client = view.block_on(server.client_for(USER, "device-a2"));
    view.block_on(client.upload(&SavePath::parse("lib/big.state").unwrap(), Rev::NONE, big.into()))
        .expect("upload big");
    let singles_before = single_downloads(&view);

    let mut b = Device::pair(&server, USER, "fresh-b");
    b.mount();
    wait_drained(&b, &view);
    assert_eq!(dir_names(&b.path("lib")).unwrap().len(), saves.len() + 1);
    assert!(bulk_requests(&view) >= 1, "the fresh device used the bulk endpoint");
    assert_eq!(
        single_downloads(&view),
        singles_before,
        "no save was downloaded on its own (the big one is not prefetched at all)"
    );

    server.stop_blocking();
    for (path, bytes) in &saves {
        assert_eq!(&std::fs::read(b.path(path)).unwrap(), bytes, "{path} served offline");
    }
    b.unmount();
}

#[test]
fn a_lowered_budget_leaves_the_rest_to_single_downloads() {
    if !require_fuse() {
        return;
    }
    let server = TestServer::start_blocking();
    let view = RemoteView::new(&server, USER);
    let saves = upload_library(&view, &server, 40);
    let singles_before = single_downloads(&view);
    let mut b = Device::pair(&server, USER, "small-disk-b");
    // Room for 10 saves per bulk round.
    let budget = (10 * SAVE_LEN).to_string();
    b.mount_with_args(&["--bulk-budget-bytes", &budget]);
    wait_drained(&b, &view);
    for (path, bytes) in &saves {
        assert_eq!(&std::fs::read(b.path(path)).unwrap(), bytes, "{path}");
    }
    assert_eq!(bulk_requests(&view), 1, "one bulk round");
    assert_eq!(single_downloads(&view) - singles_before, 30, "the 30 over the budget, singly");
    b.unmount();
}

#[test]
fn a_burst_of_remote_changes_while_mounted_comes_in_bulk() {
    if !require_fuse() {
        return;
    }
    let server = TestServer::start_blocking();
    let view = RemoteView::new(&server, USER);
    let mut b = Device::pair(&server, USER, "mounted-b");
    b.mount();
    wait_drained(&b, &view);
    // Freeze B's daemon so the whole burst is committed before it looks: it then sees
    // the burst as one page of changes (or renegotiates, if its stream timed out).
    let pid = nix::unistd::Pid::from_raw(b.mount_pid().expect("daemon pid") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let saves = upload_library(&view, &server, 120);
    let singles_before = single_downloads(&view);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    wait_drained(&b, &view);
    assert!(bulk_requests(&view) >= 1, "the burst used the bulk endpoint");
    assert_eq!(single_downloads(&view), singles_before, "no save of the burst came singly");
    for (path, bytes) in &saves {
        assert_eq!(&std::fs::read(b.path(path)).unwrap(), bytes, "{path}");
    }
    b.unmount();
}
