//! savesync-client: the device side of the savesync HTTP API (`/api/v1`).
//!
//! One [`Client`] per server and device token. Every endpoint of `docs/protocol.md` is a
//! method returning the JSON types of [`savesync_core::wire`]; failures are a
//! [`ClientError`] that tells a refusal by the server (with its stable [`ErrorCode`]) apart
//! from "could not reach the server" and local I/O problems. Transient failures are retried
//! with exponential backoff and jitter ([`RetryPolicy`]); large saves stream to and from
//! files ([`Client::upload_file`], [`Client::download_to_file`]); the change stream arrives
//! as a [`futures::Stream`] of cursors ([`Client::events`]).
//!
//! [`ErrorCode`]: savesync_core::ErrorCode

mod account;
mod bulk;
mod client;
mod error;
mod retry;
mod saves;
mod sse;
mod sync;
mod transfer;

pub use bulk::BulkItem;
pub use client::Client;
pub use error::{ClientError, Result};
pub use retry::RetryPolicy;
pub use saves::Downloaded;
pub use sse::{EventItem, SseDecoder, SseEvent};
pub use transfer::DownloadedFile;

/// Re-exported so users of the client need not depend on the core crate for the wire types.
pub use savesync_core::{self as core, wire};
