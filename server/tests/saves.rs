//! Save content through the real client: upload, list, download (head and by revision),
//! history, restore, delete tombstones, prefixes, awkward names, streamed files, and the
//! per-user scoping of saves.

mod common;

use bytes::Bytes;
use common::{TestServer, put, sp};
use savesync_core::wire::{RestoreRequest, VersionKind};
use savesync_core::{ContentHash, ErrorCode, Rev};

crate::backend_matrix! {

#[tokio::test]
async fn upload_list_download_history_round_trip() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let head = put(&deck, "snes/Chrono Trigger.srm", Rev::NONE, b"level 1").await;
    assert_eq!(head.rev, Rev(1));
    assert_eq!(head.hash, Some(ContentHash::of(b"level 1")));
    assert_eq!(head.size, 7);
    assert!(!head.deleted);
    assert_eq!(head.device.as_deref(), Some("deck"));
    let head2 = put(&deck, "snes/Chrono Trigger.srm", Rev(1), b"level 2").await;
    assert_eq!(head2.rev, Rev(2));
    assert!(head2.seq > head.seq);

    let list = deck.client.list(None, false).await.unwrap();
    assert_eq!(list.saves, vec![head2.clone()]);
    assert!(list.cursor >= head2.seq);

    let got = deck.client.download(&sp("snes/Chrono Trigger.srm"), None).await.unwrap();
    assert_eq!(&got.bytes[..], b"level 2");
    assert_eq!(got.version(), head2.version());

    let history = deck.client.history(&sp("snes/Chrono Trigger.srm")).await.unwrap();
    let revs: Vec<(VersionKind, Rev)> = history.versions.iter().map(|v| (v.kind, v.rev)).collect();
    assert_eq!(revs, vec![(VersionKind::Commit, Rev(2)), (VersionKind::Commit, Rev(1))]);
    assert_eq!(history.versions[1].hash, Some(ContentHash::of(b"level 1")));
}

#[tokio::test]
async fn download_by_rev_returns_that_revisions_bytes() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    put(&deck, "gba/zelda.sav", Rev::NONE, b"one").await;
    put(&deck, "gba/zelda.sav", Rev(1), b"two").await;
    let old = deck.client.download(&sp("gba/zelda.sav"), Some(Rev(1))).await.unwrap();
    assert_eq!((&old.bytes[..], old.rev), (&b"one"[..], Rev(1)));
    let err = deck.client.download(&sp("gba/zelda.sav"), Some(Rev(9))).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");
}

#[tokio::test]
async fn unknown_save_is_not_found() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let err = deck.client.download(&sp("nes/none.sav"), None).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");
    assert_eq!(err.status(), Some(404));
    let err = deck.client.delete(&sp("nes/none.sav"), Rev::NONE).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");
}

#[tokio::test]
async fn restore_commits_an_old_version_as_the_new_head() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    put(&deck, "psx/card1.mcd", Rev::NONE, b"good").await;
    put(&deck, "psx/card1.mcd", Rev(1), b"corrupted").await;
    let history = deck.client.history(&sp("psx/card1.mcd")).await.unwrap();
    let good = history.versions.iter().find(|v| v.rev == Rev(1)).expect("rev 1 in history");
    let req =
        RestoreRequest { path: sp("psx/card1.mcd"), version_id: good.version_id, base_rev: Rev(2) };
    let head = deck.client.restore(&req).await.unwrap();
    assert_eq!(head.rev, Rev(3));
    assert_eq!(head.hash, Some(ContentHash::of(b"good")));
    let got = deck.client.download(&sp("psx/card1.mcd"), None).await.unwrap();
    assert_eq!(&got.bytes[..], b"good");
    // A restore on a stale base is a conflict, like any write.
    let bad = history.versions.iter().find(|v| v.rev == Rev(2)).expect("rev 2 in history");
    let stale = RestoreRequest { version_id: bad.version_id, ..req };
    let err = deck.client.restore(&stale).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict), "{err}");
    assert_eq!(err.conflict_head().map(|h| h.rev), Some(Rev(3)));
}

#[tokio::test]
async fn delete_leaves_a_tombstone_listed_only_with_include_deleted() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    put(&deck, "snes/a.srm", Rev::NONE, b"a").await;
    put(&deck, "snes/b.srm", Rev::NONE, b"b").await;
    let tomb = deck.client.delete(&sp("snes/a.srm"), Rev(1)).await.unwrap();
    assert!(tomb.deleted);
    assert_eq!((tomb.rev, tomb.hash), (Rev(2), None));

    let live = deck.client.list(None, false).await.unwrap();
    assert_eq!(live.saves.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(), ["snes/b.srm"]);
    let all = deck.client.list(None, true).await.unwrap();
    assert_eq!(
        all.saves.iter().map(|s| (s.path.as_str(), s.deleted)).collect::<Vec<_>>(),
        [("snes/a.srm", true), ("snes/b.srm", false)]
    );
    let err = deck.client.download(&sp("snes/a.srm"), None).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");
    // Deleting again is idempotent; recreating goes on top of the tombstone.
    assert_eq!(deck.client.delete(&sp("snes/a.srm"), Rev(1)).await.unwrap().rev, Rev(2));
    assert_eq!(put(&deck, "snes/a.srm", Rev(2), b"again").await.rev, Rev(3));
}

