//! [`Client::bulk_download`]: the heads of many saves in one `POST /saves/bulk` response
//! (docs/protocol.md "Bulk download"), as a stream of [`BulkItem`]s.
//!
//! Memory is bounded: the response is read chunk by chunk through
//! `savesync_core::bulk::FrameDecoder`, which holds at most one save of at most
//! `max_save_bytes` (the server announces a bigger one as `too_large` instead of sending
//! it). Each save's hash is checked before it is handed out; a stream cut short before its
//! end frame is an error, never a silent "that was all".

use crate::client::{Client, transport_error};
use crate::error::{ClientError, Result};
use crate::retry::Repeat;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, stream};
use reqwest::Method;
use savesync_core::bulk::{BulkError, BulkFrame, BulkRequest, FrameDecoder, MAX_BULK_PATHS};
use savesync_core::{Rev, SavePath, Version};
use std::collections::VecDeque;

/// One save of a bulk download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkItem {
    /// The head of `path`: its version and its verified bytes.
    Save { path: SavePath, version: Version, bytes: Bytes },
    /// No live save at `path`.
    Missing { path: SavePath },
    /// The head is larger than the request's limit: download it on its own.
    TooLarge { path: SavePath, rev: Rev, size: u64 },
}

impl BulkItem {
    /// The save this item is about.
    #[must_use]
    pub fn path(&self) -> &SavePath {
        match self {
            BulkItem::Save { path, .. }
            | BulkItem::Missing { path }
            | BulkItem::TooLarge { path, .. } => path,
        }
    }
}

impl From<BulkError> for ClientError {
    fn from(e: BulkError) -> ClientError {
        match e {
            BulkError::HashMismatch { expected, actual, .. } => {
                ClientError::HashMismatch { expected, actual }
            }
            other => ClientError::Decode(format!("bulk stream: {other}")),
        }
    }
}

struct Reading {
    response: reqwest::Response,
    decoder: FrameDecoder,
    ready: VecDeque<BulkItem>,
    done: bool,
}

impl Client {
    /// Stream the heads of `paths` (at most `MAX_BULK_PATHS`), each at most `max_save_bytes`
    /// (bigger ones come as [`BulkItem::TooLarge`]), in the order given. The request is
    /// retried under the client's policy until the answer starts; an error in the stream
    /// ends it.
    pub async fn bulk_download(
        &self,
        paths: &[SavePath],
        max_save_bytes: u64,
    ) -> Result<BoxStream<'static, Result<BulkItem>>> {
        if paths.len() > MAX_BULK_PATHS {
            return Err(ClientError::Decode(format!(
                "{} paths in one bulk request; at most {MAX_BULK_PATHS}",
                paths.len()
            )));
        }
        let body = BulkRequest {
            paths: paths.iter().map(|p| p.as_str().to_owned()).collect(),
            max_save_bytes: Some(max_save_bytes),
        };
        let url = self.api_url(&["saves", "bulk"]);
        let idle = self.request_timeout();
        let response = self
            .retrying(Repeat::Safe, || async {
                let request = self.request(Method::POST, url.clone()).json(&body);
                tokio::time::timeout(idle, self.send(request, None))
                    .await
                    .map_err(|_| ClientError::Timeout(idle))?
            })
            .await?;
        let reading = Reading {
            response,
            decoder: FrameDecoder::new(max_save_bytes),
            ready: VecDeque::new(),
            done: false,
        };
        let items = stream::unfold(reading, move |mut r| async move {
            loop {
                if let Some(item) = r.ready.pop_front() {
                    return Some((Ok(item), r));
                }
                if r.done {
                    return None;
                }
                match next_frames(&mut r, idle).await {
                    Ok(()) => {}
                    Err(e) => {
                        r.done = true;
                        r.ready.clear();
                        return Some((Err(e), r));
                    }
                }
            }
        });
        Ok(items.boxed())
    }
}

/// Read the next chunk and decode what it completes (or note the end).
async fn next_frames(r: &mut Reading, idle: std::time::Duration) -> Result<()> {
    let chunk = tokio::time::timeout(idle, r.response.chunk())
        .await
        .map_err(|_| ClientError::Timeout(idle))?
        .map_err(|e| transport_error(e, idle))?;
    let Some(chunk) = chunk else {
        r.decoder.finish()?;
        r.done = true;
        return Ok(());
    };
    for frame in r.decoder.push(&chunk)? {
        let item = match frame {
            BulkFrame::Save { path, rev, hash, bytes } => BulkItem::Save {
                path,
                version: Version { rev, hash: Some(hash) },
                bytes: bytes.into(),
            },
            BulkFrame::Missing { path } => BulkItem::Missing { path },
            BulkFrame::TooLarge { path, rev, size } => BulkItem::TooLarge { path, rev, size },
            BulkFrame::End { .. } => continue,
        };
        r.ready.push_back(item);
    }
    Ok(())
}
