//! `GET /devices` and `POST /devices/{id}/revoke`, scoped to the caller's user.
//!
//! A revocation takes effect at once everywhere: new requests fail authentication, the
//! device's open event streams and pending long-polls end (see `crate::revocation`), the
//! unused pairing codes it minted are dropped, and its uploads still in flight fail inside
//! their commit transaction.

use super::ServerState;
use super::extract::{ApiPath, AuthDevice};
use crate::error::ApiError;
use crate::timestamps::now_unix;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use savesync_core::wire::DeviceList;

pub async fn list(
    State(state): State<ServerState>,
    auth: AuthDevice,
) -> Result<Json<DeviceList>, ApiError> {
    let user = auth.user_id;
    let mut devices = state.app.meta().list_devices(user).await?;
    for device in &mut devices {
        device.current = device.id == auth.device_id;
    }
    Ok(Json(DeviceList { devices }))
}

pub async fn revoke(
    State(state): State<ServerState>,
    auth: AuthDevice,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    super::pairing::ensure_api_may(&state, "revoking devices")?;
    let user = auth.user_id;
    let found = state.app.meta().revoke_device(Some(user), id, now_unix()).await?;
    if found {
        state.app.signal_revoked(id);
        tracing::info!(device_id = id, by = auth.device_id, "device revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("device {id}")))
    }
}
