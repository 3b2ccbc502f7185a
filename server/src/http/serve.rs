//! The accept loop: HTTP/1.1 connections from a `TcpListener` into the router, with graceful
//! shutdown.
//!
//! This replaces `axum::serve` for one reason: it never arms hyper's header read timeout,
//! so a client that opens connections and sends its request headers a byte at a time (or
//! never) holds a connection and a task forever ("slowloris"). Here every request's headers
//! must arrive within [`header_read_timeout`]. Each request also carries the peer address
//! as `ConnectInfo<SocketAddr>`, which the pairing rate limit keys on.
//!
//! It also caps open connections at `config.max_connections`. A connection over the cap is
//! answered `503 unavailable` (with `retry-after`) to its first request and closed; at most
//! [`REFUSING_MAX`] such refusals run at once, and a connection beyond those is closed
//! unanswered, so a flood costs a bounded number of tasks and descriptors.

use crate::error::ApiError;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::HeaderValue;
use axum::http::header::{CONNECTION, RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use savesync_core::ErrorCode;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Longest time a client may take to send a request's headers. Capped by the request
/// timeout so a test (or an operator) that shortens one shortens both.
#[must_use]
pub fn header_read_timeout(request_timeout: Duration) -> Duration {
    request_timeout.min(Duration::from_secs(30))
}

/// After a failed `accept` (typically out of file descriptors), wait before the next one
/// instead of spinning; connections finishing meanwhile free descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Connections over the cap that are answered 503 at the same time; more are just closed.
const REFUSING_MAX: usize = 32;

/// How long a connection over the cap may take to send its request headers.
const REFUSAL_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// The answer to every request on a connection over the cap.
fn over_capacity() -> Response {
    let mut response =
        ApiError::new(ErrorCode::Unavailable, "the server has too many open connections")
            .into_response();
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Socket options of an accepted connection. TCP_NODELAY: answers go out in several
/// writes (headers, then body chunks or events), and with Nagle's algorithm each write
/// after the first waited for the client's delayed ACK, 40 ms on Linux: that was most of a
/// save's propagation time to another device.
fn tune_accepted(stream: &tokio::net::TcpStream, peer: std::net::SocketAddr) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "setting TCP_NODELAY");
    }
}

/// Serve until `shutdown` resolves; then stop accepting, let every connection finish its
/// current request, and return once all are closed.
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    request_timeout: Duration,
    max_connections: usize,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_read_timeout(request_timeout));
    let mut refusal = hyper::server::conn::http1::Builder::new();
    refusal
        .timer(TokioTimer::new())
        .header_read_timeout(REFUSAL_HEADER_TIMEOUT.min(header_read_timeout(request_timeout)))
        .keep_alive(false);
    let open = Arc::new(Semaphore::new(max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    let refusing = Arc::new(Semaphore::new(REFUSING_MAX));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        tune_accepted(&stream, peer);
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            let Ok(refusing) = Arc::clone(&refusing).try_acquire_owned() else {
                continue; // dropping the stream closes it
            };
            let service = hyper::service::service_fn(|_: hyper::Request<Incoming>| async {
                Ok::<_, Infallible>(over_capacity())
            });
            let connection =
                graceful.watch(refusal.serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                let _ = connection.await;
                drop(refusing);
            });
            continue;
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request.map(Body::new))
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // Clients vanish, send garbage or time out: routine, not an operator problem.
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::{header_read_timeout, tune_accepted};
    use std::time::Duration;

    #[tokio::test]
    async fn accepted_connections_send_without_waiting_for_acks() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (_client, (stream, peer)) = (client.unwrap(), accepted.unwrap());
        assert!(!stream.nodelay().unwrap(), "Nagle is the kernel's default");
        tune_accepted(&stream, peer);
        assert!(stream.nodelay().unwrap(), "TCP_NODELAY set");
    }

    #[test]
    fn headers_get_the_request_timeout_but_never_more_than_30_s() {
        assert_eq!(header_read_timeout(Duration::from_secs(120)), Duration::from_secs(30));
        assert_eq!(header_read_timeout(Duration::from_secs(2)), Duration::from_secs(2));
    }
}
