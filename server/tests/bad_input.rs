//! Bad input gets a clear 4xx with a stable error code and stores nothing: malformed JSON,
//! bad paths, hash mismatch, oversized bodies, missing parameters, unknown routes.
//! "Nothing stored" is checked through list/history/changes and the blob directory.

mod common;

use bytes::Bytes;
use common::{Device, TestServer, put, sp};
use reqwest::Method;
use savesync_core::wire::{ErrorBody, HASH_HEADER};
use savesync_core::{ContentHash, ErrorCode, Rev, Seq};
use std::time::Duration;

crate::backend_matrix! {

/// Send a hand-built request as `device`; returns status and the decoded error body.
async fn raw(
    device: &Device,
    method: Method,
    url: reqwest::Url,
    body: Option<(&str, Vec<u8>)>,
) -> (u16, ErrorBody) {
    let mut request = reqwest::Client::new().request(method, url).bearer_auth(&device.token);
    if let Some((hash, bytes)) = body {
        request = request.header(HASH_HEADER, hash).body(bytes);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: body is not an ErrorBody ({e}): {text:?}"));
    (status, body)
}

fn url_with(server: &TestServer, endpoint: &str, query: &[(&str, &str)]) -> reqwest::Url {
    let mut url = reqwest::Url::parse(&server.api(endpoint)).unwrap();
    url.query_pairs_mut().extend_pairs(query);
    url
}

/// The user's library is still empty and the blob store holds exactly `blobs`.
async fn assert_nothing_stored(
    server: &TestServer,
    device: &Device,
    blobs: &std::collections::BTreeSet<std::path::PathBuf>,
) {
    assert!(device.client.list(None, true).await.unwrap().saves.is_empty());
    let changes = device.client.changes(Seq::START, Duration::ZERO, None).await.unwrap();
    assert!(changes.changes.is_empty(), "{changes:?}");
    assert_eq!(&server.blob_files(), blobs, "stray files in the blob store");
}

#[tokio::test]
async fn malformed_json_is_bad_json() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    for endpoint in ["negotiate", "saves/restore", "pair"] {
        let response = reqwest::Client::new()
            .post(server.api(endpoint))
            .bearer_auth(&deck.token)
            .header("content-type", "application/json")
            .body("{\"entries\": [ not json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{endpoint}");
        let body: ErrorBody = response.json().await.unwrap();
        assert_eq!(body.code, ErrorCode::BadJson, "{endpoint}: {body:?}");
    }
    // Well-formed JSON of the wrong shape, and a bad path inside JSON, are refused too.
    for bad in [r#"{"entries": 3}"#, r#"{"entries":[{"path":"../x","local":null,"base":null}]}"#] {
        let response = reqwest::Client::new()
            .post(server.api("negotiate"))
            .bearer_auth(&deck.token)
            .header("content-type", "application/json")
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        let body: ErrorBody = response.json().await.unwrap();
        assert!(matches!(body.code, ErrorCode::BadJson | ErrorCode::BadPath), "{bad}: {body:?}");
    }
    assert_nothing_stored(&server, &deck, &Default::default()).await;
}

#[tokio::test]
async fn bad_paths_are_bad_path_and_store_nothing() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    // Components leave room for ".conflict" (246 bytes); paths stop at PATH_MAX - 1.
    let long_component = "x".repeat(247);
    let long_path = vec!["y".repeat(200); 21].join("/");
    let bad_paths = [
        "../x",
        "snes/../../etc/passwd",
        "/abs",
        "a\0b",
        "a\nb",
        long_component.as_str(),
        long_path.as_str(),
        "x.conflict",
        "snes/a.srm.conflict",
        "snes/a.srm.CONFLICT",
        "snes/a.srm.conflict. ",
        "snes/ev\u{202E}il.srm",
        "snes//a",
        "snes\\a",
        "",
    ];
    let bytes = b"must not be stored".to_vec();
    let hash = ContentHash::of(&bytes).to_hex();
    for path in bad_paths {
        let put = url_with(&server, "saves/content", &[("path", path), ("base_rev", "0")]);
        let (status, body) =
            raw(&deck, Method::PUT, put.clone(), Some((&hash, bytes.clone()))).await;
        assert_eq!((status, body.code), (400, ErrorCode::BadPath), "upload {path:?}: {body:?}");
        for (method, endpoint) in [
            (Method::GET, "saves/content"),
            (Method::DELETE, "saves/content"),
            (Method::GET, "saves/history"),
            (Method::PUT, "untracked"),
        ] {
            let url = url_with(&server, endpoint, &[("path", path), ("base_rev", "0")]);
            let (status, body) = raw(&deck, method.clone(), url, None).await;
            assert_eq!(
                (status, body.code),
                (400, ErrorCode::BadPath),
                "{method} {endpoint} {path:?}"
            );
        }
        if path.is_empty() {
            continue; // `prefix=` (empty) means "no prefix" and lists everything.
        }
        let list = url_with(&server, "saves", &[("prefix", path)]);
        let (status, body) = raw(&deck, Method::GET, list, None).await;
        assert_eq!((status, body.code), (400, ErrorCode::BadPath), "list prefix {path:?}");
    }
    assert_nothing_stored(&server, &deck, &Default::default()).await;
    assert!(deck.client.untracked().await.unwrap().paths.is_empty());
}

