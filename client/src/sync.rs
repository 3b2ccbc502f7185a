//! Keeping up with other devices: the changes feed (long-poll), negotiation of a whole
//! manifest at start-up, and completing the sync session negotiation opened.

use crate::client::Client;
use crate::error::Result;
use crate::retry::Repeat;
use reqwest::Method;
use savesync_core::Seq;
use savesync_core::wire::{
    ChangesPage, ManifestEntry, NegotiateRequest, NegotiateResponse, SessionReport,
};
use std::time::Duration;

impl Client {
    /// Commits after `since`, oldest first. When there are none yet, the server holds the
    /// request up to `wait` (clamped by its `long_poll_max`) and answers as soon as one
    /// lands, or with an empty page. `limit` defaults to 1000 on the server (max 10000).
    pub async fn changes(
        &self,
        since: Seq,
        wait: Duration,
        limit: Option<u32>,
    ) -> Result<ChangesPage> {
        let mut url = self.api_url(&["changes"]);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("since", &since.0.to_string());
            query.append_pair("wait_ms", &wait.as_millis().to_string());
            if let Some(limit) = limit {
                query.append_pair("limit", &limit.to_string());
            }
        }
        // The server may legitimately hold the request for `wait`: give it that on top.
        let client = self.clone().with_timeout(self.request_timeout() + wait);
        client.call_json::<(), _>(Method::GET, url, None, Repeat::Safe).await
    }

    /// Send the device's manifest; get an action for every entry that needs one, plus
    /// downloads for live server saves the manifest does not name. Opens a sync session.
    pub async fn negotiate(&self, entries: Vec<ManifestEntry>) -> Result<NegotiateResponse> {
        let url = self.api_url(&["negotiate"]);
        // Repeating only opens another (harmless) session.
        self.call_json(Method::POST, url, Some(&NegotiateRequest { entries }), Repeat::Safe).await
    }

    /// Report what the device did with the plan of session `id`.
    pub async fn complete_session(&self, id: i64, report: SessionReport) -> Result<()> {
        let url = self.api_url(&["sessions", &id.to_string(), "complete"]);
        self.call_empty(Method::POST, url, Some(&report), Repeat::Safe).await
    }
}
