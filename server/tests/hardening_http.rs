//! The server survives hostile and absurd input over real HTTP: pairing-code guessing is
//! rate limited, every error (even a wrong method) is a JSON `ErrorBody`, health reflects
//! the database and the blob volume, absurd query values never cause a 5xx, and
//! percent-encoded traversal never escapes the save namespace.

mod common;

use common::{DEADLINE, Device, TestServer, eventually, put, sp};
use reqwest::Method;
use reqwest::header::{ALLOW, RETRY_AFTER};
use savesync_core::wire::{ErrorBody, HASH_HEADER};
use savesync_core::{ContentHash, ErrorCode, Rev};
use std::time::{Duration, Instant};

crate::backend_matrix! {

/// Send a request; returns the status, the headers and the raw body text.
async fn send(
    method: Method,
    url: &str,
    token: Option<&str>,
    json: Option<serde_json::Value>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = reqwest::Client::new().request(method, url).timeout(DEADLINE);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(json) = json {
        request = request.json(&json);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap_or_default())
}

fn error_body(status: u16, text: &str) -> ErrorBody {
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("status {status}: body is not an ErrorBody ({e}): {text:?}"))
}

async fn pair_attempt(
    server: &TestServer,
    code: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let body = serde_json::json!({ "code": code, "device_name": "guesser", "device_kind": "x" });
    send(Method::POST, &server.api("pair"), None, Some(body)).await
}

#[tokio::test]
async fn guessing_pairing_codes_is_cut_off_with_429_and_retry_after() {
    let server = TestServer::start().await;
    let mut refused = 0;
    let mut throttled = None;
    for _ in 0..50 {
        let (status, headers, text) = pair_attempt(&server, "AAAA-AAAA").await;
        let body = error_body(status, &text);
        match status {
            403 => {
                assert_eq!(body.code, ErrorCode::PairingCodeInvalid);
                refused += 1;
            }
            429 => {
                assert_eq!(body.code, ErrorCode::RateLimited);
                throttled = Some(headers);
                break;
            }
            other => panic!("unexpected status {other}: {text}"),
        }
    }
    assert_eq!(refused, 10, "the per-client burst is 10 failed attempts");
    let headers = throttled.expect("guessing was never throttled");
    let retry_after: u64 = headers[RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry_after), "retry-after {retry_after}");

    // While throttled even a valid code is refused unseen, so guessing gains nothing.
    let good = server.app.issue_pairing_code("alice").unwrap();
    let (status, _, text) = pair_attempt(&server, &good.code).await;
    assert_eq!((status, error_body(status, &text).code), (429, ErrorCode::RateLimited));
}

/// A failed pairing attempt claiming to come from `forwarded_for`; returns the status.
async fn pair_attempt_via_proxy(server: &TestServer, forwarded_for: &str) -> u16 {
    let body = serde_json::json!({ "code": "AAAA-AAAA", "device_name": "guesser" });
    let response = reqwest::Client::new()
        .post(server.api("pair"))
        .header("x-forwarded-for", forwarded_for)
        .json(&body)
        .send()
        .await
        .expect("request sent");
    response.status().as_u16()
}

#[tokio::test]
async fn a_forged_x_forwarded_for_does_not_escape_the_limit_unless_a_proxy_is_trusted() {
    let direct = TestServer::start().await;
    let direct = &direct;
    let statuses: Vec<u16> =
        futures::future::join_all((0..11).map(|n| async move {
            pair_attempt_via_proxy(direct, &format!("198.51.100.{n}")).await
        }))
        .await;
    assert_eq!(statuses.iter().filter(|s| **s == 403).count(), 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 1, "{statuses:?}");

    let proxied = TestServer::start_with(|c| c.trust_forwarded_for = true).await;
    for _ in 0..10 {
        assert_eq!(pair_attempt_via_proxy(&proxied, "203.0.113.5").await, 403);
    }
    assert_eq!(pair_attempt_via_proxy(&proxied, "203.0.113.5").await, 429);
    // Another client behind the same proxy is not punished for the first one's guesses.
    assert_eq!(pair_attempt_via_proxy(&proxied, "203.0.113.6").await, 403);
}

#[tokio::test]
async fn successful_pairings_never_count_toward_the_limit() {
    let server = TestServer::start().await;
    for n in 0..15 {
        server.pair("alice", &format!("device-{n}")).await;
    }
    let (status, _, text) = pair_attempt(&server, "AAAA-AAAA").await;
    assert_eq!((status, error_body(status, &text).code), (403, ErrorCode::PairingCodeInvalid));
}

