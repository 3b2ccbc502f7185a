//! Unauthenticated endpoints: health, Prometheus metrics, and the JSON 404 for unknown routes.

use super::ServerState;
use crate::error::ApiError;
use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use savesync_core::wire::Health;

pub async fn health() -> Json<Health> {
    Json(Health { status: "ok".to_owned(), version: env!("CARGO_PKG_VERSION").to_owned() })
}

pub async fn metrics(State(state): State<ServerState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], state.app.metrics().render())
}

pub async fn not_found(State(state): State<ServerState>, uri: axum::http::Uri) -> ApiError {
    state.app.metrics().record_request("unmatched", "ANY", 404);
    ApiError::not_found(format!("route {}", uri.path()))
}
