//! The accept loop: HTTP/1.1 connections from a `TcpListener` into the router, with graceful
//! shutdown.
//!
//! This replaces `axum::serve` for one reason: it never arms hyper's header read timeout,
//! so a client that opens connections and sends its request headers a byte at a time (or
//! never) holds a connection and a task forever ("slowloris"). Here every request's headers
//! must arrive within [`header_read_timeout`]. Each request also carries the peer address
//! as `ConnectInfo<SocketAddr>`, which the pairing rate limit keys on.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::time::Duration;
use tokio::net::TcpListener;
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

/// Serve until `shutdown` resolves; then stop accepting, let every connection finish its
/// current request, and return once all are closed.
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    request_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_read_timeout(request_timeout));
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
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::header_read_timeout;
    use std::time::Duration;

    #[test]
    fn headers_get_the_request_timeout_but_never_more_than_30_s() {
        assert_eq!(header_read_timeout(Duration::from_secs(120)), Duration::from_secs(30));
        assert_eq!(header_read_timeout(Duration::from_secs(2)), Duration::from_secs(2));
    }
}
