//! Middleware: per-request metrics and the request deadline.

use super::ServerState;
use crate::error::{ApiError, FailedBackend};
use crate::metrics::{UNMATCHED, add};
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
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
    route.ends_with("/events")
        || route.ends_with("/changes")
        || (method == Method::PUT && route.ends_with("/saves/content"))
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

#[cfg(test)]
mod tests {
    use super::exempt_from_deadline;
    use axum::http::Method;

    #[test]
    fn only_streams_long_polls_and_uploads_escape_the_deadline() {
        assert!(exempt_from_deadline(&Method::GET, "/api/v1/events"));
        assert!(exempt_from_deadline(&Method::GET, "/api/v1/changes"));
        assert!(exempt_from_deadline(&Method::PUT, "/api/v1/saves/content"));
        assert!(!exempt_from_deadline(&Method::GET, "/api/v1/saves/content"));
        assert!(!exempt_from_deadline(&Method::POST, "/api/v1/negotiate"));
    }
}
