//! Folders: `MKCOL`, and `DELETE dir/`. The library has no folders of its own: a folder
//! exists while a save lies below it, and the synced folders, the base URL and `deleted/`
//! always exist. So `MKCOL` stores nothing: `405` when the folder (or a save of that name)
//! exists, `201` otherwise, with or without a trailing slash. The folder appears once
//! RetroArch's `PUT` into it lands. Missing parents are not an error: RetroArch creates
//! each level in order anyway, and a `201` folder is not remembered, so a `409` would fail
//! its next level. A folder is never deleted with the saves in it (RetroArch deletes files
//! one by one); deleting an empty one is a no-op that succeeds.

use super::auth::DavDevice;
use super::paths::Target;
use super::reply::{empty, from_api};
use crate::http::ServerState;
use axum::http::StatusCode;
use axum::response::Response;

pub async fn mkcol(
    state: &ServerState,
    device: &DavDevice,
    target: Target,
    has_body: bool,
) -> Response {
    if has_body {
        // RFC 4918 9.3: a body MKCOL does not understand.
        return empty(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    match target {
        Target::Root | Target::Manifest => empty(StatusCode::METHOD_NOT_ALLOWED),
        Target::Deleted { rest } if rest.is_empty() => empty(StatusCode::METHOD_NOT_ALLOWED),
        Target::Deleted { .. } => empty(StatusCode::CREATED),
        Target::Outside => empty(StatusCode::FORBIDDEN),
        Target::Library { top: true, .. } => empty(StatusCode::METHOD_NOT_ALLOWED),
        Target::Library { path, top: false } => {
            match state.app.meta().list_saves(device.user_id, Some(&path), false).await {
                Ok((below, _)) if below.is_empty() => empty(StatusCode::CREATED),
                Ok(_) => empty(StatusCode::METHOD_NOT_ALLOWED),
                Err(e) => from_api(&e.into()),
            }
        }
    }
}

/// `DELETE dir/`: `204` when no live save lies below (nothing to delete), `403` otherwise.
pub async fn delete(
    state: &ServerState,
    device: &DavDevice,
    path: &savesync_core::SavePath,
) -> Response {
    match state.app.meta().list_saves(device.user_id, Some(path), false).await {
        Ok((below, _)) if below.is_empty() => empty(StatusCode::NO_CONTENT),
        Ok(_) => empty(StatusCode::FORBIDDEN),
        Err(e) => from_api(&e.into()),
    }
}
