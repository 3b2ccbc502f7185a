//! [`ClientError`]: everything that can go wrong talking to the server, classified so the
//! caller can decide between "the server said no" (branch on [`ErrorCode`]), "try again
//! later" ([`ClientError::is_transient`]) and "we are offline" ([`ClientError::is_offline`]).
//!
//! Messages never contain the device token: it only ever travels in a header that
//! reqwest marks sensitive, and no variant stores request headers.

use savesync_core::wire::{ErrorBody, SaveMeta};
use savesync_core::{ContentHash, ErrorCode};
use std::path::PathBuf;
use std::time::Duration;

/// Shorthand used by every client method.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the request with a savesync error body (boxed: a conflict's
    /// head makes it large, and errors travel through every `Result`).
    #[error("server answered {status} {}: {}", body.code, body.message)]
    Api { status: u16, body: Box<ErrorBody> },
    /// A non-success status without a savesync error body (e.g. a proxy's HTML page).
    #[error("server answered {status} without a savesync error body: {snippet}")]
    UnexpectedStatus { status: u16, snippet: String },
    /// The request did not complete: connection refused or reset, DNS, TLS, broken body.
    #[error("transport error: {0}")]
    Transport(#[source] reqwest::Error),
    /// No answer (or no progress on a streamed body) within the allowed time.
    #[error("no answer from the server within {0:?}")]
    Timeout(Duration),
    /// Reading or writing a local file failed.
    #[error("local I/O on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Downloaded bytes do not hash to what the server announced; nothing was kept.
    #[error("downloaded bytes hash to {actual} but the server announced {expected}")]
    HashMismatch { expected: ContentHash, actual: ContentHash },
    /// The server's answer is not what the protocol says (bad JSON, missing header).
    #[error("could not decode the server's answer: {0}")]
    Decode(String),
    /// The base URL given to [`crate::Client::new`] is unusable.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The device token cannot be sent in a header (it is never echoed here).
    #[error("the device token contains characters that are not allowed in a header")]
    InvalidToken,
    /// The reqwest client could not be built (TLS backend initialisation).
    #[error("could not build the HTTP client: {0}")]
    Setup(#[source] reqwest::Error),
}

impl ClientError {
    /// The server's stable error code, when the server answered with one.
    #[must_use]
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { body, .. } => Some(body.code),
            _ => None,
        }
    }

    /// The HTTP status, when the server answered at all.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::UnexpectedStatus { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// For a `409 conflict`: the server's current head (`None` when no save exists at all,
    /// or for any other error).
    #[must_use]
    pub fn conflict_head(&self) -> Option<&SaveMeta> {
        match self {
            ClientError::Api { body, .. } if body.code == ErrorCode::Conflict => body.head.as_ref(),
            _ => None,
        }
    }

    /// For a `409 name_collision`: the head of the existing save the path collides with.
    #[must_use]
    pub fn name_collision_with(&self) -> Option<&SaveMeta> {
        match self {
            ClientError::Api { body, .. } if body.code == ErrorCode::NameCollision => {
                body.head.as_ref()
            }
            _ => None,
        }
    }

    /// True for a `409 conflict`.
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        self.code() == Some(ErrorCode::Conflict)
    }

    /// True when retrying later may succeed: the server could not be reached or did not
    /// answer in time, or it answered with a 5xx (including `503 unavailable` and
    /// `507 storage_full`) or `429 rate_limited`. Any other 4xx is not transient: the same
    /// request fails the same way.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport(_) | ClientError::Timeout(_) => true,
            // A 507 over the user's quota is a refusal: retrying the same bytes cannot
            // succeed until versions are pruned or the quota is raised.
            ClientError::Api { body, .. } if body.code == ErrorCode::QuotaExceeded => false,
            ClientError::Api { status, body } => {
                *status >= 500 || *status == 429 || body.code.is_transient()
            }
            ClientError::UnexpectedStatus { status, .. } => *status >= 500 || *status == 429,
            ClientError::Io { .. }
            | ClientError::HashMismatch { .. }
            | ClientError::Decode(_)
            | ClientError::InvalidUrl { .. }
            | ClientError::InvalidToken
            | ClientError::Setup(_) => false,
        }
    }

    /// True when the server could not be reached at all (refused, unroutable, DNS, connect
    /// timeout): the device should work offline and try again later. A request that reached
    /// the server and then failed is transient but not offline.
    #[must_use]
    pub fn is_offline(&self) -> bool {
        match self {
            ClientError::Transport(e) => e.is_connect(),
            _ => false,
        }
    }

    /// True when the request certainly never reached the server, so even a request that is
    /// not safe to repeat (pairing consumes its code) can be retried.
    pub(crate) fn never_sent(&self) -> bool {
        self.is_offline()
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ClientError {
        ClientError::Io { path: path.into(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: ErrorCode) -> ClientError {
        ClientError::Api {
            status: code.http_status(),
            body: Box::new(ErrorBody { code, message: "m".into(), head: None }),
        }
    }

    #[test]
    fn server_side_failures_are_transient_and_refusals_are_not() {
        assert!(api(ErrorCode::Internal).is_transient());
        assert!(api(ErrorCode::Unavailable).is_transient());
        assert!(api(ErrorCode::StorageFull).is_transient());
        for code in [
            ErrorCode::Conflict,
            ErrorCode::BadPath,
            ErrorCode::HashMismatch,
            ErrorCode::Unauthorized,
            ErrorCode::NotFound,
            ErrorCode::QuotaExceeded,
        ] {
            assert!(!api(code).is_transient(), "{code}");
        }
        let proxy = ClientError::UnexpectedStatus { status: 502, snippet: String::new() };
        assert!(proxy.is_transient());
    }

    #[test]
    fn code_and_conflict_head_come_from_the_body() {
        let e = api(ErrorCode::Conflict);
        assert_eq!(e.code(), Some(ErrorCode::Conflict));
        assert!(e.is_conflict());
        assert!(e.conflict_head().is_none());
        assert_eq!(ClientError::Decode("x".into()).code(), None);
    }
}
