//! Learning about other devices' commits: the changes feed (paged, long-polled) and the
//! server-sent event stream that announces new cursors.

mod common;

use common::{DEADLINE, TestServer, put};
use futures::StreamExt;
use savesync_core::{Rev, Seq};
use std::time::{Duration, Instant};

crate::backend_matrix! {

#[tokio::test]
async fn changes_lists_commits_after_the_cursor_oldest_first() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let a1 = put(&deck, "snes/a.srm", Rev::NONE, b"a1").await;
    let b1 = put(&deck, "snes/b.srm", Rev::NONE, b"b1").await;
    let a2 = put(&deck, "snes/a.srm", Rev(1), b"a2").await;
    let page = deck.client.changes(Seq::START, Duration::ZERO, None).await.unwrap();
    assert_eq!(page.changes, vec![a1.clone(), b1.clone(), a2.clone()]);
    assert_eq!(page.cursor, a2.seq);
    assert!(!page.more);
    let page = deck.client.changes(a1.seq, Duration::ZERO, None).await.unwrap();
    assert_eq!(page.changes, vec![b1, a2]);
}

#[tokio::test]
async fn changes_limit_cuts_the_page_and_sets_more() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    for i in 0..5 {
        put(&deck, &format!("gb/{i}.sav"), Rev::NONE, b"x").await;
    }
    let first = deck.client.changes(Seq::START, Duration::ZERO, Some(2)).await.unwrap();
    assert_eq!(first.changes.len(), 2);
    assert!(first.more);
    let mut cursor = first.cursor;
    let mut seen = 2;
    for _ in 0..5 {
        let page = deck.client.changes(cursor, Duration::ZERO, Some(2)).await.unwrap();
        seen += page.changes.len();
        cursor = page.cursor;
        if !page.more {
            break;
        }
    }
    assert_eq!(seen, 5);
}

#[tokio::test]
async fn changes_are_scoped_to_the_user() {
    let server = TestServer::start().await;
    let alice = server.pair("alice", "deck").await;
    let bob = server.pair("bob", "pc").await;
    put(&alice, "snes/a.srm", Rev::NONE, b"x").await;
    let page = bob.client.changes(Seq::START, Duration::ZERO, None).await.unwrap();
    assert!(page.changes.is_empty(), "{page:?}");
}

#[tokio::test]
async fn long_poll_without_commits_answers_empty_after_the_wait() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let started = Instant::now();
    let page = deck.client.changes(Seq::START, Duration::from_millis(300), None).await.unwrap();
    assert!(page.changes.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "returned after {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < DEADLINE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_wakes_within_a_second_on_a_commit_from_another_device() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let laptop = server.pair("alice", "laptop").await;
    let cursor = deck.client.list(None, false).await.unwrap().cursor;
    let poller = deck.client.clone();
    let poll = tokio::spawn(async move {
        let page = poller.changes(cursor, Duration::from_secs(30), None).await;
        (page, Instant::now())
    });
    // Let the poll reach the server: a round trip on the same server, no sleep.
    deck.client.health().await.unwrap();
    let head = put(&laptop, "snes/a.srm", Rev::NONE, b"from laptop").await;
    let committed = Instant::now();
    let (page, woke) = tokio::time::timeout(DEADLINE, poll).await.expect("long-poll woke").unwrap();
    let page = page.unwrap();
    assert_eq!(page.changes, vec![head]);
    let latency = woke.saturating_duration_since(committed);
    assert!(latency < Duration::from_secs(1), "long-poll woke {latency:?} after the commit");
}

#[tokio::test]
async fn events_announce_the_current_cursor_then_each_new_one() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let laptop = server.pair("alice", "laptop").await;
    let first = put(&laptop, "snes/a.srm", Rev::NONE, b"1").await;
    let mut events = Box::pin(deck.client.events().await.unwrap());
    let current = tokio::time::timeout(DEADLINE, events.next()).await.expect("first event");
    assert_eq!(current.expect("stream open").unwrap().cursor, first.seq);

    let second = put(&laptop, "snes/a.srm", Rev(1), b"2").await;
    let committed = Instant::now();
    let announced = tokio::time::timeout(DEADLINE, events.next()).await.expect("cursor event");
    assert_eq!(announced.expect("stream open").unwrap().cursor, second.seq);
    assert!(
        committed.elapsed() < Duration::from_secs(1),
        "announced after {:?}",
        committed.elapsed()
    );
}

#[tokio::test]
async fn events_of_another_user_are_not_announced() {
    let server = TestServer::start().await;
    let alice = server.pair("alice", "deck").await;
    let bob = server.pair("bob", "pc").await;
    let mut events = Box::pin(alice.client.events().await.unwrap());
    let start = tokio::time::timeout(DEADLINE, events.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(start.cursor, Seq::START);
    put(&bob, "snes/a.srm", Rev::NONE, b"bob").await;
    let mine = put(&alice, "snes/a.srm", Rev::NONE, b"alice").await;
    // The next announcement is Alice's own commit, never a cursor from Bob's feed.
    let next = tokio::time::timeout(DEADLINE, events.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(next.cursor, mine.seq);
    assert_eq!(mine.seq, Seq(1), "per-user cursor");
}

#[tokio::test]
async fn events_need_a_token() {
    let server = TestServer::start().await;
    let err = server.anonymous().events().await.err().expect("refused");
    assert_eq!(err.code(), Some(savesync_core::ErrorCode::Unauthorized), "{err}");
}
}
