//! The Postgres metadata store against a real throwaway cluster (`savesync_testenv::postgres`):
//! the contract points that differ most from SQLite (concurrency across separate pools and
//! processes' worth of connections, byte-order listings, triggers, conditional updates),
//! then `App::connect` + the real HTTP API, and the `migrate` command.
//!
//! Without Postgres installed these print `SKIPPED:` (and fail under `CI=true`).

use futures::future::join_all;
use savesync_core::wire::VersionKind;
use savesync_core::{ContentHash, Rev, SavePath, Seq};
use savesync_server::meta::postgres::{PgMetaStore, PgSettings, latest_migration};
use savesync_server::meta::remotes::{NewRemote, RemoteFile, RemoteMap, RunRecord};
use savesync_server::meta::{
    Actor, CommitOutcome, CommitRequest, MetaError, MetaStore, NewContent, NewDavDevice,
    NewDeviceInfo, Retention,
};
use std::sync::Arc;

const KEEP_ALL: Retention =
    Retention { keep_versions: 1000, keep_seconds: i64::MAX, max_conflict_versions: 1000 };

/// A fresh database, or `None` after printing why the test is skipped.
fn database(test: &str) -> Option<String> {
    let url = savesync_testenv::postgres::fresh_database();
    if url.is_none() {
        println!("SKIPPED: {test}: {}", savesync_testenv::postgres::MISSING);
    }
    url
}

async fn store(url: &str) -> PgMetaStore {
    PgMetaStore::open(url, PgSettings { max_connections: 8 }).await.expect("open Postgres store")
}

fn sp(s: &str) -> SavePath {
    SavePath::parse(s).unwrap()
}

fn bytes(b: &[u8]) -> NewContent {
    NewContent::Bytes { hash: ContentHash::of(b), size: b.len() as u64 }
}

fn upload(user: i64, device: Option<i64>, path: &str, base: u64, b: &[u8]) -> CommitRequest {
    CommitRequest {
        actor: Actor { user_id: user, device_id: device },
        path: sp(path),
        base_rev: Rev(base),
        content: bytes(b),
        operation: "upload",
        now: 1,
    }
}

fn outcome_kind(o: &CommitOutcome) -> &'static str {
    match o {
        CommitOutcome::Committed(_) => "committed",
        CommitOutcome::Unchanged(_) => "unchanged",
        CommitOutcome::Conflict(_) => "conflict",
        CommitOutcome::NotFound => "not found",
        CommitOutcome::NameCollision(_) => "collision",
    }
}

