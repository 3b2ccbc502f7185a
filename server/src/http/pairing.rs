//! Pairing: trade a one-time code for a device token; let a paired device mint a code for
//! another device of the same user.
//!
//! Failed code attempts are rate limited per client address and server-wide (see
//! `crate::pair_limiter`): over the limit, `pair` answers 429 `rate_limited` with
//! `retry-after` before looking at the code.

use super::ServerState;
use super::extract::{ApiJson, AuthDevice, ClientAddr};
use crate::error::ApiError;
use crate::secrets::{Token, hash_pairing_code};
use crate::timestamps::now_unix;
use axum::Json;
use axum::extract::State;
use savesync_core::ErrorCode;
use savesync_core::wire::{PairRequest, PairResponse, PairingCode};
use std::time::Instant;

/// Longest accepted device name; it is shown in listings and audit lines.
const MAX_DEVICE_NAME: usize = 128;

#[tracing::instrument(skip_all, fields(device = %req.device_name))]
pub async fn pair(
    State(state): State<ServerState>,
    ClientAddr(client): ClientAddr,
    ApiJson(req): ApiJson<PairRequest>,
) -> Result<Json<PairResponse>, ApiError> {
    let name = req.device_name.trim().to_owned();
    if name.is_empty() || name.len() > MAX_DEVICE_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("device_name must be 1..={MAX_DEVICE_NAME} printable characters"),
        ));
    }
    let kind = req.device_kind.trim().chars().take(64).collect::<String>();
    let code_hash = hash_pairing_code(&req.code);
    let token = Token::generate();
    let token_hash = token.hash();
    let limiter = &state.pair_limiter;
    let reservation = limiter.try_acquire(client, Instant::now()).map_err(|throttled| {
        tracing::warn!(%client, "pairing attempts rate limited");
        ApiError::rate_limited("failed pairing attempts", throttled.retry_after)
    })?;
    let redeemed = state
        .app
        .db(move |m| m.redeem_pairing_code(&code_hash, &name, &kind, &token_hash, now_unix()))
        .await;
    // Only a wrong code counts against the client; a good one or a server fault does not.
    match &redeemed {
        Err(e) if e.code == ErrorCode::PairingCodeInvalid => {
            tracing::info!(%client, "pairing code rejected");
        }
        _ => limiter.refund(reservation, Instant::now()),
    }
    let device = redeemed?;
    tracing::info!(device_id = device.device_id, user = %device.user_name, "device paired");
    Ok(Json(PairResponse {
        device_id: device.device_id,
        user: device.user_name,
        token: token.reveal().to_owned(),
    }))
}

pub async fn issue_code(
    State(state): State<ServerState>,
    auth: AuthDevice,
) -> Result<Json<PairingCode>, ApiError> {
    let app = state.app.clone();
    let code = tokio::task::spawn_blocking(move || {
        app.pairing_code_for(auth.user_id, Some(auth.device_id), now_unix())
    })
    .await??;
    Ok(Json(code))
}
