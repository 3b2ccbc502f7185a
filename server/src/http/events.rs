//! `GET /events`: server-sent events announcing the user's cursor. The first event carries
//! the current cursor, then one follows each commit (several commits may coalesce into one
//! event with the latest cursor); an idle stream carries a keep-alive comment every
//! `config.sse_keep_alive`. The stream ends when the server shuts down, when the device is
//! revoked, or when the same device opens more than `config.max_streams_per_device`
//! streams (the oldest ends; see `stream_cap`).

use super::ServerState;
use super::extract::AuthDevice;
use crate::error::ApiError;
use crate::metrics::Metrics;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use savesync_core::Seq;
use savesync_core::wire::CursorEvent;
use std::convert::Infallible;

/// Keeps the `sse_clients` gauge honest however the stream ends.
struct ClientGauge(ServerState);

impl ClientGauge {
    fn new(state: ServerState) -> ClientGauge {
        metrics(&state).sse_clients.inc();
        ClientGauge(state)
    }
}

impl Drop for ClientGauge {
    fn drop(&mut self) {
        metrics(&self.0).sse_clients.dec();
    }
}

fn metrics(state: &ServerState) -> &Metrics {
    state.app.metrics()
}

fn cursor_event(cursor: Seq) -> Event {
    let data = serde_json::to_string(&CursorEvent { cursor })
        .unwrap_or_else(|_| format!("{{\"cursor\":{}}}", cursor.0));
    Event::default().event("cursor").data(data)
}

pub async fn events(
    State(state): State<ServerState>,
    auth: AuthDevice,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let mut cursor_rx = state.app.feed().subscribe(auth.user_id);
    let user = auth.user_id;
    let first = state.app.meta().current_seq(user).await?;
    let gauge = ClientGauge::new(state.clone());
    let slot = state.streams.open(auth.device_id);
    let shutdown = state.shutdown.clone();
    let revoked = state.app.until_revoked(auth.device_id);
    let keep_alive = state.app.config().sse_keep_alive;
    let stream = async_stream::stream! {
        let _gauge = gauge;
        let pushed_out = slot.closed.clone();
        let _slot = slot;
        let mut last = first;
        tokio::pin!(revoked);
        yield Ok(cursor_event(first));
        loop {
            tokio::select! {
                // Biased: a revocation that lands with a commit ends the stream unannounced.
                biased;
                () = shutdown.cancelled() => break,
                () = &mut revoked => break,
                // A newer stream of this device took this one's place under the cap.
                () = pushed_out.cancelled() => break,
                changed = cursor_rx.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let now = *cursor_rx.borrow_and_update();
                    if now > last {
                        last = now;
                        yield Ok(cursor_event(now));
                    }
                }
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(keep_alive)))
}
