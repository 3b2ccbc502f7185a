//! Configurable limits over real HTTP: the event stream's keep-alive interval, bounded
//! `/metrics` labels, an immediate 413 for an oversized Content-Length, the per-user byte
//! quota, the negotiate manifest cap, the per-device stream cap, the connection cap, and
//! pruning of sync sessions.

mod common;

use common::{DEADLINE, Device, TestServer, put, sp};
use futures::StreamExt;
use savesync_core::ErrorCode;
use savesync_core::Rev;
use savesync_core::wire::SessionReport;
use std::time::Duration;

crate::backend_matrix! {

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

/// A made-up HTTP method: `X` and 2 to 9 random upper-case letters and digits (no standard
/// method starts with `X`).
fn random_method(rng: &mut impl rand::Rng) -> reqwest::Method {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let len = rng.random_range(2..=9);
    let mut token = vec![b'X'];
    token.extend((0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())]));
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
        // No token needed to be refused: the length alone decides. `/pair` takes 4 KiB.
        "POST /api/v1/pair HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 5000\r\n\r\n"
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

fn manifest(n: usize) -> Vec<savesync_core::wire::ManifestEntry> {
    (0..n)
        .map(|i| savesync_core::wire::ManifestEntry {
            path: common::sp(&format!("m/{i}.srm")),
            local: Some(savesync_core::ContentHash::of(&i.to_le_bytes())),
            base: None,
        })
        .collect()
}

#[tokio::test]
async fn a_manifest_over_the_entry_cap_is_413_and_opens_no_session() {
    let server = TestServer::start_with(|c| c.max_manifest_entries = 10).await;
    let deck = server.pair("alice", "deck").await;
    let err = deck.client.negotiate(manifest(11)).await.unwrap_err();
    assert_eq!(err.status(), Some(413), "{err}");
    assert_eq!(err.code(), Some(ErrorCode::BodyTooLarge), "{err}");
    let negotiations = |log: &savesync_core::wire::AuditLog| {
        log.entries.iter().filter(|e| e.operation == "negotiate").count()
    };
    assert_eq!(negotiations(&deck.client.audit(100).await.unwrap()), 0);

    let plan = deck.client.negotiate(manifest(10)).await.unwrap();
    assert_eq!(plan.actions.len(), 10);
    assert_eq!(negotiations(&deck.client.audit(100).await.unwrap()), 1);
}