#[tokio::test]
async fn hash_mismatch_is_refused_and_stores_nothing() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let url = url_with(&server, "saves/content", &[("path", "snes/a.srm"), ("base_rev", "0")]);
    let wrong = ContentHash::of(b"something else").to_hex();
    let (status, body) =
        raw(&deck, Method::PUT, url, Some((&wrong, b"actual bytes".to_vec()))).await;
    assert_eq!((status, body.code), (400, ErrorCode::HashMismatch), "{body:?}");
    assert_nothing_stored(&server, &deck, &Default::default()).await;
}

#[tokio::test]
async fn hash_mismatch_on_an_existing_save_keeps_the_head() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let head = put(&deck, "snes/a.srm", Rev::NONE, b"good").await;
    let blobs = server.blob_files();
    let url = url_with(&server, "saves/content", &[("path", "snes/a.srm"), ("base_rev", "1")]);
    let wrong = ContentHash::of(b"nope").to_hex();
    let (status, body) = raw(&deck, Method::PUT, url, Some((&wrong, b"evil".to_vec()))).await;
    assert_eq!((status, body.code), (400, ErrorCode::HashMismatch));
    assert_eq!(deck.client.list(None, true).await.unwrap().saves, vec![head]);
    assert_eq!(deck.client.history(&sp("snes/a.srm")).await.unwrap().versions.len(), 1);
    assert_eq!(server.blob_files(), blobs);
}

#[tokio::test]
async fn missing_or_malformed_hash_header_and_base_rev_are_bad_request() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let no_base = url_with(&server, "saves/content", &[("path", "snes/a.srm")]);
    let hash = ContentHash::of(b"x").to_hex();
    let (status, body) = raw(&deck, Method::PUT, no_base, Some((&hash, b"x".to_vec()))).await;
    assert_eq!((status, body.code), (400, ErrorCode::BadRequest), "missing base_rev");
    let bad_base =
        url_with(&server, "saves/content", &[("path", "snes/a.srm"), ("base_rev", "-1")]);
    let (status, body) = raw(&deck, Method::PUT, bad_base, Some((&hash, b"x".to_vec()))).await;
    assert_eq!((status, body.code), (400, ErrorCode::BadRequest), "negative base_rev");
    let url = url_with(&server, "saves/content", &[("path", "snes/a.srm"), ("base_rev", "0")]);
    let (status, body) = raw(&deck, Method::PUT, url.clone(), None).await;
    assert_eq!((status, body.code), (400, ErrorCode::BadRequest), "missing hash header");
    let (status, body) = raw(&deck, Method::PUT, url, Some(("zz", b"x".to_vec()))).await;
    assert_eq!((status, body.code), (400, ErrorCode::BadRequest), "malformed hash header");
    let no_path = url_with(&server, "saves/content", &[]);
    let (status, body) = raw(&deck, Method::GET, no_path, None).await;
    assert_eq!((status, body.code), (400, ErrorCode::BadRequest), "missing path");
    let since = url_with(&server, "changes", &[("since", "soon")]);
    let (status, body) = raw(&deck, Method::GET, since, None).await;
    assert_eq!((status, body.code), (400, ErrorCode::BadRequest), "bad since");
    assert_nothing_stored(&server, &deck, &Default::default()).await;
}

#[tokio::test]
async fn body_over_the_limit_is_413_and_stores_nothing() {
    let server = TestServer::start_with(|c| c.max_body_bytes = 1024).await;
    let deck = server.pair("alice", "deck").await;
    // Within the limit works.
    let small = deck.client.upload(&sp("gb/ok.sav"), Rev::NONE, Bytes::from(vec![1u8; 1024])).await;
    assert!(small.is_ok(), "{small:?}");
    let blobs = server.blob_files();
    let err = deck
        .client
        .upload(&sp("gb/big.sav"), Rev::NONE, Bytes::from(vec![2u8; 4096]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BodyTooLarge), "{err}");
    assert_eq!(err.status(), Some(413));
    assert_eq!(server.blob_files(), blobs, "stray files in the blob store");
    let list = deck.client.list(None, true).await.unwrap();
    assert_eq!(list.saves.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(), ["gb/ok.sav"]);
}

#[tokio::test]
async fn streamed_body_over_the_limit_without_length_is_413_and_stores_nothing() {
    let server = TestServer::start_with(|c| c.max_body_bytes = 1024).await;
    let deck = server.pair("alice", "deck").await;
    let url = url_with(&server, "saves/content", &[("path", "gb/big.sav"), ("base_rev", "0")]);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..8).map(|_| Ok(vec![3u8; 512])).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let response = reqwest::Client::new()
        .put(url)
        .bearer_auth(&deck.token)
        .header(HASH_HEADER, ContentHash::of(&[3u8; 4096]).to_hex())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: ErrorBody = response.json().await.unwrap();
    assert_eq!(body.code, ErrorCode::BodyTooLarge);
    assert_nothing_stored(&server, &deck, &Default::default()).await;
}

#[tokio::test]
async fn unknown_route_is_a_json_404() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let (status, body) =
        raw(&deck, Method::GET, url_with(&server, "no/such/route", &[]), None).await;
    assert_eq!((status, body.code), (404, ErrorCode::NotFound));
}

#[tokio::test]
async fn uploading_with_a_revoked_token_stores_nothing() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let thief = server.pair("alice", "stolen").await;
    deck.client.revoke_device(thief.id).await.unwrap();
    let err = thief
        .client
        .upload(&sp("snes/a.srm"), Rev::NONE, Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::DeviceRevoked), "{err}");
    assert_nothing_stored(&server, &deck, &Default::default()).await;
}
}
