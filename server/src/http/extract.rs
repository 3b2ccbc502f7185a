//! Request extractors that fail with [`ApiError`]: JSON bodies (`bad_json`), query strings
//! (`bad_request`), save paths (`bad_path`) and the device token (`unauthorized`,
//! `device_revoked`).

use super::ServerState;
use crate::error::ApiError;
use crate::meta::{Actor, DeviceId, UserId};
use crate::secrets::{hash_token, hashes_match};
use crate::timestamps::now_unix;
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use savesync_core::{ErrorCode, SavePath};

/// `axum::Json` whose rejection is `bad_json` (or `body_too_large`).
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `axum::extract::Query` whose rejection is `bad_request`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `axum::extract::Path` (URL segments such as a device id) whose rejection is
/// `bad_request`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Validate a `path=` query value.
pub fn parse_path(raw: &str) -> Result<SavePath, ApiError> {
    SavePath::parse(raw)
        .map_err(|e| ApiError::new(ErrorCode::BadPath, format!("invalid save path: {e}")))
}

/// The authenticated device making the request.
#[derive(Debug, Clone)]
pub struct AuthDevice {
    pub user_id: UserId,
    pub device_id: DeviceId,
}

impl AuthDevice {
    /// Attribution for writes.
    #[must_use]
    pub fn actor(&self) -> Actor {
        Actor { user_id: self.user_id, device_id: Some(self.device_id) }
    }
}

impl FromRequestParts<ServerState> for AuthDevice {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ServerState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized =
            || ApiError::new(ErrorCode::Unauthorized, "missing or unknown device token");
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(unauthorized)?;
        let presented = hash_token(token);
        let lookup = presented.clone();
        let device = state
            .app
            .db(move |m| m.device_by_token_hash(&lookup))
            .await?
            .filter(|d| hashes_match(&d.token_hash, &presented))
            .ok_or_else(unauthorized)?;
        if device.revoked {
            return Err(ApiError::new(ErrorCode::DeviceRevoked, "this device has been revoked"));
        }
        if state.app.due_for_last_seen(device.device_id) {
            let app = state.app.clone();
            let id = device.device_id;
            // Fire and forget: a failed informational update must not fail the request.
            tokio::spawn(async move {
                if let Err(e) = app.db(move |m| m.touch_device(id, now_unix())).await {
                    tracing::debug!(code = %e.code, "could not update last_seen_at");
                }
            });
        }
        tracing::debug!(device = %device.device_name, user = %device.user_name, "authenticated");
        Ok(AuthDevice { user_id: device.user_id, device_id: device.device_id })
    }
}