/// Two stores (two pools, two driver runtimes: what two server processes have) race
/// uploads on one base: exactly one commits, the rest conflict and are kept as conflict
/// versions. Also for the first upload of a save, where no head row exists to lock.
#[tokio::test]
async fn concurrent_commits_through_two_stores_have_exactly_one_winner() {
    let Some(url) = database("concurrent_commits_through_two_stores") else { return };
    let (a, b) = (Arc::new(store(&url).await), Arc::new(store(&url).await));
    let user = a.ensure_user("alice", 0).await.unwrap();

    for round in 0..5u64 {
        let path = format!("race/{round}.srm");
        // Round 0..: first a create race (base 0, no row yet), then an update race.
        for base in [0u64, 1] {
            let attempts = (0..16).map(|i| {
                let s = if i % 2 == 0 { Arc::clone(&a) } else { Arc::clone(&b) };
                let req = upload(user, None, &path, base, format!("{round}-{base}-{i}").as_bytes());
                async move { s.commit(&req, KEEP_ALL).await.unwrap() }
            });
            let outcomes = join_all(attempts).await;
            let kinds: Vec<&str> = outcomes.iter().map(outcome_kind).collect();
            let wins = kinds.iter().filter(|k| **k == "committed").count();
            assert_eq!(wins, 1, "round {round} base {base}: {kinds:?}");
            assert_eq!(kinds.iter().filter(|k| **k == "conflict").count(), 15);
        }
        let head = b.head(user, &sp(&path)).await.unwrap().unwrap();
        assert_eq!(head.rev, Rev(2));
        let history = a.history(user, &sp(&path)).await.unwrap().unwrap();
        let conflicts = history.versions.iter().filter(|v| v.kind == VersionKind::Conflict);
        // The create race's losers had a save to lose to only once it existed; they are
        // conflicts either way, and kept when a head existed (the update race: 15).
        assert!(conflicts.count() >= 15, "{history:?}");
    }
    // Every commit got its own seq, in commit order, with no gaps: 2 per round.
    assert_eq!(a.current_seq(user).await.unwrap(), Seq(10));
    let (feed, more) = b.changes(user, Seq(0), 100).await.unwrap();
    assert!(!more);
    let seqs: Vec<u64> = feed.iter().map(|m| m.seq.0).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_pairing_code_redeems_once_across_stores_and_wrong_guesses_count() {
    let Some(url) = database("pairing_code_redeems_once") else { return };
    let (a, b) = (Arc::new(store(&url).await), Arc::new(store(&url).await));
    let user = a.ensure_user("alice", 1).await.unwrap();
    a.add_pairing_code(user, "code", 1000, None, 1).await.unwrap();
    let attempts = (0..10).map(|i| {
        let s = if i % 2 == 0 { Arc::clone(&a) } else { Arc::clone(&b) };
        async move {
            let device = NewDeviceInfo { name: "deck", kind: "handheld" };
            s.redeem_pairing_code("code", &device, &format!("token-{i}"), 100, 2).await
        }
    });
    let results = join_all(attempts).await;
    let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(ok.len(), 1, "{results:?}");
    assert!(
        results.iter().filter(|r| matches!(r, Err(MetaError::PairingCodeInvalid))).count() == 9
    );
    assert_eq!(ok[0].user_name, "alice");
    assert_eq!(a.list_devices(user).await.unwrap().len(), 1);

    // The wrong-guess budget: three wrong codes kill a live code (the count is committed
    // although each attempt fails).
    a.add_pairing_code(user, "old", 1000, None, 3).await.unwrap();
    for n in 0..3 {
        let wrong = b
            .redeem_pairing_code(
                &format!("guess-{n}"),
                &NewDeviceInfo { name: "x", kind: "k" },
                "t",
                3,
                4,
            )
            .await;
        assert!(matches!(wrong, Err(MetaError::PairingCodeInvalid)));
    }
    let old =
        a.redeem_pairing_code("old", &NewDeviceInfo { name: "y", kind: "k" }, "t9", 3, 5).await;
    assert!(matches!(old, Err(MetaError::PairingCodeInvalid)), "{old:?}");
}

#[tokio::test]
async fn a_revoked_device_cannot_commit_mint_or_let_its_codes_in() {
    let Some(url) = database("revoked_device") else { return };
    let s = store(&url).await;
    let alice = s.ensure_user("alice", 1).await.unwrap();
    let bob = s.ensure_user("bob", 1).await.unwrap();
    s.add_pairing_code(alice, "admin", 100, None, 1).await.unwrap();
    let info = NewDeviceInfo { name: "deck", kind: "handheld" };
    let deck = s.redeem_pairing_code("admin", &info, "tok", 10, 2).await.unwrap();
    s.add_pairing_code(alice, "minted", 100, Some(deck.device_id), 3).await.unwrap();
    let ok = s.commit(&upload(alice, Some(deck.device_id), "a.srm", 0, b"1"), KEEP_ALL).await;
    assert_eq!(outcome_kind(&ok.unwrap()), "committed");

    assert!(!s.revoke_device(Some(bob), deck.device_id, 4).await.unwrap(), "not bob's");
    assert!(s.revoke_device(Some(alice), deck.device_id, 4).await.unwrap());
    assert!(s.device_revoked(deck.device_id).await.unwrap());
    assert!(s.device_revoked(9999).await.unwrap(), "an unknown device counts as revoked");
    assert!(s.device_by_token_hash("tok").await.unwrap().unwrap().revoked);
    let late = s.commit(&upload(alice, Some(deck.device_id), "a.srm", 1, b"2"), KEEP_ALL).await;
    assert!(matches!(late, Err(MetaError::DeviceRevoked)), "{late:?}");
    let used = s.redeem_pairing_code("minted", &info, "tok2", 10, 5).await;
    assert!(matches!(used, Err(MetaError::PairingCodeInvalid)), "{used:?}");
    let mint = s.add_pairing_code(alice, "late", 100, Some(deck.device_id), 6).await;
    assert!(matches!(mint, Err(MetaError::DeviceRevoked)), "{mint:?}");
    let audit = s.audit(alice, 100).await.unwrap();
    assert!(audit.iter().any(|e| e.operation == "revoke"), "{audit:?}");
}

#[tokio::test]
async fn history_retention_tombstones_and_byte_order_listings_match_sqlite() {
    let Some(url) = database("history_retention_listings") else { return };
    let s = store(&url).await;
    let user = s.ensure_user("alice", 0).await.unwrap();
    let day = 86_400;
    let retention = Retention { keep_versions: 3, keep_seconds: 30 * day, ..KEEP_ALL };
    for i in 0..10u64 {
        let req = CommitRequest {
            now: i as i64 * day,
            ..upload(user, None, "snes/zelda.srm", i, format!("v{i}").as_bytes())
        };
        assert_eq!(outcome_kind(&s.commit(&req, retention).await.unwrap()), "committed");
    }
    let req = CommitRequest { now: 100 * day, ..upload(user, None, "snes/zelda.srm", 10, b"new") };
    s.commit(&req, retention).await.unwrap();
    let history = s.history(user, &sp("snes/zelda.srm")).await.unwrap().unwrap();
    let revs: Vec<u64> = history.versions.iter().map(|v| v.rev.0).collect();
    assert_eq!(revs, vec![11, 10, 9]);
    assert!(
        s.committed_version(user, &sp("snes/zelda.srm"), Some(Rev(2))).await.unwrap().is_none()
    );
    let v10 = s.committed_version(user, &sp("snes/zelda.srm"), Some(Rev(10))).await.unwrap();
    assert_eq!(v10.unwrap().hash, Some(ContentHash::of(b"v9")));
    let refs = s.referenced_hashes().await.unwrap();
    assert!(refs.contains(&ContentHash::of(b"new")) && !refs.contains(&ContentHash::of(b"v0")));
    assert!(s.history(user, &sp("never/there.srm")).await.unwrap().is_none());

    // Delete, repeat delete, delete of nothing.
    let delete = CommitRequest {
        content: NewContent::Tombstone,
        operation: "delete",
        ..upload(user, None, "snes/zelda.srm", 11, b"")
    };
    let CommitOutcome::Committed(tomb) = s.commit(&delete, KEEP_ALL).await.unwrap() else {
        panic!("delete did not commit")
    };
    assert!(tomb.deleted && tomb.hash.is_none());
    assert_eq!(outcome_kind(&s.commit(&delete, KEEP_ALL).await.unwrap()), "unchanged");
    let nothing = CommitRequest { path: sp("nope.srm"), base_rev: Rev(0), ..delete.clone() };
    assert_eq!(outcome_kind(&s.commit(&nothing, KEEP_ALL).await.unwrap()), "not found");

    // Listings sort byte-wise whatever the database locale, and a prefix is exactly the
    // subtree (`a/` but not `a-b` or `a0`).
    for p in ["a/z.srm", "B.srm", "a-b.srm", "a0.srm", "a/b/c.srm", "a.srm", "é.srm"] {
        s.commit(&upload(user, None, p, 0, p.as_bytes()), KEEP_ALL).await.unwrap();
    }
    let (all, cursor) = s.list_saves(user, None, false).await.unwrap();
    let listed: Vec<String> = all.iter().map(|m| m.path.to_string()).collect();
    let mut sorted = listed.clone();
    sorted.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    assert_eq!(listed, sorted);
    assert_eq!(listed.first().map(String::as_str), Some("B.srm"));
    let (below, _) = s.list_saves(user, Some(&sp("a")), false).await.unwrap();
    let below: Vec<String> = below.iter().map(|m| m.path.to_string()).collect();
    assert_eq!(below, ["a/b/c.srm", "a/z.srm"]);
    let (with_deleted, same_cursor) = s.list_saves(user, None, true).await.unwrap();
    assert_eq!(with_deleted.len(), all.len() + 1);
    assert_eq!(cursor, same_cursor);
    let (heads, heads_cursor) = s.all_heads(user).await.unwrap();
    assert_eq!((heads.len(), heads_cursor), (with_deleted.len(), cursor));

    // The feed pages oldest first; commits 2..=8 of zelda were pruned (a newer commit of
    // the same save is still in the feed), so after seq 1 it resumes at 9.
    let (page, more) = s.changes(user, Seq(1), 2).await.unwrap();
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), [Seq(9), Seq(10)]);
    assert!(more);
}

