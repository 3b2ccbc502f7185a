//! Unauthenticated endpoints: health, Prometheus metrics, and the JSON 404 for unknown routes.
//!
//! Health is what a load balancer or systemd watchdog polls, so it checks what a sync
//! needs: the database answers a query and the blob volume accepts a write. Either failing
//! is 503 `unavailable`; the detail goes to the log, not to the unauthenticated caller.

use super::ServerState;
use crate::app::App;
use crate::error::ApiError;
use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use savesync_core::ErrorCode;
use savesync_core::wire::Health;
use std::time::Duration;

/// A health check that cannot finish in this time counts as failed: a prober needs an
/// answer, and a database stuck behind a lock is not healthy.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn health(State(state): State<ServerState>) -> Result<Json<Health>, ApiError> {
    let failed = match tokio::time::timeout(PROBE_TIMEOUT, probe(&state.app)).await {
        Ok(Ok(())) => None,
        Ok(Err(what)) => Some(what),
        Err(_) => Some("the health probe timed out"),
    };
    match failed {
        None => Ok(Json(Health {
            status: "ok".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        })),
        Some(what) => Err(ApiError::new(ErrorCode::Unavailable, what)),
    }
}

/// Query the database, then stage a small write in the blob store.
async fn probe(app: &App) -> Result<(), &'static str> {
    if let Err(e) = app.meta().ping().await {
        tracing::warn!(error = %e, "health: database check failed");
        return Err("the database does not answer");
    }
    if let Err(e) = app.blobs().check_writable().await {
        tracing::warn!(error = %e, "health: blob store is not writable");
        return Err("the blob store is not writable");
    }
    Ok(())
}

pub async fn metrics(State(state): State<ServerState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], state.app.metrics().render())
}

pub async fn not_found(
    State(state): State<ServerState>,
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> ApiError {
    state.app.metrics().record_request(crate::metrics::UNMATCHED, method.as_str(), 404);
    ApiError::not_found(format!("route {}", uri.path()))
}