/// Upload `bytes` as a stream of unknown length (no `Content-Length`); returns the status
/// and the body text.
async fn put_streamed(
    server: &TestServer,
    device: &Device,
    path: &str,
    base: u64,
    bytes: Vec<u8>,
) -> (u16, String) {
    let hash = savesync_core::ContentHash::of(&bytes).to_hex();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(64).map(|c| Ok(c.to_vec())).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let url = reqwest::Url::parse_with_params(
        &server.api("saves/content"),
        &[("path", path), ("base_rev", &base.to_string())],
    )
    .unwrap();
    let response = reqwest::Client::new()
        .put(url)
        .bearer_auth(&device.token)
        .header(savesync_core::wire::HASH_HEADER, hash)
        .body(body)
        .timeout(DEADLINE)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn a_user_at_its_quota_gets_507_and_stores_nothing_while_others_are_unaffected() {
    let server = TestServer::start_with(|c| c.user_quota_bytes = 1000).await;
    let alice = server.pair("alice", "deck").await;
    let bob = server.pair("bob", "pc").await;
    let a = put(&alice, "q/a.srm", Rev::NONE, &[1u8; 600]).await;
    put(&alice, "q/b.srm", Rev::NONE, &[2u8; 300]).await;
    let blobs_before = server.blob_files();

    // 900 of 1000 bytes used: 200 new bytes do not fit, as a new save, as a new version,
    // as a conflict version (stale base), or streamed without a length.
    let refusals = [
        alice.client.upload(&sp("q/c.srm"), Rev::NONE, vec![3u8; 200].into()).await,
        alice.client.upload(&sp("q/a.srm"), a.rev, vec![4u8; 200].into()).await,
        alice.client.upload(&sp("q/a.srm"), Rev::NONE, vec![5u8; 200].into()).await,
    ];
    for refused in refusals {
        let err = refused.unwrap_err();
        assert_eq!(err.status(), Some(507), "{err}");
        assert_eq!(err.code(), Some(ErrorCode::QuotaExceeded), "{err}");
    }
    let (status, text) = put_streamed(&server, &alice, "q/d.srm", 0, vec![6u8; 200]).await;
    assert_eq!(status, 507, "{text}");
    assert!(text.contains("\"code\":\"quota_exceeded\""), "{text}");

    // Nothing of it was stored: same heads, same history, same blobs, no staging leftovers.
    let heads = alice.client.list(None, true).await.unwrap().saves;
    let paths: Vec<&str> = heads.iter().map(|h| h.path.as_str()).collect();
    assert_eq!(paths, ["q/a.srm", "q/b.srm"]);
    assert_eq!(alice.client.history(&sp("q/a.srm")).await.unwrap().versions.len(), 1);
    assert_eq!(server.blob_files(), blobs_before);

    // Content the user already stores costs nothing, and small new content still fits.
    put(&alice, "q/copy-of-a.srm", Rev::NONE, &[1u8; 600]).await;
    put(&alice, "q/e.srm", Rev::NONE, &[7u8; 100]).await;
    let err = alice.client.upload(&sp("q/f.srm"), Rev::NONE, vec![8u8; 1].into()).await;
    assert_eq!(err.unwrap_err().code(), Some(ErrorCode::QuotaExceeded));

    // Another user has a quota of its own.
    put(&bob, "q/a.srm", Rev::NONE, &[9u8; 1000]).await;
}

#[tokio::test]
async fn sessions_record_the_first_report_and_are_pruned_by_age() {
    let server = TestServer::start_with(|c| {
        c.gc_interval = Duration::from_millis(100);
        c.open_session_keep = Duration::from_secs(1);
        c.session_keep = Duration::from_secs(3600);
    })
    .await;
    let deck = server.pair("alice", "deck").await;
    let laptop = server.pair("alice", "laptop").await;
    let user = server.app.meta().ensure_user("alice", 0).await.unwrap();
    let completed = deck.client.negotiate(manifest(3)).await.unwrap().session_id;
    let abandoned = deck.client.negotiate(manifest(2)).await.unwrap().session_id;

    let report = SessionReport { uploaded: 2, downloaded: 5, deleted: 1, conflicts: 1, errors: 0 };
    // Only the device that opened a session completes it.
    let err = laptop.client.complete_session(completed, report).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap())
        .unwrap();
    deck.client.complete_session(completed, report).await.unwrap();
    // A retried report is accepted and changes nothing.
    let retry = SessionReport { uploaded: 99, ..report };
    deck.client.complete_session(completed, retry).await.unwrap();

    let sessions = server.app.meta().sessions(user).await.unwrap();
    assert_eq!(sessions.iter().map(|s| s.id).collect::<Vec<_>>(), [completed, abandoned]);
    assert_eq!((sessions[0].manifest_entries, sessions[0].planned_actions), (3, 3));
    let (at, recorded) = sessions[0].completed.expect("completed");
    assert_eq!(recorded, report);
    assert!(at >= before && at >= sessions[0].started_at, "completed at {at}");
    assert_eq!(sessions[1].completed, None);

    // Collection runs every 100 ms; the abandoned session goes once it is over 1 s old. The
    // completed one, started at the same time, is kept (completed ones are kept an hour).
    common::eventually("the abandoned session to be pruned", || async {
        let ids: Vec<i64> =
            server.app.meta().sessions(user).await.unwrap().iter().map(|s| s.id).collect();
        (!ids.contains(&abandoned)).then_some(ids)
    })
    .await;
    let left = server.app.meta().sessions(user).await.unwrap();
    assert_eq!(left.iter().map(|s| s.id).collect::<Vec<_>>(), [completed]);
}

