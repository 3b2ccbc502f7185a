//! `POST /api/v1/saves/bulk` through the real client and by hand: many saves in one
//! stream with every hash checked, missing and deleted saves as markers, saves over the
//! request's limit announced instead of sent, another user's saves never visible, and bad
//! input (bad JSON, `../../etc`, too many paths, an oversized body, no token) refused with
//! the usual error body. Runs on every storage backend.

mod common;

use bytes::Bytes;
use common::{Device, TestServer, put, sp};
use futures::TryStreamExt;
use savesync_client::BulkItem;
use savesync_core::bulk::{MAX_BULK_BODY_BYTES, MAX_BULK_PATHS};
use savesync_core::wire::ErrorBody;
use savesync_core::{ContentHash, ErrorCode, Rev, SavePath};

crate::backend_matrix! {

/// Deterministic bytes of save `i`: sizes from empty to a few blob-store chunks.
fn bytes_of(i: usize) -> Vec<u8> {
    let len = match i % 5 {
        0 => 0,
        1 => 17,
        2 => 64 * 1024,
        3 => 64 * 1024 + 1,
        _ => 200 * 1024 + i,
    };
    (0..len).map(|j| (j * 31 + i * 7) as u8).collect()
}

async fn collect(device: &Device, paths: &[SavePath], max: u64) -> Vec<BulkItem> {
    let stream = device.client.bulk_download(paths, max).await.expect("bulk request");
    stream.try_collect().await.expect("whole bulk stream")
}

#[tokio::test]
async fn many_saves_come_back_whole_in_order_with_markers() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let n = 120;
    let mut paths = Vec::new();
    for i in 0..n {
        let path = format!("gba/save {i:03}.sav");
        put(&deck, &path, Rev::NONE, &bytes_of(i)).await;
        paths.push(sp(&path));
    }
    // A second revision: the head is what comes.
    put(&deck, "gba/save 001.sav", Rev(1), b"newer").await;
    // A deleted save and one that never was: markers, not errors.
    put(&deck, "gone.sav", Rev::NONE, b"soon deleted").await;
    deck.client.delete(&sp("gone.sav"), Rev(1)).await.unwrap();
    paths.insert(10, sp("gone.sav"));
    paths.insert(20, sp("never/was.sav"));

    let items = collect(&deck, &paths, 1024 * 1024).await;
    assert_eq!(items.len(), paths.len());
    let heads = deck.client.list(None, false).await.unwrap().saves;
    for (item, asked) in items.iter().zip(&paths) {
        assert_eq!(item.path(), asked, "order kept");
        match item {
            BulkItem::Save { path, version, bytes } => {
                let head = heads.iter().find(|h| &h.path == path).expect("a live save");
                assert_eq!(*version, head.version(), "{path}");
                assert_eq!(Some(ContentHash::of(bytes)), head.hash, "{path}");
                let i: usize = path.as_str()[9..12].parse().unwrap();
                let want = if i == 1 { b"newer".to_vec() } else { bytes_of(i) };
                assert_eq!(bytes.as_ref(), want.as_slice(), "{path}");
            }
            BulkItem::Missing { path } => {
                assert!(["gone.sav", "never/was.sav"].contains(&path.as_str()), "{path}");
            }
            BulkItem::TooLarge { path, .. } => panic!("{path} is under the limit"),
        }
    }
    let saves = items.iter().filter(|i| matches!(i, BulkItem::Save { .. })).count();
    assert_eq!(saves, n);
}

#[tokio::test]
async fn saves_over_the_limit_are_announced_not_sent() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let big = vec![9u8; 300 * 1024];
    put(&deck, "psx/card.mcd", Rev::NONE, &big).await;
    put(&deck, "psx/small.srm", Rev::NONE, b"small").await;
    let items = collect(&deck, &[sp("psx/card.mcd"), sp("psx/small.srm")], 100 * 1024).await;
    assert_eq!(items[0], BulkItem::TooLarge { path: sp("psx/card.mcd"), rev: Rev(1), size: 300 * 1024 });
    assert!(matches!(&items[1], BulkItem::Save { bytes, .. } if bytes.as_ref() == b"small"));
    // The same big save comes whole once the limit allows it (streamed in chunks).
    let items = collect(&deck, &[sp("psx/card.mcd")], 1024 * 1024).await;
    assert!(matches!(&items[0], BulkItem::Save { bytes, .. } if bytes.as_ref() == big.as_slice()));
}

