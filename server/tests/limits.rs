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