#[tokio::test]
async fn a_wrong_method_on_a_known_route_is_a_json_405_naming_the_allowed_ones() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    for (method, endpoint) in [
        (Method::DELETE, "health"),
        (Method::POST, "saves"),
        (Method::GET, "pair"),
        (Method::PATCH, "saves/content?path=a%2Fb&base_rev=0"),
        (Method::PUT, "negotiate"),
    ] {
        let url = server.api(endpoint);
        let (status, headers, text) = send(method.clone(), &url, Some(&deck.token), None).await;
        assert_eq!(status, 405, "{method} {endpoint}: {text}");
        let body = error_body(status, &text);
        assert_eq!(body.code, ErrorCode::BadRequest, "{method} {endpoint}");
        assert!(body.message.contains(method.as_str()), "{}", body.message);
        assert!(headers.contains_key(ALLOW), "{method} {endpoint} lost its Allow header");
    }
    let metrics = format!("{}/metrics", server.base_url);
    let (status, _, text) = send(Method::POST, &metrics, None, None).await;
    assert_eq!((status, error_body(status, &text).code), (405, ErrorCode::BadRequest));
}

async fn health(server: &TestServer) -> (u16, String) {
    let (status, _, text) = send(Method::GET, &server.api("health"), None, None).await;
    (status, text)
}

#[sqlite_dir_only]
#[tokio::test]
async fn health_is_503_while_the_blob_volume_cannot_take_a_write() {
    let server = TestServer::start().await;
    assert_eq!(health(&server).await.0, 200);
    // Root ignores permission bits, so break the staging directory itself.
    let staging = server.app.config().blob_dir().join("tmp");
    std::fs::remove_dir_all(&staging).unwrap();
    std::fs::write(&staging, b"not a directory").unwrap();
    let (status, text) = health(&server).await;
    let body = error_body(status, &text);
    assert_eq!((status, body.code), (503, ErrorCode::Unavailable), "{text}");
    assert!(body.message.contains("blob store"), "{}", body.message);

    std::fs::remove_file(&staging).unwrap();
    std::fs::create_dir(&staging).unwrap();
    assert_eq!(health(&server).await.0, 200);
    assert!(std::fs::read_dir(&staging).unwrap().next().is_none(), "the probe left a file");
}

#[sqlite_dir_only]
#[tokio::test]
async fn health_is_503_while_the_database_cannot_answer() {
    let server = TestServer::start().await;
    assert_eq!(health(&server).await.0, 200);
    let db = rusqlite::Connection::open(server.app.config().db_path()).unwrap();
    db.execute_batch("PRAGMA foreign_keys = OFF; ALTER TABLE users RENAME TO users_away;").unwrap();
    let (status, text) = health(&server).await;
    let body = error_body(status, &text);
    assert_eq!((status, body.code), (503, ErrorCode::Unavailable), "{text}");
    assert!(body.message.contains("database"), "{}", body.message);

    db.execute_batch("ALTER TABLE users_away RENAME TO users;").unwrap();
    assert_eq!(health(&server).await.0, 200);
}

/// GET `endpoint` with a hand-written query string (sent exactly as written).
async fn get_raw(server: &TestServer, device: &Device, path_and_query: &str) -> (u16, String) {
    let (status, _, text) =
        send(Method::GET, &server.api(path_and_query), Some(&device.token), None).await;
    (status, text)
}

