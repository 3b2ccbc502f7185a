//! Names that look the same are the same save (issue 7, item 8), through the real HTTP API:
//! an NFD path is the NFC save, a second name that differs only in case is refused with
//! `409 name_collision`, and paths up to PATH_MAX - 1 bytes go through query strings, the
//! database and the changes feed intact.

mod common;

use common::{Device, TestServer, put, sp};
use savesync_core::wire::{ErrorBody, HASH_HEADER};
use savesync_core::{ContentHash, ErrorCode, MAX_PATH_BYTES, Rev, Seq};
use std::time::Duration;

crate::backend_matrix! {

const NFC: &str = "gba/Pok\u{e9}mon Emerald.sav";
const NFD: &str = "gba/Poke\u{301}mon Emerald.sav";

/// Upload with a hand-built query, so the path reaches the server exactly as spelled
/// (the client would normalise it first).
async fn raw_upload(
    server: &TestServer,
    device: &Device,
    path: &str,
    base: u64,
    bytes: &[u8],
) -> (u16, String) {
    let mut url = reqwest::Url::parse(&server.api("saves/content")).unwrap();
    url.query_pairs_mut().append_pair("path", path).append_pair("base_rev", &base.to_string());
    let response = reqwest::Client::new()
        .put(url)
        .bearer_auth(&device.token)
        .header(HASH_HEADER, ContentHash::of(bytes).to_hex())
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn raw_download(server: &TestServer, device: &Device, path: &str) -> (u16, Vec<u8>) {
    let mut url = reqwest::Url::parse(&server.api("saves/content")).unwrap();
    url.query_pairs_mut().append_pair("path", path);
    let response = reqwest::Client::new().get(url).bearer_auth(&device.token).send().await.unwrap();
    (response.status().as_u16(), response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn an_nfd_upload_is_the_nfc_save() {
    let server = TestServer::start().await;
    let mac = server.pair("alice", "macbook").await;
    let (status, body) = raw_upload(&server, &mac, NFD, 0, b"from macOS").await;
    assert_eq!(status, 200, "{body}");

    let list = mac.client.list(None, true).await.unwrap();
    let paths: Vec<&str> = list.saves.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, [NFC], "one save, stored under its NFC name");
    // Either spelling downloads it.
    for spelling in [NFC, NFD] {
        assert_eq!(raw_download(&server, &mac, spelling).await, (200, b"from macOS".to_vec()));
    }
    // An update spelled in NFC is the next revision of the same save, not a second save.
    let (status, body) = raw_upload(&server, &mac, NFC, 1, b"from Linux").await;
    assert_eq!(status, 200, "{body}");
    let list = mac.client.list(None, true).await.unwrap();
    assert_eq!(list.saves.len(), 1, "{list:?}");
    assert_eq!(list.saves[0].rev, Rev(2));
}

#[tokio::test]
async fn a_second_name_differing_only_in_case_is_a_409_name_collision() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    put(&deck, "snes/Zelda.srm", Rev::NONE, b"v1").await;
    for clash in ["snes/zelda.srm", "snes/ZELDA.SRM", "SNES/mario.srm"] {
        let (status, body) = raw_upload(&server, &deck, clash, 0, b"other").await;
        assert_eq!(status, 409, "{clash}: {body}");
        let error: ErrorBody = serde_json::from_str(&body).unwrap();
        assert_eq!(error.code, ErrorCode::NameCollision, "{clash}: {body}");
        assert!(error.message.contains("snes/Zelda.srm"), "names the existing save: {body}");
        let existing = error.head.expect("the existing save's head");
        assert_eq!((existing.path.as_str(), existing.rev), ("snes/Zelda.srm", Rev(1)));
        let err = deck.client.upload(&sp(clash), Rev::NONE, "x".into()).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::NameCollision), "{clash}");
    }
    let list = deck.client.list(None, true).await.unwrap();
    assert_eq!(list.saves.len(), 1, "nothing else was stored: {list:?}");

    // Once the save is deleted its case variant is free.
    deck.client.delete(&sp("snes/Zelda.srm"), Rev(1)).await.unwrap();
    put(&deck, "snes/ZELDA.srm", Rev::NONE, b"new").await;
}

/// A path of exactly `len` bytes of `component`-sized directories of `fill`.
fn long_path(len: usize, fill: char) -> String {
    let comp: String = std::iter::repeat_n(fill, 100).collect();
    let mut path = String::new();
    while path.len() + 1 + comp.len() + 1 < len {
        path.push_str(&comp);
        path.push('/');
    }
    while path.len() < len {
        path.push('f');
    }
    path
}

#[tokio::test]
async fn paths_of_path_max_minus_one_bytes_round_trip_through_the_server() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    // ASCII, and two-byte characters (every byte percent-encoded in the query: 12 KB URLs).
    for fill in ['d', '\u{e9}'] {
        let path = long_path(MAX_PATH_BYTES, fill);
        assert_eq!(path.len(), 4095);
        let meta = put(&deck, &path, Rev::NONE, path.as_bytes()).await;
        assert_eq!(meta.path.as_str(), path);
        let got = deck.client.download(&sp(&path), None).await.unwrap();
        assert_eq!(got.bytes.as_ref(), path.as_bytes());
        let history = deck.client.history(&sp(&path)).await.unwrap();
        assert_eq!(history.versions.len(), 1);
        let listed = deck.client.list(None, false).await.unwrap();
        assert!(listed.saves.iter().any(|s| s.path.as_str() == path));
        let changes = deck.client.changes(Seq::START, Duration::ZERO, None).await.unwrap();
        assert!(changes.changes.iter().any(|c| c.path.as_str() == path));
    }
    // One byte more is refused as a bad path.
    let (status, body) =
        raw_upload(&server, &deck, &long_path(MAX_PATH_BYTES + 1, 'd'), 0, b"x").await;
    assert_eq!(status, 400, "{body}");
    let error: ErrorBody = serde_json::from_str(&body).unwrap();
    assert_eq!(error.code, ErrorCode::BadPath);
}
}
