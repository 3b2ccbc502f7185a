//! Live updates: `GET /web/events`, a server-sent event stream of the signed-in user's
//! feed cursor (the same per-user `Feed` that wakes devices). Pages carry the cursor they
//! were rendered at; `assets/app.js` re-fetches the page when the stream passes it. The
//! stream ends when the server shuts down or the session is no longer valid (checked at
//! each keep-alive), and when the same user opens more than 16 (one per tab; the oldest
//! ends, as with a device's streams).

use super::error::WebError;
use super::session::SessionUser;
use crate::http::ServerState;
use crate::meta::UserId;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use savesync_core::Seq;
use std::convert::Infallible;

/// The user's feed position now.
pub async fn cursor(state: &ServerState, user: UserId) -> Result<Seq, WebError> {
    Ok(state.app.meta().current_seq(user).await?)
}

fn cursor_event(seq: Seq) -> Event {
    Event::default().event("cursor").data(format!("{{\"cursor\":{}}}", seq.0))
}

/// `GET /web/events`.
pub async fn events(
    State(state): State<ServerState>,
    user: SessionUser,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, WebError> {
    let mut rx = state.app.feed().subscribe(user.user_id);
    let first = cursor(&state, user.user_id).await?;
    let shutdown = state.shutdown.clone();
    let keep_alive = state.app.config().sse_keep_alive;
    let check = state.clone();
    let slot = state.web.streams.open(user.user_id);
    let stream = async_stream::stream! {
        let pushed_out = slot.closed.clone();
        let _slot = slot;
        let mut last = first;
        yield Ok(cursor_event(first));
        let mut ticks = tokio::time::interval(keep_alive.max(std::time::Duration::from_millis(100)));
        ticks.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                // This user opened more tabs than the cap: the oldest stream goes.
                () = pushed_out.cancelled() => break,
                _ = ticks.tick() => {
                    // A signed-out or expired session stops receiving updates.
                    let mut parts = axum::http::Request::new(()).into_parts().0;
                    parts.headers = headers.clone();
                    let still = <SessionUser as axum::extract::FromRequestParts<ServerState>>::from_request_parts(&mut parts, &check).await;
                    if still.is_err() {
                        break;
                    }
                }
                changed = rx.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let now = *rx.borrow_and_update();
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