#[tokio::test]
async fn absurd_query_values_are_clamped_or_refused_never_a_server_error() {
    let server = TestServer::start_with(|c| c.long_poll_max = Duration::from_millis(300)).await;
    let deck = server.pair("alice", "deck").await;
    put(&deck, "snes/zelda.srm", Rev::NONE, b"link").await;

    for refused in [
        "changes?since=-1",
        "changes?since=1e3",
        "changes?wait_ms=-5",
        "changes?limit=-1",
        "changes?limit=99999999999999",
        "changes?since=99999999999999999999999",
        "audit?limit=-3",
        "saves/content?path=snes%2Fzelda.srm&rev=-1",
        "saves?include_deleted=maybe",
    ] {
        let (status, text) = get_raw(&server, &deck, refused).await;
        let body = error_body(status, &text);
        assert_eq!((status, body.code), (400, ErrorCode::BadRequest), "{refused}: {text}");
    }

    for clamped in
        ["changes?limit=0", "changes?limit=99999999", "audit?limit=0", "audit?limit=4000000000"]
    {
        let (status, text) = get_raw(&server, &deck, clamped).await;
        assert_eq!(status, 200, "{clamped}: {text}");
    }
    let (status, text) = get_raw(&server, &deck, "changes?limit=99999999").await;
    assert_eq!(status, 200);
    assert!(text.contains("zelda.srm"), "{text}");

    // A cursor far beyond the server's (a device after a restore from an older backup):
    // an empty page that keeps the device's cursor, not an error.
    let (status, text) =
        get_raw(&server, &deck, "changes?since=18446744073709551615&wait_ms=0").await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("18446744073709551615"), "{text}");

    // The longest wait a client can ask for is cut to long_poll_max.
    let started = Instant::now();
    let (status, _) = get_raw(&server, &deck, "changes?since=1&wait_ms=18446744073709551615").await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(5), "wait_ms was not clamped");

    let (status, text) =
        get_raw(&server, &deck, "saves/content?path=snes%2Fzelda.srm&rev=18446744073709551615")
            .await;
    assert_eq!((status, error_body(status, &text).code), (404, ErrorCode::NotFound));

    // A base far beyond any head is a plain conflict, and the head is unchanged.
    let bytes = b"ganon".to_vec();
    let url = server.api("saves/content?path=snes%2Fzelda.srm&base_rev=18446744073709551615");
    let response = reqwest::Client::new()
        .put(url)
        .bearer_auth(&deck.token)
        .header(HASH_HEADER, ContentHash::of(&bytes).to_hex())
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 409);
    let head = deck.client.list(None, false).await.unwrap().saves;
    assert_eq!((head.len(), head[0].rev), (1, Rev(1)));
}

#[tokio::test]
async fn percent_encoded_traversal_is_refused_and_double_encoding_stays_a_literal_name() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    for query in [
        "path=..%2F..%2Fetc%2Fpasswd",
        "path=%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "path=%2E%2E/%2E%2E/etc/passwd",
        "path=snes%2F..%2F..%2F..%2Fsavesync.db",
        "path=%2Fetc%2Fpasswd",
        "path=..%5C..%5Cwindows%5Cwin.ini",
        "path=snes%2F%2E%2Fx.srm",
        "path=snes%00.srm",
    ] {
        let (status, text) = get_raw(&server, &deck, &format!("saves/content?{query}")).await;
        let body = error_body(status, &text);
        assert_eq!((status, body.code), (400, ErrorCode::BadPath), "{query}: {text}");
        let (status, text) = get_raw(&server, &deck, &format!("saves/history?{query}")).await;
        assert_eq!(status, 400, "{query}: {text}");
    }
    // Bytes that are not UTF-8 once decoded are refused, not replaced by U+FFFD.
    let (status, text) = get_raw(&server, &deck, "saves/content?path=%FF%FE").await;
    assert_eq!((status, error_body(status, &text).code), (400, ErrorCode::BadRequest), "{text}");
    // A `%` that escapes nothing is a literal character, as in any form decoding.
    let (status, text) = get_raw(&server, &deck, "saves/content?path=%ZZ").await;
    assert_eq!((status, error_body(status, &text).code), (404, ErrorCode::NotFound), "{text}");

    // Decoded once, `%252e%252e%252f` is the harmless literal name `%2e%2e%2f...`: stored as
    // that name in the database, its bytes under the blob store's hash path only.
    let literal = "%2e%2e%2fetc%2fpasswd";
    let saved = put(&deck, literal, Rev::NONE, b"not a traversal").await;
    assert_eq!(saved.path, sp(literal));
    let listed = deck.client.list(None, false).await.unwrap().saves;
    assert_eq!(listed.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(), [literal]);
    let hex = ContentHash::of(b"not a traversal").to_hex();
    let blob = std::path::PathBuf::from(&hex[..2]).join(&hex[2..4]).join(&hex);
    assert_eq!(server.blob_files().into_iter().collect::<Vec<_>>(), [blob]);
}

