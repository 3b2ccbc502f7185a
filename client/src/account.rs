//! Devices and the account around them: pairing, pairing codes for further devices, the
//! device list and revocation, per-device untracked saves, the audit log, and the
//! unauthenticated health and metrics endpoints.

use crate::client::{Client, transport_error};
use crate::error::{ClientError, Result};
use crate::retry::Repeat;
use reqwest::Method;
use savesync_core::SavePath;
use savesync_core::wire::{
    AuditLog, DeviceList, Health, PairRequest, PairResponse, PairingCode, UntrackedList,
};

impl Client {
    /// Trade a one-time pairing `code` for a device token (needs no token). The token in
    /// the answer is shown only this once: store it, then use [`Client::with_token`].
    /// Retried only if the request never reached the server, since a code works once.
    pub async fn pair(
        &self,
        code: &str,
        device_name: &str,
        device_kind: &str,
    ) -> Result<PairResponse> {
        let url = self.api_url(&["pair"]);
        let body = PairRequest {
            code: code.to_owned(),
            device_name: device_name.to_owned(),
            device_kind: device_kind.to_owned(),
        };
        self.call_json(Method::POST, url, Some(&body), Repeat::OnlyIfNeverSent).await
    }

    /// A one-time code another device of the same user can pair with.
    pub async fn create_pairing_code(&self) -> Result<PairingCode> {
        let url = self.api_url(&["pairing-codes"]);
        self.call_json::<(), _>(Method::POST, url, None, Repeat::OnlyIfNeverSent).await
    }

    /// The user's devices; `current` marks this one.
    pub async fn devices(&self) -> Result<DeviceList> {
        self.call_json::<(), _>(Method::GET, self.api_url(&["devices"]), None, Repeat::Safe).await
    }

    /// Revoke device `id` of the same user: its token stops working at once.
    pub async fn revoke_device(&self, id: i64) -> Result<()> {
        let url = self.api_url(&["devices", &id.to_string(), "revoke"]);
        self.call_empty::<()>(Method::POST, url, None, Repeat::Safe).await
    }

    /// Saves this device opted out of.
    pub async fn untracked(&self) -> Result<UntrackedList> {
        self.call_json::<(), _>(Method::GET, self.api_url(&["untracked"]), None, Repeat::Safe).await
    }

    /// Opt this device out of `path` (`true`) or back in (`false`). Negotiate then reports
    /// the save as `untracked` for this device only.
    pub async fn set_untracked(&self, path: &SavePath, untracked: bool) -> Result<()> {
        let mut url = self.api_url(&["untracked"]);
        url.query_pairs_mut().append_pair("path", path.as_str());
        let method = if untracked { Method::PUT } else { Method::DELETE };
        self.call_empty::<()>(method, url, None, Repeat::Safe).await
    }

    /// The newest `limit` audit entries of this user, newest first.
    pub async fn audit(&self, limit: u32) -> Result<AuditLog> {
        let mut url = self.api_url(&["audit"]);
        url.query_pairs_mut().append_pair("limit", &limit.to_string());
        self.call_json::<(), _>(Method::GET, url, None, Repeat::Safe).await
    }

    /// Liveness and version (no token needed).
    pub async fn health(&self) -> Result<Health> {
        self.call_json::<(), _>(Method::GET, self.api_url(&["health"]), None, Repeat::Safe).await
    }

    /// The Prometheus text exposition at `/metrics` (no token needed).
    pub async fn metrics(&self) -> Result<String> {
        let url = self.root_url(&["metrics"]);
        let limit = self.request_timeout();
        self.retrying(Repeat::Safe, || async {
            let response = self.send(self.request(Method::GET, url.clone()), Some(limit)).await?;
            let text = response.text().await.map_err(|e| transport_error(e, limit))?;
            Ok::<_, ClientError>(text)
        })
        .await
    }
}
