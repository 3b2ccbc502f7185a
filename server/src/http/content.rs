//! Save content: download (head, a retained rev, or any kept version by id), upload and delete with compare-and-swap.
//!
//! An upload streams into a staging file while hashing (never buffering the whole body),
//! enforcing `max_body_bytes` both from `Content-Length` up front and while streaming. Only
//! a body whose hash matches `x-savesync-sha256` is made visible, and only then is the
//! compare-and-swap attempted, so a bad upload stores nothing.

use super::ServerState;
use super::extract::{ApiQuery, AuthDevice, parse_path};
use crate::blob::{BlobError, Digests, StagedBlob};
use crate::error::ApiError;
use crate::meta::{CommitOutcome, CommitRequest, NewContent};
use crate::metrics::add;
use crate::publish::PublishError;
use crate::quota;
use crate::timestamps::now_unix;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use savesync_core::wire::{HASH_HEADER, REV_HEADER, SaveMeta};
use savesync_core::{ContentHash, ErrorCode, Rev, SavePath};
use serde::Deserialize;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, Deserialize)]
pub struct ReadQuery {
    path: String,
    rev: Option<u64>,
    /// A history entry by its `version_id` (commit or conflict version), instead of a rev.
    version_id: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct WriteQuery {
    path: String,
    base_rev: u64,
}

pub async fn download(
    State(state): State<ServerState>,
    auth: AuthDevice,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Response, ApiError> {
    let path = parse_path(&q.path)?;
    let not_found = || match (q.rev, q.version_id) {
        (_, Some(id)) => ApiError::not_found(format!("version {id} of save {:?}", q.path)),
        (Some(rev), None) => ApiError::not_found(format!("rev {rev} of save {:?}", q.path)),
        (None, None) => ApiError::not_found(format!("save {:?}", q.path)),
    };
    let (user, lookup) = (auth.user_id, path.clone());
    let version = match (q.rev, q.version_id) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give rev or version_id, not both"));
        }
        (_, Some(id)) => state.app.meta().version_by_id(user, &lookup, id).await?,
        (rev, None) => state.app.meta().committed_version(user, &lookup, rev.map(Rev)).await?,
    }
    .ok_or_else(not_found)?;
    // A tombstone has no bytes to serve.
    let hash = version.hash.ok_or_else(not_found)?;
    let (reader, _size) = match state.app.blobs().get(&hash).await {
        Ok(found) => found,
        Err(BlobError::NotFound) => {
            // The database references bytes the blob store does not have: someone deleted
            // or restored files by hand. Say so loudly; the device sees the version as gone.
            tracing::error!(%hash, path = %path, "blob of a committed version is missing");
            return Err(not_found());
        }
        Err(e) => return Err(e.into()),
    };
    add(&state.app.metrics().download_bytes, version.size);
    if q.rev.is_none() && q.version_id.is_none() {
        remember_synced(&state, &auth, path, version.rev);
    }
    let stream = tokio_util::io::ReaderStream::new(reader);
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(version.size));
    headers.insert(REV_HEADER, HeaderValue::from(version.rev.0));
    if let Ok(v) = HeaderValue::from_str(&hash.to_hex()) {
        headers.insert(HASH_HEADER, v);
    }
    Ok(response)
}

/// Per-device sync state is informational; update it without delaying the download.
fn remember_synced(state: &ServerState, auth: &AuthDevice, path: SavePath, rev: Rev) {
    let (app, actor) = (state.app.clone(), auth.actor());
    tokio::spawn(async move {
        if let Err(e) = app.meta().record_synced(actor, &path, rev).await {
            tracing::debug!(error = %e, "could not record last synced rev");
        }
    });
}

