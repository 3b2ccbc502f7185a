//! [`WebError`]: how a dashboard request fails, rendered as a small HTML page (never the
//! device API's JSON). "Not signed in" is a redirect to the login page; another user's
//! save, device or version is a plain 404, indistinguishable from one that never existed.

use super::layout;
use crate::error::ApiError;
use crate::meta::MetaError;
use axum::http::StatusCode;
use axum::http::header::RETRY_AFTER;
use axum::response::{IntoResponse, Redirect, Response};
use std::time::Duration;

#[derive(Debug)]
pub enum WebError {
    /// No (valid) session: go to the login page.
    SignIn,
    NotFound,
    Forbidden(&'static str),
    BadRequest(String),
    RateLimited(Duration),
    /// Anything the device API would answer (store failures, quota, ...).
    Api(ApiError),
}

impl From<ApiError> for WebError {
    fn from(e: ApiError) -> Self {
        WebError::Api(e)
    }
}

impl From<MetaError> for WebError {
    fn from(e: MetaError) -> Self {
        WebError::Api(ApiError::from(e))
    }
}

impl From<crate::blob::BlobError> for WebError {
    fn from(e: crate::blob::BlobError) -> Self {
        WebError::Api(ApiError::from(e))
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            WebError::SignIn => return Redirect::to("/web/login").into_response(),
            WebError::NotFound => {
                (StatusCode::NOT_FOUND, "Not found: there is nothing here for you.".to_owned())
            }
            WebError::Forbidden(why) => (StatusCode::FORBIDDEN, format!("Refused: {why}.")),
            WebError::BadRequest(why) => (StatusCode::BAD_REQUEST, why),
            WebError::RateLimited(wait) => {
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let mut response = layout::error_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!("Too many sign-in attempts. Try again in {} s.", secs.max(1)),
                );
                response.headers_mut().insert(RETRY_AFTER, secs.max(1).into());
                return response;
            }
            WebError::Api(e) => {
                let status = StatusCode::from_u16(e.code.http_status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                // A refusal says why (quota, name collision); a failure says only that.
                let message = if status.is_client_error() {
                    e.message.clone()
                } else {
                    status_text(status).to_owned()
                };
                let mut inner = e.into_response();
                // Keep the backend marker the metrics layer counts; replace the JSON body.
                let mut response = layout::error_page(status, &message);
                if let Some(b) = inner.extensions_mut().remove::<crate::error::FailedBackend>() {
                    response.extensions_mut().insert(b);
                }
                return response;
            }
        };
        layout::error_page(status, &message)
    }
}

fn status_text(status: StatusCode) -> &'static str {
    match status.as_u16() {
        503 => "The server is busy: try again in a moment.",
        507 => "The server has no room for that.",
        _ => "Something went wrong on the server; try again later.",
    }
}

/// Unknown dashboard URLs.
pub async fn not_found_page() -> WebError {
    WebError::NotFound
}