#[tokio::test]
async fn case_folding_name_collisions_are_refused() {
    let Some(url) = database("case_folding_names") else { return };
    let s = store(&url).await;
    s.ensure_user("alice", 0).await.unwrap();
    let table = [
        ("snes/Zelda.srm", 0, bytes(b"1"), "committed"),
        ("snes/zelda.srm", 0, bytes(b"2"), "collision"),
        ("snes/zelda.SRM/x", 0, bytes(b"2"), "collision"),
        ("SNES/other.srm", 0, bytes(b"2"), "collision"),
        ("gba/Stra\u{df}e.sav", 0, bytes(b"3"), "committed"),
        ("gba/STRASSE.sav", 0, bytes(b"4"), "collision"),
        ("snes/Zelda.srm", 1, bytes(b"5"), "committed"),
        ("snes/mario.srm", 0, bytes(b"6"), "committed"),
        ("snes/mario.srm", 1, NewContent::Tombstone, "committed"),
        ("snes/MARIO.srm", 0, bytes(b"7"), "committed"),
    ];
    for (path, base, content, expected) in table {
        let req = CommitRequest { content, ..upload(1, None, path, base, b"") };
        let got = s.commit(&req, KEEP_ALL).await.unwrap();
        assert_eq!(outcome_kind(&got), expected, "{path} on base {base}");
    }
}

