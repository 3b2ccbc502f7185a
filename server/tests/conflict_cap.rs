//! The per-save cap on `conflict` versions: a device that keeps uploading on a stale base
//! cannot fill the disk. Beyond the cap the oldest conflict versions are thinned out, but
//! the first (the bytes when the devices diverged) and the newest always stay; the head is
//! never touched, and garbage collection then frees the thinned-out blobs.

mod common;

use bytes::Bytes;
use common::{TestServer, put, sp};
use savesync_core::wire::VersionKind;
use savesync_core::{ContentHash, Rev};

crate::backend_matrix! {

const CAP: u32 = 5;
const SAVE: &str = "snes/a.srm";

fn stale(i: usize) -> Vec<u8> {
    format!("laptop progress {i}").into_bytes()
}

#[tokio::test]
async fn stale_uploads_beyond_the_cap_thin_the_oldest_but_keep_the_first_and_the_newest() {
    let server = TestServer::start_with(|c| {
        c.max_conflict_versions_per_save = CAP;
        c.gc_grace = std::time::Duration::ZERO; // collect at once, not after the grace
    })
    .await;
    let deck = server.pair("alice", "deck").await;
    let laptop = server.pair("alice", "laptop").await;
    put(&deck, SAVE, Rev::NONE, b"common").await;
    let head = put(&deck, SAVE, Rev(1), b"deck progress").await;

    let uploads = 3 * CAP as usize;
    for i in 0..uploads {
        let err = laptop.client.upload(&sp(SAVE), Rev(1), Bytes::from(stale(i))).await.unwrap_err();
        assert!(err.is_conflict(), "upload {i}: {err}");
        // A retry of the same bytes (a lost answer) stores nothing more.
        let again = laptop.client.upload(&sp(SAVE), Rev(1), Bytes::from(stale(i))).await;
        assert!(again.unwrap_err().is_conflict());
    }

    let history = deck.client.history(&sp(SAVE)).await.unwrap();
    let mut kept: Vec<ContentHash> = history
        .versions
        .iter()
        .filter(|v| v.kind == VersionKind::Conflict)
        .filter_map(|v| v.hash)
        .collect();
    kept.reverse(); // oldest first
    let mut expected = vec![ContentHash::of(&stale(0))];
    expected.extend((uploads - (CAP as usize - 1)..uploads).map(|i| ContentHash::of(&stale(i))));
    assert_eq!(kept, expected, "the first and the newest {} stay", CAP - 1);
    assert!(
        history
            .versions
            .iter()
            .all(|v| v.kind != VersionKind::Conflict || v.device.as_deref() == Some("laptop"))
    );

    // The head is untouched.
    let list = deck.client.list(None, false).await.unwrap();
    assert_eq!(list.saves, vec![head]);

    // Garbage collection frees the thinned blobs: two commits plus CAP conflict versions.
    savesync_server::collect_garbage(&server.app).await.unwrap();
    let blobs = server.blob_files().into_iter().filter(|p| !p.starts_with("tmp")).count();
    assert_eq!(blobs, 2 + CAP as usize, "{:?}", server.blob_files());
}

#[tokio::test]
async fn the_cap_counts_every_devices_conflict_versions_of_one_save_and_no_other_save() {
    let server = TestServer::start_with(|c| c.max_conflict_versions_per_save = CAP).await;
    let deck = server.pair("alice", "deck").await;
    let laptop = server.pair("alice", "laptop").await;
    let phone = server.pair("alice", "phone").await;
    put(&deck, SAVE, Rev::NONE, b"common").await;
    put(&deck, SAVE, Rev(1), b"deck progress").await;
    put(&deck, "gba/other.sav", Rev::NONE, b"other").await;
    put(&deck, "gba/other.sav", Rev(1), b"other 2").await;
    laptop
        .client
        .upload(&sp("gba/other.sav"), Rev(1), Bytes::from_static(b"laptop other"))
        .await
        .unwrap_err();
    for i in 0..CAP as usize {
        for device in [&laptop, &phone] {
            let bytes = format!("{} {i}", device.name);
            let err =
                device.client.upload(&sp(SAVE), Rev(1), Bytes::from(bytes)).await.unwrap_err();
            assert!(err.is_conflict(), "{err}");
        }
    }
    let count = |history: savesync_core::wire::History| {
        history.versions.iter().filter(|v| v.kind == VersionKind::Conflict).count()
    };
    assert_eq!(count(deck.client.history(&sp(SAVE)).await.unwrap()), CAP as usize);
    assert_eq!(count(deck.client.history(&sp("gba/other.sav")).await.unwrap()), 1);
}

#[tokio::test]
async fn an_upload_based_on_a_save_the_server_never_had_keeps_no_history() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    // A hostile client inventing bases under fresh paths: each is refused, and none leaves
    // a history row behind (there is no save whose loser it could be).
    for i in 0..20 {
        let path = format!("junk/{i}.srm");
        let err =
            deck.client.upload(&sp(&path), Rev(7), Bytes::from_static(b"")).await.unwrap_err();
        assert!(err.is_conflict(), "{path}: {err}");
        let history = deck.client.history(&sp(&path)).await;
        assert!(
            history.as_ref().map_or(true, |h| h.versions.is_empty()),
            "{path} has history: {history:?}"
        );
    }
}
}
