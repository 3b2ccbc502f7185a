//! The server-sent event stream (`GET /api/v1/events`): a [`futures::Stream`] of
//! [`CursorEvent`]s telling the device that its user's feed advanced, so it can fetch
//! `/changes` at once instead of polling. [`Client::event_items`] also yields
//! [`EventItem::KeepAlive`] for every chunk that carried no event (the server's keep-alive
//! comments), so a follower can tell an idle but live stream from a dead one.
//!
//! [`SseDecoder`] is a small, pure decoder of the `text/event-stream` format (fields,
//! comments, multi-line data, any line ending), so it is tested without a server. The
//! stream ends when the connection ends, and yields one error first when it broke (or when
//! no byte, not even a keep-alive comment, arrived for [`SSE_IDLE_LIMIT`]); the caller
//! reconnects and catches up through `/changes` from its last cursor.

use crate::client::{Client, transport_error};
use crate::error::{ClientError, Result};
use crate::retry::Repeat;
use futures::{Stream, StreamExt};
use reqwest::Method;
use reqwest::header::ACCEPT;
use savesync_core::wire::CursorEvent;
use std::collections::VecDeque;
use std::time::Duration;

/// The server sends a keep-alive comment every 15 s; three missed ones mean it is gone.
pub const SSE_IDLE_LIMIT: Duration = Duration::from_secs(45);
/// The event name the server uses for cursor announcements.
const CURSOR_EVENT: &str = "cursor";

/// One item of [`Client::event_items`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventItem {
    /// The user's feed is at this cursor.
    Cursor(CursorEvent),
    /// Bytes arrived (a keep-alive comment) but no event: the connection is alive.
    KeepAlive,
}

/// One dispatched server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, `message` when absent.
    pub event: String,
    /// All `data:` lines joined with `\n`.
    pub data: String,
}

/// Incremental `text/event-stream` decoder: feed bytes as they arrive, get whole events.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    /// The previous byte was `\r`, so a following `\n` belongs to the same line end.
    after_cr: bool,
    event: Option<String>,
    data: Option<String>,
}

impl SseDecoder {
    /// A decoder at the start of a stream.
    #[must_use]
    pub fn new() -> SseDecoder {
        SseDecoder::default()
    }

    /// Feed the next bytes; returns the events they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &byte in bytes {
            match byte {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.end_line(&line) {
                        out.push(event);
                    }
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(byte);
                }
            }
        }
        out
    }

    fn end_line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            let event = self.event.take().unwrap_or_else(|| "message".to_owned());
            // An event without data is not dispatched (per the SSE specification).
            return self.data.take().map(|data| SseEvent { event, data });
        }
        let line = String::from_utf8_lossy(line);
        if line.starts_with(':') {
            return None; // comment / keep-alive
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {} // `id`, `retry` and unknown fields are not used by savesync
        }
        None
    }
}

/// State of the event stream between items.
struct EventStream {
    response: reqwest::Response,
    decoder: SseDecoder,
    ready: VecDeque<SseEvent>,
    idle_limit: Duration,
}

impl EventStream {
    /// The next cursor event or keep-alive; `None` at the end of the stream.
    async fn next_item(&mut self) -> Option<Result<EventItem>> {
        loop {
            while let Some(event) = self.ready.pop_front() {
                if event.event == CURSOR_EVENT {
                    return Some(serde_json::from_str(&event.data).map(EventItem::Cursor).map_err(
                        |e| ClientError::Decode(format!("cursor event {:?}: {e}", event.data)),
                    ));
                }
            }
            let limit = self.idle_limit;
            match tokio::time::timeout(limit, self.response.chunk()).await {
                Err(_) => return Some(Err(ClientError::Timeout(limit))),
                Ok(Err(e)) => return Some(Err(transport_error(e, limit))),
                Ok(Ok(None)) => return None,
                Ok(Ok(Some(bytes))) => {
                    self.ready.extend(self.decoder.push(&bytes));
                    if !self.ready.iter().any(|e| e.event == CURSOR_EVENT) {
                        return Some(Ok(EventItem::KeepAlive));
                    }
                }
            }
        }
    }
}

impl Client {
    /// Subscribe to cursor announcements. The first item is the user's current cursor;
    /// then one per commit (the server may coalesce). Connecting is retried like any read;
    /// once connected, the stream ends (after one `Err` if it broke) when the connection
    /// does, and never times out while keep-alives arrive.
    pub async fn events(&self) -> Result<impl Stream<Item = Result<CursorEvent>> + Send + 'static> {
        let items = self.event_items(SSE_IDLE_LIMIT).await?;
        Ok(items.filter_map(|item| async move {
            match item {
                Ok(EventItem::Cursor(c)) => Some(Ok(c)),
                Ok(EventItem::KeepAlive) => None,
                Err(e) => Some(Err(e)),
            }
        }))
    }

    /// Like [`Client::events`], and also yields [`EventItem::KeepAlive`] whenever bytes
    /// without an event arrive. The stream fails with a timeout when no byte at all arrived
    /// for `idle_limit`.
    pub async fn event_items(
        &self,
        idle_limit: Duration,
    ) -> Result<impl Stream<Item = Result<EventItem>> + Send + 'static> {
        let url = self.api_url(&["events"]);
        let response = self
            .retrying(Repeat::Safe, || async {
                let request =
                    self.request(Method::GET, url.clone()).header(ACCEPT, "text/event-stream");
                let limit = self.request_timeout();
                tokio::time::timeout(limit, self.send(request, None))
                    .await
                    .map_err(|_| ClientError::Timeout(limit))?
            })
            .await?;
        let state = Some(EventStream {
            response,
            decoder: SseDecoder::new(),
            ready: VecDeque::new(),
            idle_limit,
        });
        Ok(futures::stream::unfold(state, |state| async move {
            let mut stream = state?;
            match stream.next_item().await {
                Some(Ok(event)) => Some((Ok(event), Some(stream))),
                // After an error the connection is not trusted: end the stream.
                Some(Err(e)) => Some((Err(e), None)),
                None => None,
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent { event: event.into(), data: data.into() }
    }

    #[test]
    fn decodes_named_events_and_skips_comments() {
        let mut d = SseDecoder::new();
        let out = d.push(b": keep-alive\n\nevent: cursor\ndata: {\"cursor\":7}\n\n");
        assert_eq!(out, vec![ev("cursor", "{\"cursor\":7}")]);
    }

    #[test]
    fn events_split_across_chunks_and_crlf_line_ends() {
        let mut d = SseDecoder::new();
        assert!(d.push(b"event: cur").is_empty());
        assert!(d.push(b"sor\r\ndata: {\"cursor\"").is_empty());
        assert!(d.push(b":3}\r").is_empty());
        assert_eq!(d.push(b"\n\r\n"), vec![ev("cursor", "{\"cursor\":3}")]);
    }

    #[test]
    fn multi_line_data_and_default_event_name() {
        let mut d = SseDecoder::new();
        assert_eq!(d.push(b"data: a\ndata:b\n\n"), vec![ev("message", "a\nb")]);
        // No data: nothing dispatched, and the event name does not leak into the next one.
        assert!(d.push(b"event: cursor\n\n").is_empty());
        assert_eq!(d.push(b"data: x\n\n"), vec![ev("message", "x")]);
    }
}
