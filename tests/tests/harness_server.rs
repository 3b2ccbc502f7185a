//! The harness's own server contract, without FUSE: a [`TestServer`] serves the real API,
//! `restart` keeps the data and the port, and [`RemoteView`] sees what was uploaded.

use bytes::Bytes;
use savesync_core::{Rev, SavePath};
use savesync_tests::{RemoteView, TestServer, poll_until, runtime};
use std::time::Duration;

#[test]
fn restart_keeps_the_data_and_the_port_and_paired_clients_keep_working() {
    let mut server = TestServer::start_blocking();
    let url = server.url();
    let view = RemoteView::new(&server, "harness");
    let rt = runtime();
    let client = rt.block_on(server.client_for("harness", "uploader"));
    let path = SavePath::parse("snes/harness.srm").unwrap();
    rt.block_on(client.upload(&path, Rev::NONE, Bytes::from_static(b"v1"))).unwrap();
    assert!(view.has("snes/harness.srm", b"v1"));

    server.stop_blocking();
    assert!(!server.is_running());
    assert!(view.try_saves().is_none(), "a stopped server does not answer");

    server.restart_blocking();
    assert_eq!(server.url(), url, "restart rebinds the same port");
    let back = poll_until(Duration::from_secs(10), || view.try_saves());
    let saves = back.expect("the restarted server answers").0;
    assert_eq!(saves.len(), 1, "the data survived the restart: {saves:?}");
    assert!(view.has("snes/harness.srm", b"v1"));
    let head = view.head("snes/harness.srm").unwrap();
    rt.block_on(client.upload(&path, head.rev, Bytes::from_static(b"v2"))).unwrap();
    assert!(view.has("snes/harness.srm", b"v2"));
    assert!(view.history_has("snes/harness.srm", b"v1"));
}

#[test]
fn async_start_and_stop_work_inside_a_tokio_runtime() {
    let rt = runtime();
    rt.block_on(async {
        let mut server = TestServer::start().await;
        let client = server.client_for("harness", "async").await;
        let list = client.list(None, false).await.unwrap();
        assert!(list.saves.is_empty());
        server.restart().await;
        let list = client.list(None, false).await.unwrap();
        assert!(list.saves.is_empty());
        server.stop().await;
    });
}
