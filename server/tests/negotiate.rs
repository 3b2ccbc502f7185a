//! Negotiate: the server applies the decision table (`savesync_core::decide`) to a
//! device's manifest and its own heads, adds downloads for saves the manifest does not
//! name, honours per-device untracked saves, and records a sync session.

mod common;

use common::{TestServer, put, sp};
use savesync_core::wire::{ActionKind, ManifestEntry, PlannedAction, SessionReport};
use savesync_core::{ContentHash, ErrorCode, Rev, Version};
use std::collections::BTreeMap;

crate::backend_matrix! {

fn h(s: &str) -> Option<ContentHash> {
    Some(ContentHash::of(s.as_bytes()))
}

fn entry(path: &str, local: Option<ContentHash>, base: Option<Version>) -> ManifestEntry {
    ManifestEntry { path: sp(path), local, base }
}

fn by_path(actions: &[PlannedAction]) -> BTreeMap<String, &PlannedAction> {
    actions.iter().map(|a| (a.path.to_string(), a)).collect()
}

#[tokio::test]
async fn negotiate_applies_the_decision_table_to_a_crafted_manifest() {
    let server = TestServer::start().await;
    let other = server.pair("alice", "laptop").await;
    let deck = server.pair("alice", "deck").await;
    let v1 = |s: &str| Version { rev: Rev(1), hash: h(s) };

    // Server state, written by the other device.
    put(&other, "t/same", Rev::NONE, b"s").await;
    put(&other, "t/changed-local", Rev::NONE, b"c").await;
    put(&other, "t/remote-newer", Rev::NONE, b"r1").await;
    put(&other, "t/remote-newer", Rev(1), b"r2").await;
    put(&other, "t/both-changed", Rev::NONE, b"b1").await;
    put(&other, "t/both-changed", Rev(1), b"b2").await;
    put(&other, "t/deleted-local", Rev::NONE, b"d").await;
    put(&other, "t/remote-deleted", Rev::NONE, b"x").await;
    other.client.delete(&sp("t/remote-deleted"), Rev(1)).await.unwrap();
    put(&other, "t/converged", Rev::NONE, b"k1").await;
    put(&other, "t/converged", Rev(1), b"k2").await;
    put(&other, "t/unknown-same", Rev::NONE, b"u").await;
    put(&other, "t/unknown-other", Rev::NONE, b"u").await;
    put(&other, "t/server-only", Rev::NONE, b"so").await;
    put(&other, "t/server-only-tombstone", Rev::NONE, b"z").await;
    other.client.delete(&sp("t/server-only-tombstone"), Rev(1)).await.unwrap();
    put(&other, "t/tombstone-vs-change", Rev::NONE, b"q").await;
    other.client.delete(&sp("t/tombstone-vs-change"), Rev(1)).await.unwrap();

    let manifest = vec![
        entry("t/new-local", h("n"), None),
        entry("t/same", h("s"), Some(v1("s"))),
        entry("t/changed-local", h("c2"), Some(v1("c"))),
        entry("t/remote-newer", h("r1"), Some(v1("r1"))),
        entry("t/both-changed", h("b3"), Some(v1("b1"))),
        entry("t/deleted-local", None, Some(v1("d"))),
        entry("t/remote-deleted", h("x"), Some(v1("x"))),
        entry("t/converged", h("k2"), Some(v1("k1"))),
        entry("t/unknown-same", h("u"), None),
        entry("t/unknown-other", h("mine"), None),
        entry("t/tombstone-vs-change", h("q2"), Some(v1("q"))),
    ];
    let plan = deck.client.negotiate(manifest).await.unwrap();
    let actions = by_path(&plan.actions);
    let expect = [
        ("t/new-local", ActionKind::Upload, Some(Rev(0))),
        ("t/changed-local", ActionKind::Upload, Some(Rev(1))),
        ("t/remote-newer", ActionKind::Download, None),
        ("t/both-changed", ActionKind::Conflict, None),
        ("t/deleted-local", ActionKind::DeleteRemote, Some(Rev(1))),
        ("t/remote-deleted", ActionKind::DeleteLocal, None),
        ("t/converged", ActionKind::RecordBase, None),
        ("t/unknown-same", ActionKind::RecordBase, None),
        ("t/unknown-other", ActionKind::Conflict, None),
        ("t/server-only", ActionKind::Download, None),
        ("t/tombstone-vs-change", ActionKind::Upload, Some(Rev(2))),
    ];
    for (path, kind, expected_rev) in expect {
        let action = actions.get(path).unwrap_or_else(|| panic!("no action for {path}: {plan:?}"));
        assert_eq!(action.action, kind, "{path}");
        if expected_rev.is_some() {
            assert_eq!(action.expected_rev, expected_rev, "{path}");
        }
    }
    assert!(!actions.contains_key("t/same"), "no-op entries are omitted");
    assert!(
        !actions.contains_key("t/server-only-tombstone"),
        "server-only tombstones need nothing"
    );
    assert_eq!(plan.actions.len(), expect.len(), "{:#?}", plan.actions);
    // The plan carries the heads it was decided against.
    let download = actions["t/remote-newer"];
    assert_eq!(download.head.as_ref().map(|h| (h.rev, h.hash)), Some((Rev(2), h("r2"))));
    assert!(plan.cursor >= download.head.as_ref().unwrap().seq);
}

#[tokio::test]
async fn a_base_newer_than_the_server_is_distrusted() {
    // Server restored from an older backup: the device's base rev 5 is above the head rev 1.
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    put(&deck, "snes/a.srm", Rev::NONE, b"old").await;
    let plan = deck
        .client
        .negotiate(vec![entry(
            "snes/a.srm",
            h("newer"),
            Some(Version { rev: Rev(5), hash: h("newer") }),
        )])
        .await
        .unwrap();
    assert_eq!(plan.actions.len(), 1);
    assert_eq!(plan.actions[0].action, ActionKind::Conflict, "{plan:?}");
}

#[tokio::test]
async fn negotiate_session_can_be_completed_only_by_its_user() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let bob = server.pair("bob", "pc").await;
    let plan = deck.client.negotiate(vec![entry("snes/a.srm", h("a"), None)]).await.unwrap();
    let report = SessionReport { uploaded: 1, ..SessionReport::default() };
    let err = bob.client.complete_session(plan.session_id, report).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");
    deck.client.complete_session(plan.session_id, report).await.unwrap();
    let err = deck.client.complete_session(plan.session_id + 1000, report).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");
}

