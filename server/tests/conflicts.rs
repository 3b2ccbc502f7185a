//! Compare-and-swap on the save revision: concurrent writers on the same base, the loser's
//! bytes kept as a `conflict` version, idempotent retries, stale bases for delete.

mod common;

use bytes::Bytes;
use common::{TestServer, put, sp};
use savesync_core::wire::VersionKind;
use savesync_core::{ContentHash, ErrorCode, Rev};

crate::backend_matrix! {

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_devices_on_the_same_base_one_wins_and_one_gets_409_with_the_head() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let laptop = server.pair("alice", "laptop").await;
    put(&deck, "snes/a.srm", Rev::NONE, b"common").await;
    let path = sp("snes/a.srm");
    let (a, b) = tokio::join!(
        deck.client.upload(&path, Rev(1), Bytes::from_static(b"deck progress")),
        laptop.client.upload(&path, Rev(1), Bytes::from_static(b"laptop progress")),
    );
    let (winner, loser) = match (a, b) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        (a, b) => panic!("expected exactly one success and one conflict, got {a:?} and {b:?}"),
    };
    assert_eq!(winner.rev, Rev(2));
    assert_eq!(loser.code(), Some(ErrorCode::Conflict), "{loser}");
    assert_eq!(loser.status(), Some(409));
    assert_eq!(loser.conflict_head(), Some(&winner), "409 carries the head");
}

#[tokio::test]
async fn the_losers_bytes_are_kept_in_history_as_a_conflict_version() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let laptop = server.pair("alice", "laptop").await;
    put(&deck, "snes/a.srm", Rev::NONE, b"common").await;
    let winner = put(&deck, "snes/a.srm", Rev(1), b"deck progress").await;
    let err = laptop
        .client
        .upload(&sp("snes/a.srm"), Rev(1), Bytes::from_static(b"laptop progress"))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");

    let history = deck.client.history(&sp("snes/a.srm")).await.unwrap();
    let conflict = history
        .versions
        .iter()
        .find(|v| v.kind == VersionKind::Conflict)
        .expect("a conflict version in history");
    assert_eq!(conflict.hash, Some(ContentHash::of(b"laptop progress")));
    assert_eq!(conflict.rev, Rev(1), "a conflict version records the base it was made on");
    // Not the head, and it did not advance the feed.
    let list = deck.client.list(None, false).await.unwrap();
    assert_eq!(list.saves, vec![winner.clone()]);
    assert_eq!(list.cursor, winner.seq);
    // Its bytes can be restored, so nothing closed is lost.
    let restored = deck
        .client
        .restore(&savesync_core::wire::RestoreRequest {
            path: sp("snes/a.srm"),
            version_id: conflict.version_id,
            base_rev: Rev(2),
        })
        .await
        .unwrap();
    assert_eq!(restored.hash, Some(ContentHash::of(b"laptop progress")));
}

#[tokio::test]
async fn retrying_the_same_upload_is_idempotent() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let first = put(&deck, "gba/zelda.sav", Rev::NONE, b"v1").await;
    // A retry after a lost answer sends the same bytes on the same (now stale) base.
    let again = put(&deck, "gba/zelda.sav", Rev::NONE, b"v1").await;
    assert_eq!(again, first);
    let history = deck.client.history(&sp("gba/zelda.sav")).await.unwrap();
    assert_eq!(history.versions.len(), 1, "no second commit: {history:?}");
    assert_eq!(deck.client.list(None, false).await.unwrap().cursor, first.seq);
}

#[tokio::test]
async fn creating_a_save_that_exists_is_a_conflict_with_the_head() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let laptop = server.pair("alice", "laptop").await;
    let head = put(&deck, "snes/a.srm", Rev::NONE, b"deck").await;
    let err = laptop
        .client
        .upload(&sp("snes/a.srm"), Rev::NONE, Bytes::from_static(b"laptop"))
        .await
        .unwrap_err();
    assert_eq!(err.conflict_head(), Some(&head));
}

#[tokio::test]
async fn a_base_for_a_save_that_does_not_exist_is_a_conflict_without_head() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let err = deck
        .client
        .upload(&sp("snes/new.srm"), Rev(3), Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict), "{err}");
    assert!(err.conflict_head().is_none());
    assert!(deck.client.list(None, true).await.unwrap().saves.is_empty());
}

#[tokio::test]
async fn delete_on_a_stale_base_is_a_conflict_and_keeps_the_head() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    put(&deck, "snes/a.srm", Rev::NONE, b"one").await;
    let head = put(&deck, "snes/a.srm", Rev(1), b"two").await;
    let err = deck.client.delete(&sp("snes/a.srm"), Rev(1)).await.unwrap_err();
    assert_eq!(err.conflict_head(), Some(&head));
    assert_eq!(&deck.client.download(&sp("snes/a.srm"), None).await.unwrap().bytes[..], b"two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_writers_on_one_base_produce_exactly_one_commit() {
    let server = TestServer::start().await;
    let mut devices = Vec::new();
    for i in 0..6 {
        devices.push(server.pair("alice", &format!("dev{i}")).await);
    }
    put(&devices[0], "snes/a.srm", Rev::NONE, b"base").await;
    let path = sp("snes/a.srm");
    let results = futures::future::join_all(
        devices
            .iter()
            .enumerate()
            .map(|(i, d)| d.client.upload(&path, Rev(1), Bytes::from(format!("device {i}")))),
    )
    .await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    let conflicts = results.iter().filter(|r| r.as_ref().is_err_and(|e| e.is_conflict())).count();
    assert_eq!((wins, conflicts), (1, 5), "{results:?}");
    let history = devices[0].client.history(&path).await.unwrap();
    let kept = history.versions.iter().filter(|v| v.kind == VersionKind::Conflict).count();
    assert_eq!(kept, 5, "every losing upload is kept");
}
}
