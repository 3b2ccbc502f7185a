//! Responses of the WebDAV face. Errors carry no body at all (`Content-Length: 0`): older
//! RetroArch builds corrupt memory logging a failed response's body, and 1.22 writes a
//! 404's body into the local file. Every response is framed and says `Connection: close`,
//! so RetroArch (1.22 reuses idle connections) never sends a request down a connection the
//! server's idle timeout is about to close.

use crate::error::ApiError;
use axum::body::Body;
use axum::http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;

/// The realm offered with a 401. Basic only: RetroArch sends Basic up front and retries
/// with Digest only when a 401 offers Digest, so offering it would gain nothing.
const CHALLENGE: &str = "Basic realm=\"savesync\", charset=\"UTF-8\"";

/// A response with no body.
pub fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `401` with the Basic challenge.
pub fn unauthorized() -> Response {
    let mut response = empty(StatusCode::UNAUTHORIZED);
    response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
    response
}

/// A body of known length.
pub fn body(status: StatusCode, content_type: &'static str, length: u64, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The API's error as a bodiless response with the same status (409 for a conflict, 507
/// for the quota, 413 for an oversized body, 503 when a store is unavailable).
pub fn from_api(error: &ApiError) -> Response {
    let status =
        StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::warn!(code = ?error.code, message = %error.message, "WebDAV request failed");
    } else {
        tracing::debug!(code = ?error.code, message = %error.message, "WebDAV request refused");
    }
    empty(status)
}
