//! The client's failure handling against a scripted HTTP server on `127.0.0.1:0`: which
//! answers are retried, which are not, how timeouts and refused connections are
//! classified, and that a download whose bytes do not match the announced hash leaves
//! nothing behind. (The real server's behaviour is tested in `server/tests`.)

use savesync_client::{Client, ClientError, RetryPolicy};
use savesync_core::{ContentHash, ErrorCode, Rev, SavePath};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One scripted answer: status line, extra headers, body. `None`: accept and never answer.
type Answer = Option<(u16, Vec<(&'static str, String)>, Vec<u8>)>;

/// Serves `script` in order (the last answer repeats) and counts requests.
async fn scripted(script: Vec<Answer>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let answer = script[n.min(script.len() - 1)].clone();
            tokio::spawn(async move {
                read_request_head(&mut socket).await;
                let Some((status, headers, body)) = answer else {
                    // Hold the connection open without answering.
                    let mut sink = [0u8; 1024];
                    while socket.read(&mut sink).await.is_ok_and(|n| n > 0) {}
                    return;
                };
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, count)
}

/// Read up to the end of the request head (bodies in these tests are tiny and ignored).
async fn read_request_head(socket: &mut tokio::net::TcpStream) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

fn json_error(status: u16, code: &str) -> Answer {
    let body = format!(r#"{{"code":"{code}","message":"scripted"}}"#).into_bytes();
    Some((status, vec![("content-type", "application/json".into())], body))
}

fn health_ok() -> Answer {
    let body = br#"{"status":"ok","version":"test"}"#.to_vec();
    Some((200, vec![("content-type", "application/json".into())], body))
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        max_elapsed: Duration::from_secs(5),
    }
}

fn client(url: &str) -> Client {
    Client::new(url, Some("ss_test".into()))
        .unwrap()
        .with_retry(fast_retries())
        .with_timeout(Duration::from_secs(5))
}

#[tokio::test]
async fn unavailable_is_retried_until_the_server_answers() {
    let (url, count) =
        scripted(vec![json_error(503, "unavailable"), json_error(500, "internal"), health_ok()])
            .await;
    let health = client(&url).health().await.unwrap();
    assert_eq!(health.status, "ok");
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn retries_stop_after_max_attempts() {
    let (url, count) = scripted(vec![json_error(503, "unavailable")]).await;
    let err = client(&url).health().await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unavailable));
    assert!(err.is_transient() && !err.is_offline());
    assert_eq!(count.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn refusals_are_not_retried() {
    let (url, count) = scripted(vec![json_error(409, "conflict"), health_ok()]).await;
    let path = SavePath::parse("snes/a.srm").unwrap();
    let err =
        client(&url).upload(&path, Rev(1), bytes::Bytes::from_static(b"x")).await.unwrap_err();
    assert!(err.is_conflict() && !err.is_transient(), "{err}");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn pairing_is_not_repeated_once_the_server_saw_it() {
    let (url, count) = scripted(vec![json_error(503, "unavailable"), health_ok()]).await;
    let err = client(&url).pair("ABCD-EFGH", "deck", "steamdeck").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unavailable));
    assert_eq!(count.load(Ordering::SeqCst), 1, "a pairing code must not be spent twice");
}

#[tokio::test]
async fn a_proxy_error_page_is_an_unexpected_status_and_transient() {
    let html =
        Some((502, vec![("content-type", "text/html".into())], b"<h1>Bad Gateway</h1>".to_vec()));
    let (url, _) = scripted(vec![html]).await;
    let err = client(&url).with_retry(RetryPolicy::none()).health().await.unwrap_err();
    assert!(matches!(err, ClientError::UnexpectedStatus { status: 502, .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(err.code(), None);
}

#[tokio::test]
async fn a_silent_server_times_out_as_transient_not_offline() {
    let (url, _) = scripted(vec![None]).await;
    let client =
        client(&url).with_retry(RetryPolicy::none()).with_timeout(Duration::from_millis(200));
    let err = client.health().await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");
    assert!(err.is_transient() && !err.is_offline());
}

#[tokio::test]
async fn a_refused_connection_is_offline() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = client(&url).with_retry(RetryPolicy::none()).health().await.unwrap_err();
    assert!(err.is_offline() && err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn a_download_that_does_not_match_its_hash_is_refused_and_leaves_nothing() {
    let claimed = ContentHash::of(b"the real save").to_hex();
    let answer = Some((
        200,
        vec![("x-savesync-rev", "4".to_owned()), ("x-savesync-sha256", claimed)],
        b"corrupted in transit".to_vec(),
    ));
    let (url, _) = scripted(vec![answer]).await;
    let client = client(&url).with_retry(RetryPolicy::none());
    let path = SavePath::parse("snes/a.srm").unwrap();
    let err = client.download(&path, None).await.unwrap_err();
    assert!(matches!(err, ClientError::HashMismatch { .. }), "{err:?}");

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("a.srm");
    std::fs::write(&dest, b"local").unwrap();
    let err = client.download_to_file(&path, None, &dest).await.unwrap_err();
    assert!(matches!(err, ClientError::HashMismatch { .. }), "{err:?}");
    assert_eq!(std::fs::read(&dest).unwrap(), b"local");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "temp file left behind");
}

#[tokio::test]
async fn a_download_without_savesync_headers_is_a_decode_error() {
    let (url, _) = scripted(vec![Some((200, vec![], b"bytes".to_vec()))]).await;
    let path = SavePath::parse("snes/a.srm").unwrap();
    let err = client(&url).download(&path, None).await.unwrap_err();
    assert!(matches!(err, ClientError::Decode(_)), "{err:?}");
}

#[tokio::test]
async fn the_token_never_appears_in_errors_or_debug_output() {
    let (url, _) = scripted(vec![json_error(401, "unauthorized")]).await;
    let client =
        Client::new(&url, Some("ss_topsecret".into())).unwrap().with_retry(RetryPolicy::none());
    let err = client.devices().await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unauthorized));
    assert!(!format!("{err} {err:?} {client:?}").contains("topsecret"));
}
