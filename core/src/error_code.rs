//! Stable, machine-readable error codes carried in every API error body. Clients branch on
//! the code, never on the human message, so these strings never change meaning.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why the server refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not the JSON the endpoint expects.
    BadJson,
    /// A query parameter or header is missing or malformed.
    BadRequest,
    /// The save path failed [`crate::SavePath`] validation.
    BadPath,
    /// The uploaded bytes do not hash to the declared SHA-256.
    HashMismatch,
    /// The body is larger than the server accepts.
    BodyTooLarge,
    /// No token, or a token the server does not know.
    Unauthorized,
    /// The token belongs to a revoked device.
    DeviceRevoked,
    /// No such save, revision, version or device for this user.
    NotFound,
    /// Compare-and-swap failed: the base revision is not the head. The body carries the head.
    Conflict,
    /// The pairing code is unknown, used or expired.
    PairingCodeInvalid,
    /// Too many failed attempts (e.g. pairing codes) from this client; retry later.
    RateLimited,
    /// The server ran out of disk space; nothing was stored. Retry later.
    StorageFull,
    /// The server could not complete the request (database or I/O error).
    Internal,
    /// The server is shutting down or overloaded; retry later.
    Unavailable,
    /// The server's admin restricted this operation (minting pairing codes, revoking
    /// devices) to its command line (`admin_cli_only`).
    AdminOnly,
    /// Storing this would take the user over the server's byte quota; nothing was stored.
    /// Not transient: it succeeds only once old versions are pruned or the quota is raised.
    QuotaExceeded,
    /// The path would add a name that differs from an existing sibling only in case (or
    /// Unicode case folding): the two would collide on a case-insensitive file system.
    NameCollision,
}

impl ErrorCode {
    /// The HTTP status that goes with this code.
    #[must_use]
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadJson
            | ErrorCode::BadRequest
            | ErrorCode::BadPath
            | ErrorCode::HashMismatch => 400,
            ErrorCode::BodyTooLarge => 413,
            ErrorCode::Unauthorized | ErrorCode::DeviceRevoked => 401,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::PairingCodeInvalid | ErrorCode::AdminOnly => 403,
            ErrorCode::RateLimited => 429,
            ErrorCode::StorageFull => 507,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
            ErrorCode::QuotaExceeded => 507,
            ErrorCode::NameCollision => 409,
        }
    }

    /// True for failures a client should retry with backoff.
    #[must_use]
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorCode::Internal | ErrorCode::Unavailable | ErrorCode::StorageFull)
    }

    /// The snake_case string used on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::BadPath => "bad_path",
            ErrorCode::HashMismatch => "hash_mismatch",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::DeviceRevoked => "device_revoked",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PairingCodeInvalid => "pairing_code_invalid",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::StorageFull => "storage_full",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::AdminOnly => "admin_only",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::NameCollision => "name_collision",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn wire_string_matches_serde() {
        for code in [
            ErrorCode::BadJson,
            ErrorCode::BadRequest,
            ErrorCode::BadPath,
            ErrorCode::HashMismatch,
            ErrorCode::BodyTooLarge,
            ErrorCode::Unauthorized,
            ErrorCode::DeviceRevoked,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::PairingCodeInvalid,
            ErrorCode::RateLimited,
            ErrorCode::StorageFull,
            ErrorCode::Internal,
            ErrorCode::Unavailable,
            ErrorCode::AdminOnly,
            ErrorCode::QuotaExceeded,
            ErrorCode::NameCollision,
        ] {
            assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{}\"", code.as_str()));
        }
    }
}
