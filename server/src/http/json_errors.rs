//! The last line of "every error is JSON": any 4xx/5xx response that is not already a
//! `wire::ErrorBody` (axum's bare 405 for a wrong method, a plain-text rejection from a
//! layer) is rewritten into one, keeping its status and headers (such as `Allow`).
//!
//! Handlers never rely on this: their errors are [`crate::error::ApiError`] already.
//! It exists so a client can parse every error the same way.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use savesync_core::ErrorCode;
use savesync_core::wire::ErrorBody;

/// Longest original body kept as the message (axum's texts are one short line).
const MAX_MESSAGE_BYTES: usize = 1024;

pub async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || is_json(&response)
        || is_html(&response)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let original = axum::body::to_bytes(body, MAX_MESSAGE_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if status == StatusCode::METHOD_NOT_ALLOWED {
        let allowed = parts.headers.get(ALLOW).and_then(|v| v.to_str().ok()).unwrap_or("none");
        format!("method {method} is not allowed on {path}; allowed: {allowed}")
    } else if original.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        original
    };
    let body = ErrorBody { code: code_for(status), message, head: None };
    let Ok(json) = serde_json::to_vec(&body) else {
        return Response::from_parts(parts, Body::empty());
    };
    parts.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(json.len()));
    Response::from_parts(parts, Body::from(json))
}

/// The web dashboard's own error pages (`crate::web::error`) stay HTML.
fn is_html(response: &Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The stable code for a status produced outside the handlers. The status itself is
/// kept, so a 405 says `bad_request` with status 405.
fn code_for(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::BodyTooLarge,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        StatusCode::INSUFFICIENT_STORAGE => ErrorCode::StorageFull,
        StatusCode::REQUEST_TIMEOUT
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => ErrorCode::Unavailable,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::BadRequest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_from_outside_the_handlers_get_stable_codes() {
        assert_eq!(code_for(StatusCode::METHOD_NOT_ALLOWED), ErrorCode::BadRequest);
        assert_eq!(code_for(StatusCode::UNSUPPORTED_MEDIA_TYPE), ErrorCode::BadRequest);
        assert_eq!(code_for(StatusCode::PAYLOAD_TOO_LARGE), ErrorCode::BodyTooLarge);
        assert_eq!(code_for(StatusCode::REQUEST_TIMEOUT), ErrorCode::Unavailable);
        assert_eq!(code_for(StatusCode::BAD_GATEWAY), ErrorCode::Internal);
    }
}
