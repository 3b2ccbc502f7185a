//! Pairing: trade a one-time code for a device token; let a paired device mint a code for
//! another device of the same user.
//!
//! `pair` order: the body is at most [`MAX_PAIR_BODY`] bytes (else `413 body_too_large`);
//! the device's name and kind must pass the printable-only rule (else `400`, and nothing
//! about them is logged); a client address over its limit of failed attempts (see
//! `crate::pair_limiter`) gets `429 rate_limited` before its code is looked at; then the
//! code is checked. Only a wrong code counts against the client, and only against that
//! client: guessing from other addresses never locks out a device with a valid code. Each
//! wrong code also counts against every live code's budget (`pairing_max_wrong_guesses`).
//!
//! Minting (`POST /pairing-codes`) is rate limited per device and, like revoking, can be
//! reserved to the admin CLI (`admin_cli_only`).

use super::ServerState;
use super::extract::{ApiJson, AuthDevice, ClientAddr};
use crate::device_label::{LabelError, printable_label};
use crate::error::ApiError;
use crate::meta::NewDeviceInfo;
use crate::secrets::Token;
use crate::timestamps::now_unix;
use axum::Json;
use axum::extract::State;
use savesync_core::ErrorCode;
use savesync_core::wire::{PairRequest, PairResponse, PairingCode};
use std::time::Instant;

/// Longest accepted device name; it is shown in listings and audit lines.
const MAX_DEVICE_NAME: usize = 128;
/// Longest accepted device kind.
const MAX_DEVICE_KIND: usize = 64;
/// Largest `POST /pair` body: a code, a name and a kind fit many times over. The endpoint
/// needs no token, so it must not accept the general JSON limit.
pub const MAX_PAIR_BODY: usize = 4 * 1024;

/// `403 admin_only` when the admin reserved `what` to the CLI.
pub(super) fn ensure_api_may(state: &ServerState, what: &str) -> Result<(), ApiError> {
    if state.app.config().admin_cli_only {
        return Err(ApiError::new(
            ErrorCode::AdminOnly,
            format!("{what} is reserved to the server's admin command line"),
        ));
    }
    Ok(())
}

fn label_error(field: &str, max: usize, error: LabelError) -> ApiError {
    let why = match error {
        LabelError::Empty => "must not be empty".to_owned(),
        LabelError::TooLong => format!("must be at most {max} characters"),
        LabelError::NotPrintable => {
            "must be printable (no control, line-separator or invisible formatting characters)"
                .to_owned()
        }
    };
    ApiError::bad_request(format!("{field} {why}"))
}

pub async fn pair(
    State(state): State<ServerState>,
    ClientAddr(client): ClientAddr,
    ApiJson(req): ApiJson<PairRequest>,
) -> Result<Json<PairResponse>, ApiError> {
    let name = printable_label(&req.device_name, MAX_DEVICE_NAME, true)
        .map_err(|e| label_error("device_name", MAX_DEVICE_NAME, e))?
        .to_owned();
    let kind = printable_label(&req.device_kind, MAX_DEVICE_KIND, false)
        .map_err(|e| label_error("device_kind", MAX_DEVICE_KIND, e))?
        .to_owned();
    let code_hash = state.app.pairing_code_hash(&req.code);
    let token = Token::generate();
    let token_hash = token.hash();
    let limiter = &state.pair_limiter;
    let reservation = limiter.try_acquire(client, Instant::now()).map_err(|throttled| {
        tracing::warn!(%client, "pairing attempts rate limited");
        ApiError::rate_limited("failed pairing attempts", throttled.retry_after)
    })?;
    let budget = state.app.config().pairing_max_wrong_guesses;
    let device = NewDeviceInfo { name: &name, kind: &kind };
    let redeemed = state
        .app
        .meta()
        .redeem_pairing_code(&code_hash, &device, &token_hash, budget, now_unix())
        .await
        .map_err(ApiError::from);
    // Only a wrong code counts against the client; a good one or a server fault does not.
    match &redeemed {
        Err(e) if e.code == ErrorCode::PairingCodeInvalid => {
            tracing::info!(%client, "pairing code rejected");
        }
        _ => limiter.refund(reservation, Instant::now()),
    }
    let device = redeemed?;
    tracing::info!(
        device_id = device.device_id,
        device = ?name,
        user = ?device.user_name,
        "device paired"
    );
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
    ensure_api_may(&state, "minting pairing codes")?;
    state.app.admit_mint(auth.device_id).map_err(|wait| {
        tracing::info!(device_id = auth.device_id, "pairing code minting rate limited");
        ApiError::rate_limited("pairing codes minted by this device", wait)
    })?;
    let code = state.app.pairing_code_for(auth.user_id, Some(auth.device_id), now_unix()).await?;
    Ok(Json(code))
}