#[tokio::test]
async fn quota_totals_follow_commits_conflicts_thinning_and_pruning() {
    let Some(url) = database("quota_totals") else { return };
    let s = store(&url).await;
    let user = s.ensure_user("alice", 0).await.unwrap();
    let retention = Retention { keep_versions: 2, keep_seconds: 0, max_conflict_versions: 3 };
    let none = ContentHash::of(b"none");
    let totals = async |s: &PgMetaStore| {
        let st = s.stored_bytes(user, &none).await.unwrap();
        (st.used, st.versions)
    };
    // Each write one second after the last, so versions older than "now" can be pruned.
    let mut clock = 0;
    let mut save = async |path: &str, base: u64, content: &[u8]| {
        clock += 1;
        let req = CommitRequest { now: clock, ..upload(user, None, path, base, content) };
        s.commit(&req, retention).await.unwrap();
    };
    save("a.srm", 0, b"one").await;
    assert_eq!(totals(&s).await, (3, 1));
    save("b.srm", 0, b"one").await;
    assert_eq!(totals(&s).await, (3, 2), "the same content under a second path counts once");
    for (rev, content) in [(1, b"two".as_slice()), (2, b"three"), (3, b"four!")] {
        save("a.srm", rev, content).await;
    }
    // a.srm keeps its newest two ("three", "four!"); "one" stays counted through b.srm.
    assert_eq!(totals(&s).await, (3 + 5 + 5, 3));
    for i in 0..6u8 {
        save("a.srm", 1, &[b'x', i, i, i]).await;
    }
    // Conflict versions are capped at three (the first and the newest two stay).
    assert_eq!(totals(&s).await, (13 + 3 * 4, 6));
    let stored = s.stored_bytes(user, &ContentHash::of(b"four!")).await.unwrap();
    assert!(stored.has_content);
    let history = s.history(user, &sp("a.srm")).await.unwrap().unwrap();
    let kept: Vec<Option<ContentHash>> = history
        .versions
        .iter()
        .filter(|v| v.kind == VersionKind::Conflict)
        .map(|v| v.hash)
        .collect();
    let x = |i: u8| Some(ContentHash::of(&[b'x', i, i, i]));
    assert_eq!(kept, [x(5), x(4), x(0)]);
    let conflicts = s.open_conflicts(user, 10).await.unwrap();
    assert_eq!(conflicts.len(), 3);
    assert_eq!(conflicts[0].head.as_ref().map(|h| h.rev), Some(Rev(4)));
}

