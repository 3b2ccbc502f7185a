//! How `object_store` failures map onto [`BlobError`]: a missing object is `NotFound`; an
//! unreachable, timing-out or 5xx-answering store is `Unavailable` (retrying later may
//! succeed; `GET /health` reports it); anything else is `Backend`.
//!
//! object_store retries transient failures itself before giving up, and does not export
//! its retry error type, so what gave up is recognised from the error chain: its
//! `HttpError` kind when the request never got an answer, or the status it reports.

use crate::blob::BlobError;
use object_store::client::{HttpError, HttpErrorKind};

/// Map one failure.
pub(crate) fn blob_error(e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound,
        e if is_transient(&e) => BlobError::Unavailable(e.to_string()),
        e => BlobError::Backend(Box::new(e)),
    }
}

/// True when some error in the chain is a connection failure or timeout, or reports a 5xx
/// or "slow down" answer. object_store's `HttpError` is transparent in the chain of the
/// retry error it gives up with, so what failed is recognised below it: the socket's
/// `io::Error`, hyper's error, or the wording.
fn is_transient(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if this_is_transient(err) {
            return true;
        }
        next = err.source();
    }
    false
}

/// One link of the chain, without its sources.
fn this_is_transient(err: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind::*;
    let http = err.downcast_ref::<HttpError>().is_some_and(|http| {
        matches!(
            http.kind(),
            HttpErrorKind::Connect
                | HttpErrorKind::Request
                | HttpErrorKind::Timeout
                | HttpErrorKind::Interrupted
        )
    });
    let socket = err.downcast_ref::<std::io::Error>().is_some_and(|io| {
        matches!(
            io.kind(),
            ConnectionRefused
                | ConnectionReset
                | ConnectionAborted
                | NotConnected
                | TimedOut
                | BrokenPipe
                | UnexpectedEof
                | AddrNotAvailable
                | HostUnreachable
                | NetworkUnreachable
        )
    });
    let hyper = err
        .downcast_ref::<hyper::Error>()
        .is_some_and(|h| h.is_closed() || h.is_incomplete_message() || h.is_timeout());
    http || socket || hyper || message_is_transient(&err.to_string())
}

/// object_store's wording for an answer it gave up retrying: "Server returned non-2xx
/// status code: 503 Service Unavailable: ..." or an error body such as `SlowDown`.
fn message_is_transient(message: &str) -> bool {
    let status_5xx = message.split("status code: ").skip(1).any(|rest| {
        rest.starts_with('5') && rest.as_bytes().get(1).is_some_and(u8::is_ascii_digit)
    });
    status_5xx
        || message.contains("status code: 429")
        || message.contains("SlowDown")
        || message.contains("InternalError")
        || message.contains("operation timed out")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_answers_are_recognised_by_their_wording() {
        let table = [
            ("Server returned non-2xx status code: 503 Service Unavailable: ", true),
            (
                "Error performing PUT http://x in 1s - Server returned non-2xx status code: 500 Internal Server Error: boom",
                true,
            ),
            ("Server returned non-2xx status code: 429 Too Many Requests", true),
            ("Server returned error response: <Error><Code>SlowDown</Code></Error>", true),
            ("Server returned non-2xx status code: 400 Bad Request: MalformedXML", false),
            ("Server returned non-2xx status code: 403 Forbidden: SignatureDoesNotMatch", false),
            ("Server returned non-2xx status code: 5", false),
            ("Encountered object with invalid path", false),
        ];
        for (message, transient) in table {
            assert_eq!(message_is_transient(message), transient, "{message}");
        }
    }

    /// An error whose kind says nothing, over the socket error.
    #[derive(Debug, thiserror::Error)]
    #[error("HTTP error")]
    struct Hidden(#[source] std::io::Error);

    #[test]
    fn not_found_and_connection_failures_map_to_their_variants() {
        let not_found = object_store::Error::NotFound { path: "x".into(), source: "gone".into() };
        assert!(matches!(blob_error(not_found), BlobError::NotFound));
        let refused = object_store::Error::Generic {
            store: "S3",
            source: Box::new(HttpError::new(
                HttpErrorKind::Connect,
                std::io::Error::other("refused"),
            )),
        };
        assert!(matches!(blob_error(refused), BlobError::Unavailable(_)));
        // As object_store reports a refused connection after its retries: the kind is
        // hidden, the socket error below it is not.
        let chain = object_store::Error::Generic {
            store: "S3",
            source: Box::new(Hidden(std::io::ErrorKind::ConnectionRefused.into())),
        };
        assert!(matches!(blob_error(chain), BlobError::Unavailable(_)));
        let decode = object_store::Error::Generic {
            store: "S3",
            source: Box::new(HttpError::new(
                HttpErrorKind::Decode,
                std::io::Error::other("bad xml"),
            )),
        };
        assert!(matches!(blob_error(decode), BlobError::Backend(_)));
    }
}