pub async fn upload(
    State(state): State<ServerState>,
    auth: AuthDevice,
    ApiQuery(q): ApiQuery<WriteQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SaveMeta>, ApiError> {
    let path = parse_path(&q.path)?;
    let declared: ContentHash = headers
        .get(HASH_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request(format!("missing {HASH_HEADER} header")))?
        .parse()
        .map_err(|e| ApiError::bad_request(format!("{HASH_HEADER}: {e}")))?;
    let limit = state.app.config().max_body_bytes;
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("body is larger than the limit of {limit} bytes"),
        ));
    }
    if let Some(announced) = announced {
        quota::enforce(&state.app, auth.user_id, declared, announced).await?;
    }
    let staged = receive_body(&state, body, limit, Digests::Sha256).await?;
    // An announced length is the exact size (hyper ends a body that disagrees with it), so
    // the check above was already on it.
    if announced != Some(staged.size()) {
        quota::enforce(&state.app, auth.user_id, declared, staged.size()).await?;
    }
    add(&state.app.metrics().upload_bytes, staged.size());
    let request = CommitRequest {
        actor: auth.actor(),
        path,
        base_rev: Rev(q.base_rev),
        content: NewContent::Bytes { hash: declared, size: staged.size() },
        operation: "upload",
        now: now_unix(),
    };
    commit_and_publish(&state, request, Some(staged)).await.map(Json)
}

/// Stream the body into the blob store's staging, computing `digests`. A client that stops
/// sending for longer than the request timeout is cut off (`unavailable`, retryable)
/// instead of holding staging open.
pub(crate) async fn receive_body(
    state: &ServerState,
    body: Body,
    limit: u64,
    digests: Digests,
) -> Result<Box<dyn StagedBlob>, ApiError> {
    let idle = state.app.config().request_timeout;
    // Why the body stream ended early, if it was the client's doing rather than the store's.
    let cut_short = Arc::new(Mutex::new(None::<ApiError>));
    let why = Arc::clone(&cut_short);
    let chunks = async_stream::stream! {
        let mut chunks = body.into_data_stream();
        loop {
            let failure = match tokio::time::timeout(idle, chunks.next()).await {
                Ok(None) => break,
                Ok(Some(Ok(chunk))) => {
                    yield Ok(chunk);
                    continue;
                }
                Err(_) => {
                    ApiError::new(ErrorCode::Unavailable, "upload stalled; nothing was stored")
                }
                Ok(Some(Err(e))) => ApiError::bad_request(format!("could not read the body: {e}")),
            };
            let message = failure.message.clone();
            *why.lock().unwrap_or_else(PoisonError::into_inner) = Some(failure);
            yield Err(std::io::Error::other(message));
            break;
        }
    };
    match state.app.blobs().stage(Box::pin(chunks), limit, digests).await {
        Ok(staged) => Ok(staged),
        Err(e) => Err(cut_short
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_else(|| e.into())),
    }
}

pub async fn delete(
    State(state): State<ServerState>,
    auth: AuthDevice,
    ApiQuery(q): ApiQuery<WriteQuery>,
) -> Result<Json<SaveMeta>, ApiError> {
    let request = CommitRequest {
        actor: auth.actor(),
        path: parse_path(&q.path)?,
        base_rev: Rev(q.base_rev),
        content: NewContent::Tombstone,
        operation: "delete",
        now: now_unix(),
    };
    commit_and_publish(&state, request, None).await.map(Json)
}

/// The shared write path (`crate::publish`), its outcome mapped to the HTTP answer.
pub async fn commit_and_publish(
    state: &ServerState,
    request: CommitRequest,
    staged: Option<Box<dyn StagedBlob>>,
) -> Result<SaveMeta, ApiError> {
    let shown = request.path.to_string();
    let outcome = match crate::publish::commit_and_publish(&state.app, &request, staged).await {
        Ok(outcome) => outcome,
        Err(PublishError::Blob(e)) => return Err(e.into()),
        Err(PublishError::Meta(e)) => return Err(e.into()),
        Err(PublishError::ContentGone) => {
            return Err(ApiError::not_found("content of that version"));
        }
    };
    match outcome {
        CommitOutcome::Committed(meta) | CommitOutcome::Unchanged(meta) => Ok(meta),
        CommitOutcome::Conflict(head) => Err(ApiError::conflict(head)),
        CommitOutcome::NotFound => Err(ApiError::not_found(format!("save {shown:?}"))),
        CommitOutcome::NameCollision(existing) => Err(ApiError::name_collision(&shown, existing)),
    }
}