/// Write raw bytes to the server and return what it answers before closing (bounded).
async fn raw_exchange(server: &TestServer, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before reading everything; that is fine.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while answer.len() < 64 * 1024 {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&chunk[..n]),
            _ => break,
        }
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn oversized_and_malformed_requests_are_refused_and_the_server_stays_up() {
    let server = TestServer::start().await;
    let huge_header = format!(
        "GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Junk: {}\r\n\r\n",
        "a".repeat(2 * 1024 * 1024)
    );
    // The server closes as soon as its header buffer is full; if it does so while our
    // write is still going, the kernel may reset the connection before its 431 is read.
    let answer = raw_exchange(&server, huge_header.as_bytes()).await;
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "{answer:.200}");

    let many_headers: String = (0..500).map(|i| format!("X-H{i}: v\r\n")).collect();
    let request = format!("GET /api/v1/health HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n");
    let answer = raw_exchange(&server, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.200}");

    let answer = raw_exchange(&server, b"\x16\x03\x01 this is not http\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:.200}");

    // A token header that is not even text is just an unknown token.
    let answer = raw_exchange(
        &server,
        b"GET /api/v1/saves HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer:.200}");

    assert_eq!(health(&server).await.0, 200);
}

#[sqlite_dir_only]
#[tokio::test]
async fn an_upload_cut_off_mid_body_stores_nothing_and_leaves_no_staging_file() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let hash = ContentHash::of(&[7u8; 1000]).to_hex();
    let head = format!(
        "PUT /api/v1/saves/content?path=psx%2Fcard1.mcd&base_rev=0 HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {}\r\n{HASH_HEADER}: {hash}\r\nContent-Length: 1000\r\n\r\n",
        deck.token
    );
    let staging = server.app.config().blob_dir().join("tmp");
    let staged_files = || std::fs::read_dir(&staging).map(Iterator::count).unwrap_or(0);
    {
        use tokio::io::AsyncWriteExt;
        let addr = server.base_url.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&[7u8; 300]).await.unwrap();
        stream.flush().await.unwrap();
        let count = &staged_files;
        eventually("the upload to be staged", move || async move { (count() > 0).then_some(()) })
            .await;
        // Dropped here: the client vanishes 300 bytes into a 1000-byte body.
    }
    let count = &staged_files;
    eventually(
        "the staging file to be removed",
        move || async move { (count() == 0).then_some(()) },
    )
    .await;
    assert!(server.blob_files().is_empty(), "{:?}", server.blob_files());
    assert!(deck.client.list(None, true).await.unwrap().saves.is_empty());
    assert_eq!(health(&server).await.0, 200);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_with(|c| c.request_timeout = Duration::from_secs(1)).await;
    let addr = server.base_url.trim_start_matches("http://");
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    // A slowloris client: a request line and one header, then nothing.
    slow.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        let read = tokio::time::timeout(DEADLINE, slow.read(&mut buf))
            .await
            .expect("the server kept a connection with unfinished headers open");
        match read {
            Ok(0) | Err(_) => break, // closed (or reset) by the server
            Ok(_) => {}              // a 408 answer before the close is fine too
        }
    }
    assert!(started.elapsed() < DEADLINE);
    assert_eq!(health(&server).await.0, 200);
}

#[sqlite_dir_only]
#[tokio::test]
async fn an_upload_that_stalls_mid_body_is_503_unavailable_and_leaves_no_staging_file() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_with(|c| c.request_timeout = Duration::from_millis(300)).await;
    let deck = server.pair("alice", "deck").await;
    let hash = ContentHash::of(&[7u8; 1000]).to_hex();
    let head = format!(
        "PUT /api/v1/saves/content?path=psx%2Fcard1.mcd&base_rev=0 HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {}\r\n{HASH_HEADER}: {hash}\r\nContent-Length: 1000\r\n\r\n",
        deck.token
    );
    let addr = server.base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[7u8; 300]).await.unwrap();
    stream.flush().await.unwrap();
    // The client keeps the connection open and sends nothing more: several idle intervals
    // pass before the deadline, and the server must answer instead of waiting forever.
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("}") {
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut buf))
            .await
            .expect("the server kept waiting for a stalled body")
            .unwrap();
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:.300}");
    assert!(answer.contains("\"unavailable\""), "{answer:.300}");
    let staging = server.app.config().blob_dir().join("tmp");
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
    assert!(server.blob_files().is_empty(), "{:?}", server.blob_files());
    assert!(deck.client.list(None, true).await.unwrap().saves.is_empty());
}
}
