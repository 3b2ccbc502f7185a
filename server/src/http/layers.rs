//! Middleware: per-request metrics, the request deadline, and the up-front refusal of a
//! body whose announced length is over the limit.

use super::ServerState;
use super::pairing::MAX_PAIR_BODY;
use crate::error::{ApiError, FailedBackend};
use crate::metrics::{UNMATCHED, add};
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use savesync_core::ErrorCode;

/// Count the request by route template, method (bounded, see `metrics::method_label`)
/// and status, and 5xx by failing backend.
pub async fn record_metrics(
    State(state): State<ServerState>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |m| m.as_str().to_owned());
    let method = req.method().clone();
    let response = next.run(req).await;
    let metrics = state.app.metrics();
    metrics.record_request(&route, method.as_str(), response.status().as_u16());
    match response.extensions().get::<FailedBackend>() {
        Some(FailedBackend::Sqlite) => add(&metrics.sqlite_errors, 1),
        Some(FailedBackend::Blob) => add(&metrics.blob_errors, 1),
        None => {}
    }
    response
}

/// Requests whose duration is legitimately unbounded: the event stream and long-poll are
/// open by design, and uploads are bounded per chunk instead (see `content.rs`), so a
/// large save on a slow link still completes.
fn exempt_from_deadline(method: &Method, route: &str) -> bool {
    route.ends_with("/events") || route.ends_with("/changes") || is_upload(method, route)
}

/// Answer 503 `unavailable` when producing the response takes longer than
/// `config.request_timeout`. Only the time to the response head counts, so a big download
/// keeps streaming after it.
pub async fn deadline(State(state): State<ServerState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    if route.as_deref().is_some_and(|r| exempt_from_deadline(req.method(), r)) {
        return next.run(req).await;
    }
    let limit = state.app.config().request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorCode::Unavailable,
            format!("request took longer than {} s", limit.as_secs()),
        )
        .into_response(),
    }
}

/// Uploads check `max_body_bytes` themselves (see `content.rs`); every other body is JSON.
fn is_upload(method: &Method, route: &str) -> bool {
    method == Method::PUT && route.ends_with("/saves/content")
}

/// The largest body a route takes, as far as it is known before the handler runs: `None`
/// for uploads (they check `max_body_bytes` themselves, see `content.rs`), the small pairing
/// limit for `POST /pair`, `max_json_bytes` for every other (JSON) body.
fn body_limit(method: &Method, route: Option<&str>, max_json_bytes: u64) -> Option<u64> {
    match route {
        Some(r) if is_upload(method, r) => None,
        Some(r) if r.ends_with("/pair") => Some(MAX_PAIR_BODY as u64),
        _ => Some(max_json_bytes),
    }
}

/// Answer 413 `body_too_large` at once when `Content-Length` announces more than the
/// route's [`body_limit`]. The JSON extractor only notices a body is too large once that
/// many bytes have arrived, so a client that announces a huge body and sends nothing would
/// otherwise hold the request until the deadline with no answer. The connection is closed
/// after the answer, since the unread body cannot be skipped.
pub async fn refuse_oversized_length(
    State(state): State<ServerState>,
    req: Request,
    next: Next,
) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    let limit = body_limit(req.method(), route.as_deref(), state.app.config().max_json_bytes);
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match (announced, limit) {
        (Some(n), Some(limit)) if n > limit => {
            let mut response = ApiError::new(
                ErrorCode::BodyTooLarge,
                format!("body of {n} bytes is larger than the limit of {limit} bytes"),
            )
            .into_response();
            response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            response
        }
        _ => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_PAIR_BODY, body_limit, exempt_from_deadline, is_upload};
    use axum::http::Method;

    #[test]
    fn only_streams_long_polls_and_uploads_escape_the_deadline() {
        assert!(exempt_from_deadline(&Method::GET, "/api/v1/events"));
        assert!(exempt_from_deadline(&Method::GET, "/api/v1/changes"));
        assert!(exempt_from_deadline(&Method::PUT, "/api/v1/saves/content"));
        assert!(!exempt_from_deadline(&Method::GET, "/api/v1/saves/content"));
        assert!(!exempt_from_deadline(&Method::POST, "/api/v1/negotiate"));
    }

    #[test]
    fn only_the_upload_route_takes_bodies_over_the_json_limit() {
        assert!(is_upload(&Method::PUT, "/api/v1/saves/content"));
        assert!(!is_upload(&Method::GET, "/api/v1/saves/content"));
        assert!(!is_upload(&Method::PUT, "/api/v1/untracked"));
        assert!(!is_upload(&Method::POST, "/api/v1/negotiate"));
    }

    #[test]
    fn body_limits_by_route() {
        let json = 1000;
        let pair = Some(MAX_PAIR_BODY as u64);
        let table = [
            (Method::PUT, Some("/api/v1/saves/content"), None),
            (Method::POST, Some("/api/v1/pair"), pair),
            (Method::POST, Some("/api/v1/negotiate"), Some(json)),
            (Method::PUT, Some("/api/v1/untracked"), Some(json)),
            (Method::POST, None, Some(json)),
        ];
        for (method, route, expected) in table {
            assert_eq!(body_limit(&method, route, json), expected, "{method} {route:?}");
        }
    }
}
