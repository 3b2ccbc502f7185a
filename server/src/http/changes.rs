//! `GET /changes`: the changes feed with long-poll. Answers at once when there are commits
//! after `since`; otherwise waits (at most `wait_ms`, clamped to `long_poll_max`) for the
//! next commit or for shutdown, then answers, possibly with an empty page. A wait cut short
//! by the device's revocation answers `401 device_revoked`.

use super::ServerState;
use super::extract::{ApiQuery, AuthDevice};
use crate::error::ApiError;
use axum::Json;
use axum::extract::State;
use futures::FutureExt;
use savesync_core::wire::ChangesPage;
use savesync_core::{ErrorCode, Seq};
use serde::Deserialize;
use std::time::Duration;
use tokio::time::Instant;

const DEFAULT_LIMIT: u32 = 1000;
const MAX_LIMIT: u32 = 10_000;

#[derive(Debug, Deserialize)]
pub struct ChangesQuery {
    #[serde(default)]
    since: u64,
    #[serde(default)]
    wait_ms: u64,
    limit: Option<u32>,
}

pub async fn changes(
    State(state): State<ServerState>,
    auth: AuthDevice,
    ApiQuery(q): ApiQuery<ChangesQuery>,
) -> Result<Json<ChangesPage>, ApiError> {
    let since = Seq(q.since);
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let wait = Duration::from_millis(q.wait_ms).min(state.app.config().long_poll_max);
    let deadline = Instant::now() + wait;
    // Subscribe before the first read so a commit between read and wait is not missed.
    let mut cursor_rx = state.app.feed().subscribe(auth.user_id);
    let revoked = state.app.until_revoked(auth.device_id);
    tokio::pin!(revoked);
    loop {
        let user = auth.user_id;
        let (changes, more) = state.app.meta().changes(user, since, limit).await?;
        if !changes.is_empty() || Instant::now() >= deadline || state.shutdown.is_cancelled() {
            if (&mut revoked).now_or_never().is_some() {
                return Err(revoked_error());
            }
            let cursor = match changes.last() {
                Some(last) => last.seq,
                // Nothing new: the cursor stays where the client is (never moves backwards,
                // even if `since` is ahead of the server after a restore from backup).
                None => since,
            };
            return Ok(Json(ChangesPage { changes, cursor, more }));
        }
        tokio::select! {
            // Biased: a revocation that lands with a commit wins over the page.
            biased;
            () = &mut revoked => return Err(revoked_error()),
            () = state.shutdown.cancelled() => {}
            () = tokio::time::sleep_until(deadline) => {}
            changed = cursor_rx.changed() => {
                if changed.is_err() {
                    // The sender lives as long as the app; if it is gone, stop waiting.
                    tokio::time::sleep_until(deadline).await;
                }
            }
        }
    }
}

fn revoked_error() -> ApiError {
    ApiError::new(ErrorCode::DeviceRevoked, "this device has been revoked")
}