#[tokio::test]
async fn negotiate_is_recorded_in_the_audit_log() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    deck.client.negotiate(Vec::new()).await.unwrap();
    let audit = deck.client.audit(50).await.unwrap();
    assert!(!audit.entries.is_empty());
    assert!(
        audit.entries.iter().any(|e| e.operation.contains("negotiate")),
        "{:#?}",
        audit.entries
    );
}

#[tokio::test]
async fn untracked_saves_come_back_as_untracked_for_that_device_only() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let laptop = server.pair("alice", "laptop").await;
    put(&laptop, "psx/huge.mcd", Rev::NONE, b"big").await;
    deck.client.set_untracked(&sp("psx/huge.mcd"), true).await.unwrap();
    assert_eq!(deck.client.untracked().await.unwrap().paths, vec![sp("psx/huge.mcd")]);
    assert!(laptop.client.untracked().await.unwrap().paths.is_empty());

    let plan = deck.client.negotiate(Vec::new()).await.unwrap();
    assert_eq!(plan.actions.len(), 1);
    assert_eq!(plan.actions[0].action, ActionKind::Untracked);
    let plan = deck.client.negotiate(vec![entry("psx/huge.mcd", h("mine"), None)]).await.unwrap();
    assert_eq!(plan.actions[0].action, ActionKind::Untracked, "{plan:?}");

    let other = laptop.client.negotiate(Vec::new()).await.unwrap();
    assert_eq!(other.actions[0].action, ActionKind::Download);

    deck.client.set_untracked(&sp("psx/huge.mcd"), false).await.unwrap();
    assert!(deck.client.untracked().await.unwrap().paths.is_empty());
    let plan = deck.client.negotiate(Vec::new()).await.unwrap();
    assert_eq!(plan.actions[0].action, ActionKind::Download);
}

#[tokio::test]
async fn negotiate_with_many_entries_answers_for_each() {
    let server = TestServer::start().await;
    let deck = server.pair("alice", "deck").await;
    let manifest: Vec<ManifestEntry> =
        (0..2_000).map(|i| entry(&format!("bulk/{i:05}.sav"), h(&i.to_string()), None)).collect();
    let plan = deck.client.negotiate(manifest).await.unwrap();
    assert_eq!(plan.actions.len(), 2_000);
    assert!(
        plan.actions
            .iter()
            .all(|a| a.action == ActionKind::Upload && a.expected_rev == Some(Rev::NONE))
    );
}
}
