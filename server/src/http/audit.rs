//! `GET /audit?limit=N`: the caller's user's audit log, newest first.

use super::ServerState;
use super::extract::{ApiQuery, AuthDevice};
use crate::error::ApiError;
use axum::Json;
use axum::extract::State;
use savesync_core::wire::AuditLog;
use serde::Deserialize;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    limit: Option<u32>,
}

pub async fn list(
    State(state): State<ServerState>,
    auth: AuthDevice,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditLog>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let user = auth.user_id;
    let entries = state.app.meta().audit(user, limit).await?;
    Ok(Json(AuditLog { entries }))
}