#[tokio::test]
async fn another_users_saves_are_never_sent() {
    let server = TestServer::start().await;
    let alice = server.pair("alice", "deck").await;
    let bob = server.pair("bob", "phone").await;
    put(&alice, "snes/secret.srm", Rev::NONE, b"alice's progress").await;
    put(&bob, "snes/mine.srm", Rev::NONE, b"bob's progress").await;
    let items = collect(&bob, &[sp("snes/secret.srm"), sp("snes/mine.srm")], 1 << 20).await;
    assert_eq!(items[0], BulkItem::Missing { path: sp("snes/secret.srm") });
    assert!(matches!(&items[1], BulkItem::Save { bytes, .. } if bytes.as_ref() == b"bob's progress"));
}

#[tokio::test]
async fn an_empty_request_is_an_empty_stream() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    assert!(collect(&deck, &[], 1 << 20).await.is_empty());
}

#[tokio::test]
async fn bad_input_gets_a_clear_error() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    put(&deck, "a.srm", Rev::NONE, b"x").await;
    let url = server.api("saves/bulk");
    let send = |body: Vec<u8>, token: Option<String>| {
        let url = url.clone();
        async move {
            let mut request = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(body);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("request sent");
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            let body: ErrorBody = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("status {status}: not an ErrorBody ({e}): {text:?}"));
            (status, body.code)
        }
    };
    let token = Some(deck.token.clone());
    let json = |v: serde_json::Value| serde_json::to_vec(&v).unwrap();
    let too_many: Vec<String> = (0..=MAX_BULK_PATHS).map(|i| format!("s{i}.srm")).collect();
    let long_path = "x/".repeat(2000) + "y";
    let oversized: Vec<String> = (0..MAX_BULK_PATHS).map(|_| long_path.clone()).collect();
    assert!(json(serde_json::json!({ "paths": oversized })).len() > MAX_BULK_BODY_BYTES);
    /// Name, body, token, expected status and error code.
    type Case<'a> = (&'a str, Vec<u8>, Option<String>, u16, ErrorCode);
    let table: Vec<Case> = vec![
        ("not json", b"{paths".to_vec(), token.clone(), 400, ErrorCode::BadJson),
        ("no paths field", json(serde_json::json!({})), token.clone(), 400, ErrorCode::BadJson),
        (
            "traversal",
            json(serde_json::json!({ "paths": ["a.srm", "../../etc/passwd"] })),
            token.clone(),
            400,
            ErrorCode::BadPath,
        ),
        (
            "absolute",
            json(serde_json::json!({ "paths": ["/etc/passwd"] })),
            token.clone(),
            400,
            ErrorCode::BadPath,
        ),
        (
            "too many paths",
            json(serde_json::json!({ "paths": too_many })),
            token.clone(),
            400,
            ErrorCode::BadRequest,
        ),
        (
            "oversized body",
            json(serde_json::json!({ "paths": oversized })),
            token.clone(),
            413,
            ErrorCode::BodyTooLarge,
        ),
        (
            "no token",
            json(serde_json::json!({ "paths": ["a.srm"] })),
            None,
            401,
            ErrorCode::Unauthorized,
        ),
    ];
    for (name, body, token, status, code) in table {
        assert_eq!(send(body, token).await, (status, code), "{name}");
    }
    // The client refuses to ask for more than the server takes.
    let paths: Vec<SavePath> = (0..=MAX_BULK_PATHS).map(|i| sp(&format!("s{i}.srm"))).collect();
    assert!(deck.client.bulk_download(&paths, 1 << 20).await.is_err());
    // The server still serves the device afterwards.
    let items = collect(&deck, &[sp("a.srm")], 1 << 20).await;
    assert_eq!(
        items,
        vec![BulkItem::Save {
            path: sp("a.srm"),
            version: savesync_core::Version { rev: Rev(1), hash: Some(ContentHash::of(b"x")) },
            bytes: Bytes::from_static(b"x"),
        }]
    );
}

}
