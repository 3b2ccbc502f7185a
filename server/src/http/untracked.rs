//! Per-device opt-out: `GET /untracked`, `PUT /untracked?path=P`, `DELETE /untracked?path=P`.

use super::ServerState;
use super::extract::{ApiQuery, AuthDevice, parse_path};
use super::saves::PathQuery;
use crate::error::ApiError;
use crate::timestamps::now_unix;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use savesync_core::wire::UntrackedList;

pub async fn list(
    State(state): State<ServerState>,
    auth: AuthDevice,
) -> Result<Json<UntrackedList>, ApiError> {
    let device = auth.device_id;
    let paths = state.app.meta().untracked(device).await?;
    Ok(Json(UntrackedList { paths }))
}

pub async fn add(
    state: State<ServerState>,
    auth: AuthDevice,
    query: ApiQuery<PathQuery>,
) -> Result<StatusCode, ApiError> {
    set(state, auth, query, true).await
}

pub async fn remove(
    state: State<ServerState>,
    auth: AuthDevice,
    query: ApiQuery<PathQuery>,
) -> Result<StatusCode, ApiError> {
    set(state, auth, query, false).await
}

async fn set(
    State(state): State<ServerState>,
    auth: AuthDevice,
    ApiQuery(q): ApiQuery<PathQuery>,
    untracked: bool,
) -> Result<StatusCode, ApiError> {
    let path = parse_path(&q.path)?;
    let actor = auth.actor();
    state.app.meta().set_untracked(actor, &path, untracked, now_unix()).await?;
    Ok(StatusCode::NO_CONTENT)
}
