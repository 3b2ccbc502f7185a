//! `GET /remotes` (the caller's SSH remotes with their status) and
//! `POST /remotes/{name}/sync` (sync one now and answer with what the run did). Both are
//! scoped to the caller's user: another user's remote is `not_found`, exactly like one
//! that does not exist. The admin's equivalent is `savesync-server remotes sync NAME`.

use super::ServerState;
use super::extract::{ApiPath, AuthDevice};
use crate::error::ApiError;
use crate::remotes::{self, Counters, RemoteError, RemoteStatus, RunReport};
use axum::Json;
use axum::extract::State;
use savesync_core::ErrorCode;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct RemoteList {
    pub remotes: Vec<RemoteStatus>,
}

pub async fn list(
    State(state): State<ServerState>,
    auth: AuthDevice,
) -> Result<Json<RemoteList>, ApiError> {
    let remotes = remotes::status(&state.app, Some(auth.user_id)).await.map_err(api_error)?;
    Ok(Json(RemoteList { remotes }))
}

pub async fn sync(
    State(state): State<ServerState>,
    auth: AuthDevice,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<RunReport>, ApiError> {
    let owned = state
        .app
        .meta()
        .remote_store()
        .remote(&name)
        .await?
        .filter(|r| r.user_id == auth.user_id)
        .ok_or_else(|| ApiError::not_found(format!("remote {name:?}")))?;
    tracing::info!(remote = %owned.name, by = auth.device_id, "sync requested over the API");
    // A task of its own: a request cut off by its deadline (or a client that hangs up)
    // must not abort the run half way and leave its lease held.
    let app = state.app.clone();
    let run =
        tokio::spawn(
            async move { remotes::sync_now(&app, &owned.name, &Counters::default()).await },
        );
    let report = run
        .await
        .map_err(|e| ApiError::internal(format!("the sync task failed: {e}")))?
        .map_err(api_error)?;
    Ok(Json(report))
}

fn api_error(e: RemoteError) -> ApiError {
    let code = match &e {
        RemoteError::NotFound(_) => ErrorCode::NotFound,
        RemoteError::Busy(_) => ErrorCode::Conflict,
        RemoteError::Store(_) => ErrorCode::Internal,
        RemoteError::Unreachable(_)
        | RemoteError::HostKeyChanged { .. }
        | RemoteError::Login(_)
        | RemoteError::Device(_)
        | RemoteError::Revoked => ErrorCode::Unavailable,
    };
    ApiError::new(code, e.to_string())
}