#[tokio::test]
async fn web_logins_sessions_and_passwords() {
    let Some(url) = database("web_sessions") else { return };
    let (a, b) = (store(&url).await, store(&url).await);
    let alice = a.ensure_user("alice", 1).await.unwrap();
    let bob = a.ensure_user("bob", 1).await.unwrap();
    a.add_login_link(alice, "h1", 100, 10).await.unwrap();
    a.add_login_link(alice, "h2", 100, 10).await.unwrap();
    let (first, second) =
        tokio::join!(a.redeem_login_link("h1", 50), b.redeem_login_link("h1", 50));
    let mut got = [first.unwrap(), second.unwrap()];
    got.sort();
    assert_eq!(got, [None, Some(alice)], "a link signs in once");
    assert_eq!(a.redeem_login_link("h2", 101).await.unwrap(), None, "expired");

    for (i, hash) in ["a1", "a2", "a3"].iter().enumerate() {
        a.add_web_session(alice, hash, 1000, 2, 10).await.unwrap();
        let _ = i;
    }
    b.add_web_session(bob, "b1", 1000, 2, 20).await.unwrap();
    assert!(b.web_session("a1", 30).await.unwrap().is_none(), "the oldest beyond the cap");
    let a3 = b.web_session("a3", 30).await.unwrap().unwrap();
    assert_eq!((a3.user_id, a3.user_name.as_str()), (alice, "alice"));
    assert!(a.web_session("a3", 1001).await.unwrap().is_none(), "expired");
    a.set_password(alice, "$argon2id$x", 40).await.unwrap();
    assert!(a.web_session("a2", 50).await.unwrap().is_none(), "a new password ends sessions");
    assert!(a.web_session("b1", 50).await.unwrap().is_some());
    a.end_web_session("b1").await.unwrap();
    assert!(a.web_session("b1", 50).await.unwrap().is_none());
    let stored = b.user_password("alice").await.unwrap().unwrap();
    assert_eq!(stored.phc.as_deref(), Some("$argon2id$x"));
    assert!(b.user_password("bob").await.unwrap().unwrap().phc.is_none());
    assert!(b.user_password("carol").await.unwrap().is_none());
    assert!(matches!(a.set_password(999, "x", 1).await, Err(MetaError::NotFound)));
}

#[tokio::test]
async fn dav_devices_md5s_sessions_and_untracked() {
    let Some(url) = database("dav_md5s") else { return };
    let s = store(&url).await;
    let prefix = sp("retroarch");
    let device = s
        .create_dav_device(&NewDavDevice {
            user: "alice",
            name: "deck",
            kind: "retroarch",
            token_hash: "abc",
            prefix: &prefix,
            now: 1,
        })
        .await
        .unwrap();
    assert_eq!(device.user_name, "alice");
    assert_eq!(s.dav_root(device.device_id).await.unwrap(), Some(prefix));
    assert_eq!(s.dav_root(device.device_id + 1).await.unwrap(), None);
    let (kept, orphan) = (ContentHash::of(b"kept"), ContentHash::of(b"orphan"));
    s.record_content_md5(&kept, &[1; 16]).await.unwrap();
    s.record_content_md5(&kept, &[9; 16]).await.unwrap(); // known already: no-op
    s.record_content_md5(&orphan, &[2; 16]).await.unwrap();
    let user = s.ensure_user("alice", 1).await.unwrap();
    let path = sp("retroarch/saves/a.srm");
    let mut req = upload(user, Some(device.device_id), path.as_str(), 0, b"");
    req.content = NewContent::Bytes { hash: kept, size: 4 };
    s.commit(&req, KEEP_ALL).await.unwrap();
    assert_eq!(s.last_synced_rev(device.device_id, &path).await.unwrap(), Some(Rev(1)));
    let actor = Actor { user_id: user, device_id: Some(device.device_id) };
    s.record_synced_many(actor, &[(sp("retroarch/x"), Rev(7)), (path.clone(), Rev(1))])
        .await
        .unwrap();
    assert_eq!(
        s.last_synced_rev(device.device_id, &sp("retroarch/x")).await.unwrap(),
        Some(Rev(7))
    );
    assert_eq!(s.prune_content_md5().await.unwrap(), 1);
    let left = s.content_md5s(&[kept, orphan]).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[&kept], [1; 16]);

    // Untracked paths and sync sessions.
    s.set_untracked(actor, &sp("retroarch/b"), true, 2).await.unwrap();
    s.set_untracked(actor, &sp("retroarch/a"), true, 2).await.unwrap();
    s.set_untracked(actor, &sp("retroarch/b"), false, 3).await.unwrap();
    assert_eq!(s.untracked(device.device_id).await.unwrap(), [sp("retroarch/a")]);
    let start = savesync_server::meta::SessionStart {
        actor,
        manifest_entries: 3,
        planned_actions: 1,
        cursor: Seq(1),
        now: 10,
    };
    let id = s.start_session(&start).await.unwrap();
    let report = savesync_core::wire::SessionReport { uploaded: 1, ..Default::default() };
    assert!(s.complete_session(actor, id, &report, 11).await.unwrap());
    assert!(s.complete_session(actor, id, &report, 12).await.unwrap(), "a retry is fine");
    let other = Actor { user_id: user, device_id: None };
    assert!(!s.complete_session(other, id, &report, 12).await.unwrap());
    let sessions = s.sessions(user).await.unwrap();
    assert_eq!(sessions[0].completed.map(|(at, r)| (at, r.uploaded)), Some((11, 1)));
    assert_eq!(s.prune_sessions(12, 0).await.unwrap(), 1);
    let users = s.admin_users().await.unwrap();
    assert_eq!((users[0].name.as_str(), users[0].devices, users[0].saves), ("alice", 1, 1));
    let devices = s.admin_devices(Some("alice")).await.unwrap();
    assert_eq!(devices[0].info.name, "deck");
    s.ping().await.unwrap();
}

