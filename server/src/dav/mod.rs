//! The WebDAV face for RetroArch's Cloud Sync (RetroArch 1.16+, `network/cloud_sync/webdav.c`
//! and `tasks/task_cloudsync.c` in libretro/RetroArch), mounted at `/dav/` beside the API.
//!
//! RetroArch speaks a small fixed dialect: `OPTIONS` on the base URL (with Basic auth up
//! front), `GET manifest.server`, then per file `GET`, `MKCOL` of each parent followed by
//! `PUT`, and `DELETE` or (its default, non-destructive mode) `MKCOL deleted/...` followed
//! by `MOVE` into `deleted/`, and finally `PUT manifest.server`. No `PROPFIND`, `LOCK` or
//! ETags. This module serves exactly that, as a translation onto the same core as the API:
//! commits with a base rev, history, conflict versions, the changes feed.
//!
//! - [`paths`]: decoding and classifying request paths below the device's library root.
//! - [`auth`]: Basic auth (device name, device token); WebDAV devices only.
//! - [`manifest`]: `manifest.server` generated from the database, MD5 hex per save.
//! - [`files`]: `GET`, `PUT`, `DELETE`, `MOVE` into `deleted/`; no silent overwrite.
//! - [`folders`]: `MKCOL` over a library that has no folders of its own.
//! - [`reply`]: bodiless errors, framed bodies, `Connection: close`.
//! - [`pairing`]: creating a RetroArch device and the settings to type into RetroArch.
//!
//! These routes sit outside the API's JSON-error layer on purpose: RetroArch must never be
//! sent an error body.

mod auth;
mod files;
mod folders;
mod manifest;
mod pairing;
pub mod paths;
mod reply;

pub use pairing::{DavCredentials, RetroArchSettings, create_device, retroarch_settings};

use crate::http::ServerState;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{ALLOW, TRANSFER_ENCODING};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::any;
use futures::StreamExt;
use paths::Target;

/// The methods served, for `Allow`.
const ALLOWED: &str = "OPTIONS, GET, HEAD, PUT, DELETE, MKCOL, MOVE";

/// The `/dav` routes (every method goes to one dispatcher).
pub fn router() -> Router<ServerState> {
    Router::new()
        .route(paths::MOUNT, any(handle))
        .route(&format!("{}/", paths::MOUNT), any(handle))
        .route(&format!("{}/{{*rest}}", paths::MOUNT), any(handle))
}

async fn handle(State(state): State<ServerState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let response = dispatch(&state, &parts, body).await;
    tracing::debug!(
        method = %parts.method,
        path = %parts.uri.path(),
        status = response.status().as_u16(),
        "WebDAV request"
    );
    response
}

async fn dispatch(state: &ServerState, parts: &axum::http::request::Parts, body: Body) -> Response {
    let device = match auth::authenticate(state, &parts.headers).await {
        Ok(device) => device,
        Err(auth::Refused::Unauthorized) => return reply::unauthorized(),
        Err(auth::Refused::Store(e)) => return reply::from_api(&e.into()),
    };
    let target = match paths::classify(parts.uri.path(), &device.root) {
        Ok(target) => target,
        Err(e) => {
            tracing::debug!(error = %e, "WebDAV path refused");
            return reply::empty(StatusCode::BAD_REQUEST);
        }
    };
    let headers = &parts.headers;
    match (parts.method.as_str(), target) {
        ("OPTIONS", _) => options(),
        ("GET" | "HEAD", Target::Manifest) => serve_manifest(state, &device).await,
        ("GET" | "HEAD", Target::Library { path, top: false }) => {
            files::get(state, &device, &path).await
        }
        ("GET" | "HEAD", _) => reply::empty(StatusCode::NOT_FOUND),
        ("PUT", Target::Manifest) => discard(state, body).await,
        ("PUT", Target::Library { path, top: false }) => {
            files::put(state, &device, path, headers, body).await
        }
        ("DELETE", Target::Library { path, top: false }) if parts.uri.path().ends_with('/') => {
            folders::delete(state, &device, &path).await
        }
        ("DELETE", Target::Library { path, top: false }) => {
            files::delete(state, &device, path).await
        }
        ("MOVE", Target::Library { path, top: false }) => {
            files::move_to_deleted(state, &device, path, headers).await
        }
        ("PUT" | "DELETE" | "MOVE", _) => reply::empty(StatusCode::FORBIDDEN),
        ("MKCOL", target) => {
            let has_body = headers.contains_key(TRANSFER_ENCODING)
                || files::declared_length(headers).is_some_and(|n| n > 0);
            folders::mkcol(state, &device, target, has_body).await
        }
        _ => {
            let mut response = reply::empty(StatusCode::METHOD_NOT_ALLOWED);
            response.headers_mut().insert(ALLOW, HeaderValue::from_static(ALLOWED));
            response
        }
    }
}

/// `OPTIONS`: WebDAV class 1 (RetroArch only checks for a 2xx; clients such as litmus look
/// for the `DAV` header).
fn options() -> Response {
    let mut response = reply::empty(StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert("dav", HeaderValue::from_static("1"));
    headers.insert(ALLOW, HeaderValue::from_static(ALLOWED));
    response
}

async fn serve_manifest(state: &ServerState, device: &auth::DavDevice) -> Response {
    match manifest::build(&state.app, device).await {
        Ok(entries) => {
            let json = manifest::to_json(&entries);
            let length = json.len() as u64;
            reply::body(StatusCode::OK, "application/json", length, Body::from(json))
        }
        Err(e) => reply::from_api(&e.into()),
    }
}

/// `PUT manifest.server`: read (bounded, with the idle deadline uploads have) and dropped.
async fn discard(state: &ServerState, body: Body) -> Response {
    let limit = state.app.config().max_body_bytes;
    let idle = state.app.config().request_timeout;
    let mut chunks = body.into_data_stream();
    let mut total: u64 = 0;
    loop {
        match tokio::time::timeout(idle, chunks.next()).await {
            Ok(None) => return reply::empty(StatusCode::NO_CONTENT),
            Ok(Some(Ok(chunk))) => {
                total = total.saturating_add(chunk.len() as u64);
                if total > limit {
                    return reply::empty(StatusCode::PAYLOAD_TOO_LARGE);
                }
            }
            Ok(Some(Err(_))) => return reply::empty(StatusCode::BAD_REQUEST),
            Err(_) => return reply::empty(StatusCode::REQUEST_TIMEOUT),
        }
    }
}
