//! Uploads that arrive together (issue 12: on SQLite they share one transaction and one
//! WAL sync, group commit): every one lands with its own answer. New saves commit, a race
//! on one save has exactly one winner and keeps the losers as conflict versions, and
//! uploads refused in the middle of the burst (bad hash, too large, a case-insensitive
//! name collision) store nothing and fail nothing else.

mod common;

use bytes::Bytes;
use common::{Device, TestServer, put, sp};
use savesync_core::wire::{HASH_HEADER, VersionKind};
use savesync_core::{ContentHash, ErrorCode, Rev};
use std::collections::BTreeSet;

/// What one upload of the burst is, and so what it must be answered.
#[derive(Debug, Clone)]
enum Kind {
    /// A save nobody else touches: committed at rev 1.
    Fresh(String),
    /// One of several uploads on base rev 1 of the same save: one wins, the rest conflict.
    Race(usize),
    /// The body does not hash to the declared hash: refused, nothing stored.
    BadHash(usize),
    /// Larger than `max_body_bytes`: refused, nothing stored.
    TooLarge(usize),
    /// The same name as a `Fresh` save in another case: a name collision.
    Collision(String),
}

const FRESH: usize = 24;
const RACERS: usize = 8;
const LIMIT: u64 = 1024;

fn fresh_bytes(name: &str) -> Vec<u8> {
    format!("fresh save {name}").into_bytes()
}

fn racer_bytes(i: usize) -> Vec<u8> {
    format!("racer {i}").into_bytes()
}

async fn send(server: &TestServer, device: &Device, kind: &Kind) -> Result<Rev, ErrorCode> {
    let (path, base, body, declared) = match kind {
        Kind::Fresh(name) => (format!("burst/{name}.srm"), Rev::NONE, fresh_bytes(name), None),
        Kind::Race(i) => ("burst/race.srm".to_owned(), Rev(1), racer_bytes(*i), None),
        Kind::BadHash(i) => (
            format!("burst/bad-{i}.srm"),
            Rev::NONE,
            b"the bytes sent".to_vec(),
            Some(ContentHash::of(b"other bytes")),
        ),
        Kind::TooLarge(i) => (format!("burst/big-{i}.srm"), Rev::NONE, vec![7; 4096], None),
        Kind::Collision(name) => {
            (format!("burst/{}.srm", name.to_uppercase()), Rev::NONE, b"collides".to_vec(), None)
        }
    };
    if let Some(declared) = declared {
        // By hand: the real client always declares the true hash.
        let url = format!("{}?path={path}&base_rev={}", server.api("saves/content"), base.0);
        let response = reqwest::Client::new()
            .put(url)
            .bearer_auth(&device.token)
            .header(HASH_HEADER, declared.to_hex())
            .body(body)
            .send()
            .await
            .expect("send");
        assert!(!response.status().is_success(), "a bad hash was accepted");
        let text = response.text().await.unwrap();
        let code: serde_json::Value = serde_json::from_str(&text).expect("JSON error body");
        return Err(serde_json::from_value(code["code"].clone()).expect("an error code"));
    }
    match device.client.upload(&sp(&path), base, Bytes::from(body)).await {
        Ok(head) => Ok(head.rev),
        Err(e) => Err(e.code().unwrap_or_else(|| panic!("{kind:?}: no error code: {e}"))),
    }
}

crate::backend_matrix! {

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_uploads_lands_each_with_its_own_answer() {
    let server = TestServer::start_with(|c| c.max_body_bytes = LIMIT).await;
    let devices: Vec<Device> = {
        let mut out = Vec::new();
        for i in 0..8 {
            out.push(server.pair("alice", &format!("dev{i}")).await);
        }
        out
    };
    put(&devices[0], "burst/race.srm", Rev::NONE, b"rev 1").await;
    put(&devices[0], "burst/taken.srm", Rev::NONE, b"already here").await;
    let before = devices[0].client.list(None, true).await.unwrap().cursor;

    let mut kinds = Vec::new();
    for i in 0..FRESH {
        kinds.push(Kind::Fresh(format!("f{i:02}")));
        if i < RACERS {
            kinds.push(Kind::Race(i));
        }
        if i % 6 == 0 {
            kinds.push(Kind::BadHash(i));
            kinds.push(Kind::TooLarge(i));
        }
    }
    kinds.push(Kind::Collision("taken".to_owned()));
    let answers = futures::future::join_all(
        kinds.iter().enumerate().map(|(i, kind)| send(&server, &devices[i % 8], kind)),
    )
    .await;

    let mut winners = Vec::new();
    for (kind, answer) in kinds.iter().zip(&answers) {
        match (kind, answer) {
            (Kind::Fresh(_), Ok(rev)) => assert_eq!(*rev, Rev(1), "{kind:?}"),
            (Kind::Race(i), Ok(rev)) => {
                assert_eq!(*rev, Rev(2), "{kind:?}");
                winners.push(*i);
            }
            (Kind::Race(_), Err(code)) => assert_eq!(*code, ErrorCode::Conflict, "{kind:?}"),
            (Kind::BadHash(_), Err(code)) => assert_eq!(*code, ErrorCode::HashMismatch),
            (Kind::TooLarge(_), Err(code)) => assert_eq!(*code, ErrorCode::BodyTooLarge),
            (Kind::Collision(_), Err(code)) => assert_eq!(*code, ErrorCode::NameCollision),
            (kind, answer) => panic!("{kind:?} was answered {answer:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one racer wins: {answers:?}");

    // What the server now holds is exactly what it answered.
    let client = &devices[0].client;
    let listing = client.list(None, true).await.unwrap();
    let paths: BTreeSet<&str> = listing.saves.iter().map(|s| s.path.as_str()).collect();
    let mut expected: BTreeSet<String> =
        (0..FRESH).map(|i| format!("burst/f{i:02}.srm")).collect();
    expected.extend(["burst/race.srm".to_owned(), "burst/taken.srm".to_owned()]);
    assert_eq!(paths, expected.iter().map(String::as_str).collect::<BTreeSet<_>>());
    // One new seq per commit, none shared, none skipped.
    assert_eq!(listing.cursor.0 - before.0, (FRESH + 1) as u64);
    let seqs: BTreeSet<u64> = listing.saves.iter().map(|s| s.seq.0).collect();
    assert_eq!(seqs.len(), listing.saves.len());
    for i in 0..FRESH {
        let name = format!("f{i:02}");
        let got = client.download(&sp(&format!("burst/{name}.srm")), None).await.unwrap();
        assert_eq!((&got.bytes[..], got.rev), (&fresh_bytes(&name)[..], Rev(1)));
    }
    let race = client.download(&sp("burst/race.srm"), None).await.unwrap();
    assert_eq!((&race.bytes[..], race.rev), (&racer_bytes(winners[0])[..], Rev(2)));
    // Every loser is kept as a conflict version of the save it lost on.
    let history = client.history(&sp("burst/race.srm")).await.unwrap();
    let kept: BTreeSet<Option<ContentHash>> = history
        .versions
        .iter()
        .filter(|v| v.kind == VersionKind::Conflict)
        .map(|v| v.hash)
        .collect();
    let losers: BTreeSet<Option<ContentHash>> = (0..RACERS)
        .filter(|i| *i != winners[0])
        .map(|i| Some(ContentHash::of(&racer_bytes(i))))
        .collect();
    assert_eq!(kept, losers);
    let taken = client.download(&sp("burst/taken.srm"), None).await.unwrap();
    assert_eq!(&taken.bytes[..], b"already here");
}

}
