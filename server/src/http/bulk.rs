//! `POST /saves/bulk`: the heads of many saves in one response, as the length-prefixed
//! frames of `savesync_core::bulk` (docs/protocol.md "Bulk download"). A fresh device or a
//! burst of remote changes fetches hundreds of small saves this way instead of one request
//! each.
//!
//! Bounded: at most `MAX_BULK_PATHS` paths and `MAX_BULK_BODY_BYTES` of request; the
//! response is produced lazily, one save at a time, each streamed from the blob store in
//! chunks (never held whole), so memory does not grow with the number or size of saves.
//! A path that is not a live save of this user is a `missing` frame, not an error for the
//! batch; a bad path or too many paths is a 400 before anything is sent.

use super::ServerState;
use super::extract::{ApiJson, AuthDevice, parse_path};
use crate::blob::BlobError;
use crate::error::ApiError;
use crate::meta::Actor;
use crate::metrics::add;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use savesync_core::bulk::{
    BULK_CONTENT_TYPE, BulkHeader, BulkRequest, MAX_BULK_PATHS, encode_header,
};
use savesync_core::{Rev, SavePath};
use std::io;

/// Largest request body.
pub const MAX_BODY: usize = savesync_core::bulk::MAX_BULK_BODY_BYTES;

/// Read size from the blob store.
const CHUNK: usize = 64 * 1024;

pub async fn bulk(
    State(state): State<ServerState>,
    auth: AuthDevice,
    ApiJson(req): ApiJson<BulkRequest>,
) -> Result<Response, ApiError> {
    if req.paths.len() > MAX_BULK_PATHS {
        return Err(ApiError::bad_request(format!(
            "{} paths in one bulk request; at most {MAX_BULK_PATHS}",
            req.paths.len()
        )));
    }
    let paths = req.paths.iter().map(|p| parse_path(p)).collect::<Result<Vec<_>, _>>()?;
    let limit = req.max_save_bytes.unwrap_or(u64::MAX).min(state.app.config().max_body_bytes);
    let stream = frames(state, auth.actor(), paths, limit);
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(BULK_CONTENT_TYPE));
    Ok(response)
}

/// The response body: one frame per path, then the end frame. A store failure after the
/// first byte cuts the stream short (the device sees no end frame and retries).
fn frames(
    state: ServerState,
    actor: Actor,
    paths: Vec<SavePath>,
    limit: u64,
) -> impl futures::Stream<Item = io::Result<Bytes>> + Send + 'static {
    async_stream::try_stream! {
        let mut count = 0u64;
        let mut synced: Vec<(SavePath, Rev)> = Vec::new();
        for path in paths {
            let version = state
                .app
                .meta()
                .committed_version(actor.user_id, &path, None)
                .await
                .map_err(|e| io::Error::other(e.to_string()))?;
            count += 1;
            let Some((version, hash)) = version.and_then(|v| v.hash.map(|h| (v, h))) else {
                yield Bytes::from(encode_header(&BulkHeader::Missing { path }));
                continue;
            };
            if version.size > limit {
                let header = BulkHeader::TooLarge { path, rev: version.rev, size: version.size };
                yield Bytes::from(encode_header(&header));
                continue;
            }
            let got = state.app.blobs().get(&hash).await;
            if matches!(got, Err(BlobError::NotFound)) {
                // The database references bytes the blob store does not have (files deleted
                // by hand): say so loudly; the device sees the save as gone.
                tracing::error!(%hash, %path, "blob of a committed version is missing");
                yield Bytes::from(encode_header(&BulkHeader::Missing { path }));
                continue;
            }
            let (reader, _) = got.map_err(|e| io::Error::other(e.to_string()))?;
            let header =
                BulkHeader::Save { path: path.clone(), rev: version.rev, hash, size: version.size };
            yield Bytes::from(encode_header(&header));
            let mut left = version.size;
            let mut chunks = tokio_util::io::ReaderStream::with_capacity(reader, CHUNK);
            while left > 0 {
                let mut chunk = chunks.next().await.ok_or_else(|| {
                    io::Error::new(io::ErrorKind::UnexpectedEof, "blob shorter than its size")
                })??;
                if chunk.len() as u64 > left {
                    chunk.truncate(left as usize);
                }
                left -= chunk.len() as u64;
                yield chunk;
            }
            add(&state.app.metrics().download_bytes, version.size);
            synced.push((path, version.rev));
        }
        yield Bytes::from(encode_header(&BulkHeader::End { frames: count }));
        remember_synced(&state, actor, synced);
    }
}

/// Per-device sync state is informational: one write for the batch, off the response.
fn remember_synced(state: &ServerState, actor: Actor, synced: Vec<(SavePath, Rev)>) {
    if synced.is_empty() {
        return;
    }
    let app = state.app.clone();
    tokio::spawn(async move {
        if let Err(e) = app.meta().record_synced_many(actor, &synced).await {
            tracing::debug!(error = %e, "could not record last synced revs");
        }
    });
}
