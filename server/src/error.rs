//! [`ApiError`]: the one error type every handler returns. It renders as
//! `wire::ErrorBody` with the status its [`ErrorCode`] prescribes, so no handler ever builds
//! an error response by hand.

use crate::blob::BlobError;
use crate::meta::MetaError;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use savesync_core::ErrorCode;
use savesync_core::wire::{ErrorBody, SaveMeta};
use std::time::Duration;

/// Which backend failed, attached to 5xx responses so the metrics layer can count
/// SQLite and blob errors separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedBackend {
    Sqlite,
    Blob,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Boxed: a head is rare and large, and every `Result` carries this type.
    pub head: Option<Box<SaveMeta>>,
    backend: Option<FailedBackend>,
    /// Sent as `retry-after` (whole seconds, rounded up) on `rate_limited`.
    retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with a human message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), head: None, backend: None, retry_after: None }
    }

    /// 429 `rate_limited` telling the client when to try again.
    #[must_use]
    pub fn rate_limited(what: &str, retry_after: Duration) -> ApiError {
        let secs = retry_after_secs(retry_after);
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(ErrorCode::RateLimited, format!("too many {what}; retry in {secs} s"))
        }
    }

    /// 409 carrying the current head (or none when the save does not exist).
    #[must_use]
    pub fn conflict(head: Option<SaveMeta>) -> ApiError {
        let message = match &head {
            Some(h) => format!("base revision is stale: head of {} is rev {}", h.path, h.rev),
            None => "base revision is stale: the save does not exist".to_owned(),
        };
        ApiError { head: head.map(Box::new), ..ApiError::new(ErrorCode::Conflict, message) }
    }

    /// 409 `name_collision` carrying the head of the existing save `path` collides with.
    pub fn name_collision(path: &str, existing: SaveMeta) -> ApiError {
        let message = format!(
            "{path:?} differs only in case from the existing save {:?} (in its name or a \
             directory's): a case-insensitive share would see one name",
            existing.path.as_str()
        );
        ApiError {
            head: Some(Box::new(existing)),
            ..ApiError::new(ErrorCode::NameCollision, message)
        }
    }

    pub fn not_found(what: impl std::fmt::Display) -> ApiError {
        ApiError::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Internal, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body =
            ErrorBody { code: self.code, message: self.message, head: self.head.map(|h| *h) };
        let mut response = (status, Json(body)).into_response();
        if let Some(backend) = self.backend {
            response.extensions_mut().insert(backend);
        }
        if let Some(wait) = self.retry_after {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after_secs(wait)));
        }
        response
    }
}

/// `retry-after` takes whole seconds; round up so a client that obeys it is admitted.
fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

impl From<MetaError> for ApiError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::PairingCodeInvalid => ApiError::new(
                ErrorCode::PairingCodeInvalid,
                "pairing code is unknown, used or expired",
            ),
            MetaError::DeviceRevoked => {
                ApiError::new(ErrorCode::DeviceRevoked, "this device has been revoked")
            }
            MetaError::StorageFull => {
                tracing::error!("metadata store is out of disk space");
                ApiError {
                    backend: Some(FailedBackend::Sqlite),
                    ..ApiError::new(
                        ErrorCode::StorageFull,
                        "the server is out of disk space; nothing was stored",
                    )
                }
            }
            other => {
                tracing::error!(error = %other, "metadata store failed");
                ApiError {
                    backend: Some(FailedBackend::Sqlite),
                    ..ApiError::internal("the metadata store failed; retry later")
                }
            }
        }
    }
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::TooLarge { limit } => ApiError::new(
                ErrorCode::BodyTooLarge,
                format!("body is larger than the limit of {limit} bytes"),
            ),
            BlobError::HashMismatch { declared, actual } => ApiError::new(
                ErrorCode::HashMismatch,
                format!("body hashes to {actual}, not the declared {declared}"),
            ),
            BlobError::StorageFull => ApiError {
                backend: Some(FailedBackend::Blob),
                ..ApiError::new(
                    ErrorCode::StorageFull,
                    "the server is out of disk space; nothing was stored",
                )
            },
            BlobError::NotFound => ApiError::not_found("content"),
            other @ (BlobError::Unavailable(_) | BlobError::Backend(_)) => {
                tracing::error!(error = %other, "blob store failed");
                ApiError {
                    backend: Some(FailedBackend::Blob),
                    ..ApiError::internal("the blob store failed; retry later")
                }
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(ErrorCode::BodyTooLarge, rejection.body_text());
        }
        ApiError::new(ErrorCode::BadJson, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request(rejection.body_text())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        tracing::error!(error = %e, "blocking task failed");
        ApiError::internal("internal task failed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_full_from_the_blob_volume_is_507_storage_full() {
        let blob = BlobError::from(std::io::Error::from_raw_os_error(28));
        let response = ApiError::from(blob).into_response();
        assert_eq!(response.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(response.extensions().get::<FailedBackend>(), Some(&FailedBackend::Blob));
    }

    #[test]
    fn pairing_code_errors_are_403_and_not_counted_as_backend_failures() {
        let response = ApiError::from(MetaError::PairingCodeInvalid).into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(response.extensions().get::<FailedBackend>().is_none());
    }

    #[test]
    fn rate_limited_is_429_with_retry_after_rounded_up_to_whole_seconds() {
        let response =
            ApiError::rate_limited("attempts", Duration::from_millis(1500)).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[RETRY_AFTER], "2");
        let response = ApiError::rate_limited("attempts", Duration::ZERO).into_response();
        assert_eq!(response.headers()[RETRY_AFTER], "1");
    }

    #[test]
    fn a_full_metadata_store_is_507_storage_full() {
        let response = ApiError::from(MetaError::StorageFull).into_response();
        assert_eq!(response.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(response.extensions().get::<FailedBackend>(), Some(&FailedBackend::Sqlite));
    }

    #[test]
    fn other_metadata_failures_are_500_counted_against_the_metadata_store() {
        for e in [
            MetaError::Unavailable("busy".into()),
            MetaError::Corrupt("bad row".into()),
            MetaError::backend(std::fmt::Error),
        ] {
            let response = ApiError::from(e).into_response();
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(response.extensions().get::<FailedBackend>(), Some(&FailedBackend::Sqlite));
        }
    }

    #[test]
    fn conflict_carries_the_head_in_the_body() {
        let err = ApiError::conflict(None);
        assert_eq!(err.code, ErrorCode::Conflict);
        assert_eq!(err.into_response().status(), StatusCode::CONFLICT);
    }
}