#[tokio::test]
async fn remotes_and_their_run_lease_across_stores() {
    let Some(url) = database("remotes") else { return };
    let (a, b) = (store(&url).await, store(&url).await);
    let user = a.ensure_user("alice", 1).await.unwrap();
    let new = NewRemote {
        name: "handheld".into(),
        user_id: user,
        ssh_user: "root".into(),
        host: "127.0.0.1".into(),
        port: 2222,
        key_path: "/k".into(),
        maps: vec![
            RemoteMap { remote_dir: "/saves".into(), prefix: sp("gba") },
            RemoteMap { remote_dir: "/states".into(), prefix: sp("gba-states") },
        ],
        every_secs: 60,
        host_key: "SHA256:one".into(),
        token_hash: "never-given".into(),
        now: 5,
    };
    let added = a.remote_store().add_remote(&new).await.unwrap();
    assert_eq!((added.port, added.maps.len(), added.next_run), (2222, 2, 5));
    assert_eq!(added.maps[1].prefix, sp("gba-states"));
    let again = b.remote_store().add_remote(&new).await;
    assert!(matches!(again, Err(MetaError::Conflict(_))), "{again:?}");
    let (ra, rb) = (a.remote_store(), b.remote_store());
    let (x, y) = tokio::join!(ra.claim_run(added.id, 10, 100), rb.claim_run(added.id, 10, 100));
    assert!(x.unwrap() ^ y.unwrap(), "exactly one process takes the lease");
    assert!(!ra.claim_run(added.id, 50, 200).await.unwrap(), "held");
    let run = RunRecord { at: 60, error: Some("unreachable".into()), next_run: 120 };
    rb.finish_run(added.id, &run).await.unwrap();
    assert!(ra.claim_run(added.id, 61, 200).await.unwrap(), "released");
    ra.finish_run(added.id, &RunRecord { at: 70, error: None, next_run: 130 }).await.unwrap();
    ra.offer_host_key(added.id, "SHA256:two").await.unwrap();
    let seen = rb.remote("handheld").await.unwrap().unwrap();
    assert_eq!((seen.last_ok, seen.last_error.as_deref()), (Some(70), None));
    assert_eq!(seen.offered_host_key.as_deref(), Some("SHA256:two"));
    rb.pin_host_key(added.id, "SHA256:two").await.unwrap();
    rb.request_run(added.id).await.unwrap();
    let seen = ra.remotes(Some(user)).await.unwrap();
    assert_eq!(
        (seen[0].host_key.as_str(), seen[0].offered_host_key.as_deref()),
        ("SHA256:two", None)
    );
    assert_eq!(seen[0].next_run, 0);
    assert!(ra.remotes(Some(user + 1)).await.unwrap().is_empty());

    let file = RemoteFile {
        path: sp("gba/a.sav"),
        base: Some(savesync_core::Version { rev: Rev(2), hash: Some(ContentHash::of(b"x")) }),
        device: None,
        conflict: None,
    };
    ra.put_remote_file(added.id, &file).await.unwrap();
    let replaced = RemoteFile { base: None, conflict: Some(ContentHash::of(b"c")), ..file.clone() };
    rb.put_remote_file(added.id, &replaced).await.unwrap();
    assert_eq!(ra.remote_files(added.id).await.unwrap(), [replaced]);
    rb.forget_remote_file(added.id, &sp("gba/a.sav")).await.unwrap();
    assert!(ra.remote_files(added.id).await.unwrap().is_empty());
    assert!(ra.remove_remote("handheld", 80).await.unwrap());
    assert!(!rb.remove_remote("handheld", 81).await.unwrap());
    assert!(a.device_revoked(added.device_id).await.unwrap(), "its device row is revoked");
}