#[tokio::test]
async fn list_prefix_matches_the_prefix_and_below_only() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    for path in ["snes/a.srm", "snes/sub/b.srm", "snesx/c.srm", "gba/d.sav"] {
        deck.client.upload(&sp(path), Rev::NONE, Bytes::from_static(b"x")).await.unwrap();
    }
    let list = deck.client.list(Some(&sp("snes")), false).await.unwrap();
    let paths: Vec<&str> = list.saves.iter().map(|s| s.path.as_str()).collect();
    assert!(paths.contains(&"snes/a.srm") && paths.contains(&"snes/sub/b.srm"), "{paths:?}");
    assert!(!paths.contains(&"snesx/c.srm") && !paths.contains(&"gba/d.sav"), "{paths:?}");
    let mut sorted = paths.clone();
    sorted.sort_unstable();
    assert_eq!(paths, sorted, "listing is sorted by path");
}

#[tokio::test]
async fn awkward_names_round_trip_through_the_query_string() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    for (i, path) in [
        "snes/Chrono Trigger (USA).srm",
        "gba/Pokémon Émeraude.sav",
        "a/b&c=d#e?f%20.sav",
        "x/+plus+.srm",
    ]
    .into_iter()
    .enumerate()
    {
        let body = format!("content {i}");
        put(&deck, path, Rev::NONE, body.as_bytes()).await;
        let got = deck.client.download(&sp(path), None).await.unwrap();
        assert_eq!(&got.bytes[..], body.as_bytes(), "{path}");
    }
    let names: Vec<String> = deck
        .client
        .list(None, false)
        .await
        .unwrap()
        .saves
        .into_iter()
        .map(|s| s.path.to_string())
        .collect();
    assert!(names.contains(&"a/b&c=d#e?f%20.sav".to_owned()), "{names:?}");
}

#[tokio::test]
async fn streamed_file_upload_and_download_to_file_round_trip() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("memcard.mcd");
    let data: Vec<u8> =
        (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    let head = deck.client.upload_file(&sp("ps2/memcard.mcd"), Rev::NONE, &src).await.unwrap();
    assert_eq!(head.hash, Some(ContentHash::of(&data)));
    assert_eq!(head.size, data.len() as u64);

    let out_dir = tempfile::tempdir().unwrap();
    let dest = out_dir.path().join("memcard.mcd");
    std::fs::write(&dest, b"stale local copy").unwrap();
    let got = deck.client.download_to_file(&sp("ps2/memcard.mcd"), None, &dest).await.unwrap();
    assert_eq!(got.version, head.version());
    assert_eq!(got.size, data.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let leftovers: Vec<_> =
        std::fs::read_dir(out_dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 1, "temp files left behind: {leftovers:?}");
}

#[tokio::test]
async fn failed_download_to_file_leaves_the_destination_untouched() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("zelda.sav");
    std::fs::write(&dest, b"mine").unwrap();
    let err = deck.client.download_to_file(&sp("gba/zelda.sav"), None, &dest).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");
    assert_eq!(std::fs::read(&dest).unwrap(), b"mine");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn empty_save_round_trips() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let head = put(&deck, "n64/empty.eep", Rev::NONE, b"").await;
    assert_eq!((head.hash, head.size), (Some(ContentHash::empty()), 0));
    let got = deck.client.download(&sp("n64/empty.eep"), None).await.unwrap();
    assert!(got.bytes.is_empty());
}

#[tokio::test]
async fn another_users_save_is_not_found_and_untouched() {
    let server = TestServer::start().await;
    let alice = server.pair("alice", "deck").await;
    let bob = server.pair("bob", "pc").await;
    let head = put(&alice, "snes/a.srm", Rev::NONE, b"alice's").await;
    for err in [
        bob.client.download(&sp("snes/a.srm"), None).await.unwrap_err(),
        bob.client.history(&sp("snes/a.srm")).await.unwrap_err(),
        bob.client.delete(&sp("snes/a.srm"), Rev(1)).await.unwrap_err(),
    ] {
        assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");
    }
    assert!(bob.client.list(None, true).await.unwrap().saves.is_empty());
    // Bob's own save at the same path is a different save.
    put(&bob, "snes/a.srm", Rev::NONE, b"bob's").await;
    let list = alice.client.list(None, false).await.unwrap();
    assert_eq!(list.saves, vec![head]);
    assert_eq!(
        &alice.client.download(&sp("snes/a.srm"), None).await.unwrap().bytes[..],
        b"alice's"
    );
}
}
