//! Saves over WebDAV: `GET`, `PUT`, `DELETE`, and `MOVE` into `deleted/`.
//!
//! Every write is an ordinary compare-and-swap commit (so the changes feed and event
//! streams wake mounts at once) whose base is the rev this device last saw of the save:
//! shown in its last manifest, downloaded, or committed by it. A `PUT` made on a head
//! that has moved since is kept as a `conflict` version in history (and in the audit log)
//! and answered `409`, never committed over the other device's save. RetroArch then counts
//! the upload as failed, keeps its file, and reports the conflict at its next sync until
//! someone picks a version (for example `savesync restore`).
//!
//! RetroArch's non-destructive delete (`MOVE x` to `deleted/x-yymmdd-HHMMSS`) is a delete
//! of `x`: the bytes stay in the save's history (that is what the server's history is for),
//! and no timestamped copy is added to the library, where every mount would show it.

use super::auth::DavDevice;
use super::paths::{Target, classify, destination_path};
use super::reply::{self, empty, from_api};
use crate::blob::{BlobError, Digests};
use crate::error::ApiError;
use crate::http::ServerState;
use crate::http::content::{commit_and_publish, receive_body};
use crate::meta::{CommitRequest, NewContent};
use crate::timestamps::now_unix;
use axum::body::Body;
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use savesync_core::{Rev, SavePath};

pub async fn get(state: &ServerState, device: &DavDevice, path: &SavePath) -> Response {
    let meta = state.app.meta();
    let version = match meta.committed_version(device.user_id, path, None).await {
        Ok(Some(v)) => v,
        Ok(None) => return empty(StatusCode::NOT_FOUND),
        Err(e) => return from_api(&e.into()),
    };
    let Some(hash) = version.hash else { return empty(StatusCode::NOT_FOUND) };
    let (reader, _size) = match state.app.blobs().get(&hash).await {
        Ok(found) => found,
        Err(BlobError::NotFound) => {
            tracing::error!(%hash, path = %path, "blob of a committed version is missing");
            return empty(StatusCode::NOT_FOUND);
        }
        Err(e) => return from_api(&e.into()),
    };
    if let Err(e) = meta.record_synced(device.actor(), path, version.rev).await {
        tracing::debug!(error = %e, "could not record the rev served");
    }
    let stream = tokio_util::io::ReaderStream::new(reader);
    reply::body(StatusCode::OK, "application/octet-stream", version.size, Body::from_stream(stream))
}

pub async fn put(
    state: &ServerState,
    device: &DavDevice,
    path: SavePath,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    match store(state, device, path, headers, body).await {
        Ok(status) => empty(status),
        Err(e) => from_api(&e),
    }
}

async fn store(
    state: &ServerState,
    device: &DavDevice,
    path: SavePath,
    headers: &HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let limit = state.app.config().max_body_bytes;
    if declared_length(headers).is_some_and(|n| n > limit) {
        return Err(ApiError::new(savesync_core::ErrorCode::BodyTooLarge, "body too large"));
    }
    // RetroArch's next manifest lists this upload by its MD5.
    let staged = receive_body(state, body, limit, Digests::WithMd5).await?;
    let (hash, size) = (staged.hash(), staged.size());
    crate::quota::enforce(&state.app, device.user_id, hash, size).await?;
    let base = last_seen(state, device, &path).await?;
    let request = CommitRequest {
        actor: device.actor(),
        path,
        base_rev: base,
        content: NewContent::Bytes { hash, size },
        operation: "upload",
        now: now_unix(),
    };
    commit_and_publish(state, request, Some(staged)).await?;
    Ok(if base == Rev::NONE { StatusCode::CREATED } else { StatusCode::NO_CONTENT })
}

pub async fn delete(state: &ServerState, device: &DavDevice, path: SavePath) -> Response {
    tombstone(state, device, path, StatusCode::NO_CONTENT).await
}

/// `MOVE` of a save: only into `deleted/` (RetroArch's non-destructive delete).
pub async fn move_to_deleted(
    state: &ServerState,
    device: &DavDevice,
    path: SavePath,
    headers: &HeaderMap,
) -> Response {
    let Some(destination) =
        headers.get("destination").and_then(|v| v.to_str().ok()).and_then(destination_path)
    else {
        return empty(StatusCode::BAD_REQUEST);
    };
    match classify(destination, &device.root) {
        Ok(Target::Deleted { rest }) if !rest.is_empty() => {}
        Ok(_) => return empty(StatusCode::FORBIDDEN),
        Err(e) => {
            tracing::debug!(error = %e, "MOVE destination refused");
            return empty(StatusCode::BAD_REQUEST);
        }
    }
    match state.app.meta().head(device.user_id, &path).await {
        Ok(Some(head)) if !head.deleted => {}
        Ok(_) => return empty(StatusCode::NOT_FOUND),
        Err(e) => return from_api(&e.into()),
    }
    tombstone(state, device, path, StatusCode::CREATED).await
}

async fn tombstone(
    state: &ServerState,
    device: &DavDevice,
    path: SavePath,
    success: StatusCode,
) -> Response {
    let base = match last_seen(state, device, &path).await {
        Ok(base) => base,
        Err(e) => return from_api(&e),
    };
    let request = CommitRequest {
        actor: device.actor(),
        path,
        base_rev: base,
        content: NewContent::Tombstone,
        operation: "delete",
        now: now_unix(),
    };
    match commit_and_publish(state, request, None).await {
        Ok(_) => empty(success),
        Err(e) => from_api(&e),
    }
}

/// The rev of `path` this device last saw (`Rev::NONE`: never), the base of its writes.
async fn last_seen(
    state: &ServerState,
    device: &DavDevice,
    path: &SavePath,
) -> Result<Rev, ApiError> {
    Ok(state.app.meta().last_synced_rev(device.device_id, path).await?.unwrap_or(Rev::NONE))
}

pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}
