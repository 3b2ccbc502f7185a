//! Revoking a device revokes everything it holds, not just its next request: its open
//! event stream closes, its pending long-poll ends with `device_revoked`, the pairing codes
//! it minted stop working, and an upload it had in flight does not commit. Revoking from
//! the admin CLI (another process, writing the database directly) has the same effect on
//! streams and long-polls within a few `revocation_check_interval`s.

mod common;

use common::{DEADLINE, Device, TestServer, eventually, put, sp};
use futures::StreamExt;
use savesync_core::wire::HASH_HEADER;
use savesync_core::{ContentHash, ErrorCode, Rev, Seq};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

crate::backend_matrix! {

/// Wait until the server has seen a request of `device` (its `last_seen_at` is written
/// right after a request authenticated). When the device's only request is a long-poll,
/// this proves the long-poll got past authentication and is waiting.
async fn wait_until_seen(observer: &Device, device: &Device) {
    eventually("the long-poll to authenticate", || async {
        let devices = observer.client.devices().await.ok()?.devices;
        devices.iter().find(|d| d.id == device.id)?.last_seen_at.as_ref().map(drop)
    })
    .await;
}

#[tokio::test]
async fn revoking_a_device_closes_its_open_event_stream() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let laptop = server.pair("alice", "laptop").await;
    let mut events = Box::pin(laptop.client.events().await.expect("event stream opens"));
    let first = tokio::time::timeout(DEADLINE, events.next()).await.expect("first event");
    assert_eq!(first.expect("stream open").expect("cursor event").cursor, Seq(0));

    deck.client.revoke_device(laptop.id).await.unwrap();
    put(&deck, "snes/after-revoke.srm", Rev::NONE, b"secret").await;
    let next = tokio::time::timeout(DEADLINE, events.next())
        .await
        .expect("the revoked device's event stream is still open");
    assert!(next.is_none(), "the stream announced more after the revocation: {next:?}");
}

#[tokio::test]
async fn a_pending_long_poll_of_a_revoked_device_ends_with_device_revoked() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let laptop = server.pair("alice", "laptop").await;
    let poller = laptop.client.clone();
    let poll =
        tokio::spawn(async move { poller.changes(Seq(0), Duration::from_secs(30), None).await });
    wait_until_seen(&deck, &laptop).await;

    deck.client.revoke_device(laptop.id).await.unwrap();
    put(&deck, "snes/after-revoke.srm", Rev::NONE, b"secret").await;
    let answer = tokio::time::timeout(DEADLINE, poll)
        .await
        .expect("the long-poll did not end")
        .expect("long-poll task");
    let err = answer.expect_err("the revoked device got the next page");
    assert_eq!((err.status(), err.code()), (Some(401), Some(ErrorCode::DeviceRevoked)), "{err}");
}

#[tokio::test]
async fn codes_minted_by_a_revoked_device_no_longer_pair() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let laptop = server.pair("alice", "laptop").await;
    let minted = laptop.client.create_pairing_code().await.unwrap();
    let spare = laptop.client.create_pairing_code().await.unwrap();
    let used = server.anonymous().pair(&spare.code, "phone", "handheld").await.unwrap();

    deck.client.revoke_device(laptop.id).await.unwrap();
    let err = server.anonymous().pair(&minted.code, "intruder", "desktop").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::PairingCodeInvalid), "{err}");
    // Devices paired earlier through the revoked device's codes keep working.
    server.client_with_token(&used.token).list(None, false).await.unwrap();
}

/// Read from `stream` until the end of the response headers.
async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut byte))
            .await
            .expect("response head in time")
            .expect("read");
        assert_eq!(n, 1, "connection closed inside the head: {:?}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn an_upload_in_flight_when_its_device_is_revoked_does_not_commit() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let laptop = server.pair("alice", "laptop").await;
    let body = b"closed save written just before the revocation";
    let addr = server.base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /api/v1/saves/content?path=snes%2Fin-flight.srm&base_rev=0 HTTP/1.1\r\n\
         host: {addr}\r\nauthorization: Bearer {}\r\n{HASH_HEADER}: {}\r\n\
         content-length: {}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
        laptop.token,
        ContentHash::of(body).to_hex(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server asks for the body only once the request authenticated and the handler
    // started reading it: the upload is now in flight.
    let interim = read_head(&mut stream).await;
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");

    deck.client.revoke_device(laptop.id).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(DEADLINE, stream.read_to_string(&mut response))
        .await
        .expect("response in time")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert!(response.contains("device_revoked"), "{response}");
    let err = deck.client.download(&sp("snes/in-flight.srm"), None).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "the upload committed: {err}");
}

/// Run `savesync-server devices revoke ID` against the server's data dir, as an admin would.
async fn revoke_with_cli(server: &TestServer, id: i64) {
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_savesync-server"))
        .args(["devices", "revoke", &id.to_string(), "--data-dir"])
        .arg(server.data_dir.path())
        .env_remove("SAVESYNC_CONFIG")
        .env("RUST_LOG", "warn")
        .status()
        .await
        .expect("run savesync-server devices revoke");
    assert!(status.success(), "devices revoke failed: {status}");
}

#[sqlite_dir_only]
#[tokio::test]
async fn a_revocation_by_the_cli_ends_streams_and_long_polls_within_a_few_check_intervals() {
    let interval = Duration::from_millis(200);
    let server = TestServer::start_with(|c| c.revocation_check_interval = interval).await;
    let deck = server.pair("alice", "deck").await;
    let laptop = server.pair("alice", "laptop").await;
    let minted = laptop.client.create_pairing_code().await.unwrap();
    let mut events = Box::pin(laptop.client.events().await.expect("event stream opens"));
    tokio::time::timeout(DEADLINE, events.next()).await.expect("first event").unwrap().unwrap();

    // Several check intervals pass while the device is in good standing: the stream stays
    // open and still announces commits.
    let quiet = tokio::time::timeout(5 * interval, events.next()).await;
    assert!(quiet.is_err(), "the stream of a valid device ended: {quiet:?}");
    let saved = put(&deck, "snes/a.srm", Rev::NONE, b"v1").await;
    let announced = tokio::time::timeout(DEADLINE, events.next()).await.expect("announcement");
    assert_eq!(announced.unwrap().unwrap().cursor, saved.seq);

    // A device whose only request is a long-poll, waiting when the CLI revokes it.
    let phone = server.pair("alice", "phone").await;
    let poller = phone.client.clone();
    let since = saved.seq;
    let poll =
        tokio::spawn(async move { poller.changes(since, Duration::from_secs(30), None).await });
    wait_until_seen(&deck, &phone).await;

    revoke_with_cli(&server, phone.id).await;
    revoke_with_cli(&server, laptop.id).await;
    let ended = tokio::time::timeout(DEADLINE, events.next())
        .await
        .expect("the event stream of a device revoked by the CLI is still open");
    assert!(ended.is_none(), "the stream announced more after the revocation: {ended:?}");
    let answer = tokio::time::timeout(DEADLINE, poll).await.expect("long-poll ended").unwrap();
    let err = answer.expect_err("the long-poll of a device revoked by the CLI answered a page");
    assert_eq!(err.code(), Some(ErrorCode::DeviceRevoked), "{err}");
    let err = laptop.client.list(None, false).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::DeviceRevoked), "{err}");
    let err = server.anonymous().pair(&minted.code, "intruder", "desktop").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::PairingCodeInvalid), "{err}");
}
}