/// Open an event stream of `device` and read its first (current cursor) event.
async fn open_stream(
    device: &Device,
) -> std::pin::Pin<
    Box<impl futures::Stream<Item = savesync_client::Result<savesync_core::wire::CursorEvent>>>,
> {
    let mut events = Box::pin(device.client.events().await.unwrap());
    let first = tokio::time::timeout(DEADLINE, events.next()).await.expect("first event");
    first.expect("stream open").expect("cursor event");
    events
}

#[tokio::test]
async fn a_device_over_its_stream_cap_loses_its_oldest_stream() {
    let server = TestServer::start_with(|c| c.max_streams_per_device = 2).await;
    let deck = server.pair("alice", "deck").await;
    let laptop = server.pair("alice", "laptop").await;
    let mut oldest = open_stream(&deck).await;
    let mut second = open_stream(&deck).await;
    let mut other_device = open_stream(&laptop).await;
    let mut newest = open_stream(&deck).await;

    // The oldest of the deck's three streams is ended by the server.
    let ended = tokio::time::timeout(DEADLINE, oldest.next()).await.expect("oldest stream ended");
    assert!(ended.is_none(), "{ended:?}");

    // The others stay open and announce the next commit.
    let head = put(&laptop, "s/a.srm", Rev::NONE, b"a").await;
    for (name, stream) in
        [("second", &mut second), ("newest", &mut newest), ("laptop", &mut other_device)]
    {
        let event = tokio::time::timeout(DEADLINE, stream.next()).await.expect(name);
        assert_eq!(event.expect("open").expect("event").cursor, head.seq, "{name}");
    }
}

#[tokio::test]
async fn connections_over_the_cap_get_503_until_one_closes() {
    let server = TestServer::start_with(|c| {
        c.max_connections = 2;
        c.sse_keep_alive = Duration::from_millis(100);
    })
    .await;
    let deck = server.pair("alice", "deck").await;
    // Each stream holds one connection (a client of its own, so none is shared).
    let open_held_stream = || async {
        common::eventually("a stream under the cap", || async {
            let response = reqwest::Client::new()
                .get(server.api("events"))
                .bearer_auth(&deck.token)
                .timeout(Duration::from_secs(3600))
                .send()
                .await
                .ok()?;
            (response.status().as_u16() == 200).then_some(response)
        })
        .await
    };
    let first = open_held_stream().await;
    let _second = open_held_stream().await;

    // A third connection is answered 503 unavailable, with retry-after, and closed.
    for _ in 0..3 {
        let response = reqwest::Client::new()
            .get(server.api("health"))
            .timeout(DEADLINE)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        let body: savesync_core::wire::ErrorBody = response.json().await.unwrap();
        assert_eq!(body.code, ErrorCode::Unavailable);
    }

    // Once a held connection closes, new ones are served again.
    drop(first);
    common::eventually("a connection to be served after one closed", || async {
        let response =
            reqwest::Client::new().get(server.api("health")).timeout(DEADLINE).send().await.ok()?;
        (response.status().as_u16() == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_user_at_its_version_cap_gets_507_even_for_empty_or_repeated_content() {
    let server = TestServer::start_with(|c| c.user_max_versions = 3).await;
    let alice = server.pair("alice", "deck").await;
    let bob = server.pair("bob", "pc").await;
    // Empty content costs no bytes, so only the row cap bounds it.
    for i in 0..3 {
        put(&alice, &format!("junk/{i}.srm"), Rev::NONE, b"").await;
    }
    for path in ["junk/3.srm", "junk/4.srm"] {
        let err = alice.client.upload(&sp(path), Rev::NONE, Vec::new().into()).await.unwrap_err();
        assert_eq!(err.status(), Some(507), "{err}");
        assert_eq!(err.code(), Some(ErrorCode::QuotaExceeded), "{err}");
    }
    let heads = alice.client.list(None, true).await.unwrap().saves;
    assert_eq!(heads.len(), 3, "nothing more was stored");
    // Another user is unaffected.
    put(&bob, "snes/a.srm", Rev::NONE, b"").await;
}
}
