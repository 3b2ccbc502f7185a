//! Listing saves, version history and restore.

use super::ServerState;
use super::content::commit_and_publish;
use super::extract::{ApiJson, ApiQuery, AuthDevice, parse_path};
use crate::error::ApiError;
use crate::meta::{CommitRequest, NewContent};
use crate::timestamps::now_unix;
use axum::Json;
use axum::extract::State;
use savesync_core::wire::{History, RestoreRequest, SaveList, SaveMeta};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    prefix: Option<String>,
    #[serde(default)]
    include_deleted: bool,
}

pub async fn list(
    State(state): State<ServerState>,
    auth: AuthDevice,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<SaveList>, ApiError> {
    let prefix = q.prefix.as_deref().filter(|p| !p.is_empty()).map(parse_path).transpose()?;
    let (saves, cursor) =
        state.app.meta().list_saves(auth.user_id, prefix.as_ref(), q.include_deleted).await?;
    Ok(Json(SaveList { saves, cursor }))
}

#[derive(Debug, Deserialize)]
pub struct PathQuery {
    pub path: String,
}

pub async fn history(
    State(state): State<ServerState>,
    auth: AuthDevice,
    ApiQuery(q): ApiQuery<PathQuery>,
) -> Result<Json<History>, ApiError> {
    let path = parse_path(&q.path)?;
    let shown = path.to_string();
    let history = state.app.meta().history(auth.user_id, &path).await?;
    history.map(Json).ok_or_else(|| ApiError::not_found(format!("save {shown:?}")))
}

/// Commit an old version's bytes (or tombstone) as a new head, CAS on `base_rev`.
pub async fn restore(
    State(state): State<ServerState>,
    auth: AuthDevice,
    ApiJson(req): ApiJson<RestoreRequest>,
) -> Result<Json<SaveMeta>, ApiError> {
    let (user, path, id) = (auth.user_id, req.path.clone(), req.version_id);
    let version = state.app.meta().version_by_id(user, &path, id).await?.ok_or_else(|| {
        ApiError::not_found(format!("version {} of save {:?}", req.version_id, req.path.as_str()))
    })?;
    let content = match version.hash {
        Some(hash) => NewContent::Bytes { hash, size: version.size },
        None => NewContent::Tombstone,
    };
    let request = CommitRequest {
        actor: auth.actor(),
        path: req.path,
        base_rev: req.base_rev,
        content,
        operation: "restore",
        now: now_unix(),
    };
    // The bytes are already stored and referenced by the version row; the GC lock is
    // still taken so the blob cannot be collected between the read above and this commit.
    commit_and_publish(&state, request, None).await.map(Json)
}
