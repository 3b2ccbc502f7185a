//! Configurable limits over real HTTP: the event stream's keep-alive interval, bounded
//! `/metrics` labels, an immediate 413 for an oversized Content-Length, the per-user byte
//! quota, the negotiate manifest cap, the per-device stream cap, the connection cap, and
//! pruning of sync sessions.

mod common;

use common::{DEADLINE, TestServer};
use futures::StreamExt;
use std::time::Duration;

/// Keep-alive comments on an idle stream (`:` lines), counted from the raw SSE bytes.
fn keep_alive_comments(raw: &str) -> usize {
    raw.split("\n\n").filter(|block| block.lines().any(|l| l.starts_with(':'))).count()
}

#[tokio::test]
async fn an_idle_event_stream_sends_keep_alives_at_the_configured_interval() {
    let server = TestServer::start_with(|c| c.sse_keep_alive = Duration::from_millis(100)).await;
    let deck = server.pair("alice", "deck").await;
    let response = reqwest::Client::new()
        .get(server.api("events"))
        .bearer_auth(&deck.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut body = response.bytes_stream();
    let mut raw = String::new();
    // Nothing is committed, so everything after the first cursor event is keep-alive. With
    // the 15 s default this would take over a minute; at 100 ms it takes about half a second.
    let waited = tokio::time::timeout(DEADLINE, async {
        while keep_alive_comments(&raw) < 5 {
            let chunk = body.next().await.expect("stream open").expect("chunk");
            raw.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(waited.is_ok(), "fewer than 5 keep-alives within {DEADLINE:?}: {raw:?}");
    assert!(raw.starts_with("event: cursor\n"), "{raw:?}");
}

/// A random upper-case token of 3 to 10 letters and digits: a made-up HTTP method.
fn random_method(rng: &mut impl rand::Rng) -> reqwest::Method {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let len = rng.random_range(3..=10);
    let token: Vec<u8> = (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())]).collect();
    reqwest::Method::from_bytes(&token).unwrap()
}

#[tokio::test]
async fn made_up_methods_and_paths_do_not_grow_metrics() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let metrics = || async { server.anonymous().metrics().await.unwrap() };
    let before = metrics().await;
    let mut rng = rand::rng();
    for i in 0..200 {
        let method = random_method(&mut rng);
        let suffix: u64 = rand::Rng::random(&mut rng);
        let url = match i % 3 {
            0 => server.api("health"),
            1 => server.api(&format!("no-such-route-{suffix:x}")),
            _ => format!("{}/{suffix:x}/{i}", server.base_url),
        };
        let status = http.request(method, url).timeout(DEADLINE).send().await.unwrap().status();
        assert!(status.is_client_error(), "{status}");
    }
    let after = metrics().await;
    let series =
        |text: &str| text.lines().filter(|l| l.starts_with("savesync_http_requests_total")).count();
    // Made-up methods all count as `other`, unknown paths as `unmatched`: 200 requests add
    // at most a handful of series (they added 200, about 29 KiB, before).
    assert!(series(&after) <= series(&before) + 4, "{after}");
    assert!(
        after.len() < before.len() + 1024,
        "{} -> {} bytes:\n{after}",
        before.len(),
        after.len()
    );
    assert!(after.contains("route=\"unmatched\",method=\"other\",status=\"404\"} "), "{after}");
}

/// Send `head` (request line and headers, no body) on a fresh connection; return what the
/// server answers within `within`, and whether it then closed the connection.
async fn answer_to_head(server: &TestServer, head: &str, within: Duration) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let deadline = tokio::time::Instant::now() + within;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    let closed = loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&answer).into_owned(), closed)
}

#[tokio::test]
async fn a_json_request_announcing_a_huge_body_gets_413_at_once() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let heads = [
        format!(
            "POST /api/v1/negotiate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n",
            deck.token
        ),
        // No token needed to be refused: the length alone decides.
        "POST /api/v1/pair HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 68719476736\r\n\r\n"
            .to_owned(),
    ];
    for head in heads {
        let (answer, closed) = answer_to_head(&server, &head, Duration::from_secs(1)).await;
        assert!(answer.starts_with("HTTP/1.1 413 "), "no 413 within 1 s: {answer:?}");
        assert!(answer.contains("\"code\":\"body_too_large\""), "{answer}");
        assert!(closed, "the connection stayed open after the 413: {answer}");
    }
    // The server is fine afterwards.
    assert_eq!(server.anonymous().health().await.unwrap().status, "ok");
}