/// `App::connect` on a Postgres URL, the real HTTP API: pair, upload, download, history.
#[tokio::test]
async fn the_http_api_round_trips_a_save_on_postgres() {
    let Some(url) = database("http_round_trip") else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut config = savesync_server::Config::with_data_dir(dir.path());
    config.database_url = Some(url);
    let app = savesync_server::App::connect(config).await.expect("App::connect");
    assert!(!dir.path().join("savesync.db").exists(), "no SQLite file on Postgres");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(savesync_server::launch(app.clone(), listener, async move {
        let _ = stopped.await;
    }));

    let code = app.issue_pairing_code("alice").unwrap();
    let anon = savesync_client::Client::new(&base, None).unwrap();
    let paired = anon.pair(&code.code, "deck", "handheld").await.unwrap();
    assert!(anon.pair(&code.code, "again", "handheld").await.is_err(), "a code works once");
    let client = savesync_client::Client::new(&base, Some(paired.token)).unwrap();
    let path = sp("snes/zelda.srm");
    let body = vec![7u8; 100_000];
    let first = client.upload(&path, Rev::NONE, body.clone().into()).await.unwrap();
    assert_eq!(first.rev, Rev(1));
    let second = client.upload(&path, Rev(1), b"v2".to_vec().into()).await.unwrap();
    assert_eq!(second.rev, Rev(2));
    let stale = client.upload(&path, Rev(1), b"stale".to_vec().into()).await;
    assert!(stale.is_err(), "a stale base is a conflict");
    let head = client.download(&path, None).await.unwrap();
    assert_eq!((head.rev, head.bytes.as_ref()), (Rev(2), b"v2".as_slice()));
    let old = client.download(&path, Some(Rev(1))).await.unwrap();
    assert_eq!(old.bytes.as_ref(), body.as_slice());
    let history = client.history(&path).await.unwrap();
    assert_eq!(history.versions.len(), 3, "two commits and the kept conflict");

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// `savesync-server migrate` on a fresh database reports the latest version, and never
/// prints the URL's password.
#[test]
fn the_migrate_command_reports_the_schema_version_without_the_password() {
    let Some(url) = database("migrate_command") else { return };
    let with_password = url.replacen("postgres://postgres@", "postgres://postgres:hunter2@", 1);
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_savesync-server"))
            .arg("migrate")
            .env("SAVESYNC_DATA_DIR", dir.path())
            .env("SAVESYNC_DATABASE_URL", &with_password)
            .env_remove("SAVESYNC_CONFIG")
            .output()
            .unwrap()
    };
    for _ in 0..2 {
        let out = run();
        let (stdout, stderr) =
            (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{stdout}{stderr}");
        let expected = format!("schema version {} ", latest_migration());
        assert!(stdout.contains(&expected), "{stdout}");
        assert!(stdout.contains("postgres:***@"), "{stdout}");
        assert!(!stdout.contains("hunter2") && !stderr.contains("hunter2"), "{stdout}{stderr}");
    }
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_savesync-server"))
        .arg("migrate")
        .env("SAVESYNC_DATA_DIR", dir.path())
        .env("SAVESYNC_DATABASE_URL", "mysql://root:hunter2@127.0.0.1/x")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(stderr.contains("unsupported scheme \"mysql\""), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
