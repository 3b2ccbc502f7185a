//! Graceful shutdown: `launch` returns promptly once its shutdown future resolves, even
//! with an event stream or a long-poll open, and those clients see their request end.

mod common;

use common::{DEADLINE, TestServer};
use futures::StreamExt;
use savesync_core::Seq;
use std::time::Duration;

crate::backend_matrix! {

/// "Promptly": well under the 15 s SSE keep-alive and the 60 s long-poll maximum.
const PROMPT: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_promptly_with_an_event_stream_open() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let mut events = Box::pin(deck.client.events().await.unwrap());
    tokio::time::timeout(DEADLINE, events.next()).await.expect("first event").unwrap().unwrap();
    let took = server.shutdown().await;
    assert!(took < PROMPT, "shutdown took {took:?}");
    // The stream ends (possibly after one error) instead of hanging.
    let ended = tokio::time::timeout(DEADLINE, async {
        for _ in 0..3 {
            match events.next().await {
                None => return true,
                Some(Err(_)) => {}
                Some(Ok(_)) => {}
            }
        }
        false
    })
    .await
    .expect("event stream ended after shutdown");
    assert!(ended);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_promptly_with_a_long_poll_waiting() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let poller = deck.client.clone();
    let poll =
        tokio::spawn(
            async move { poller.changes(Seq::START, Duration::from_secs(60), None).await },
        );
    deck.client.health().await.unwrap();
    let took = server.shutdown().await;
    assert!(took < PROMPT, "shutdown took {took:?}");
    // The poll gets an answer (possibly empty) or an error, but does not hang for 60 s.
    tokio::time::timeout(DEADLINE, poll)
        .await
        .expect("long-poll ended after shutdown")
        .unwrap()
        .ok();
}

#[tokio::test]
async fn a_stopped_server_reads_as_offline() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    server.shutdown().await;
    let err = deck.client.list(None, false).await.unwrap_err();
    assert!(err.is_offline() && err.is_transient(), "{err:?}");
}
}
