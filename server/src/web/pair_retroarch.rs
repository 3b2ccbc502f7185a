//! Creating a RetroArch (WebDAV Cloud Sync) device from the Pair page: RetroArch can only
//! be given a URL, a user name and a password, so there is no code to redeem; the
//! dashboard creates the device for the signed-in user (`crate::dav::create_device`, as
//! `savesync-server pair --kind retroarch` does) and shows its password once, in this
//! response only: it is stored nowhere but as the token's hash.

use super::error::WebError;
use super::layout::{self, Nav, Page};
use super::live::cursor;
use super::session::SessionUser;
use crate::http::ServerState;
use axum::Form;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct RetroArchForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    prefix: String,
}

/// `POST /web/pair/retroarch` (CSRF-checked by the middleware).
pub async fn create(
    State(state): State<ServerState>,
    user: SessionUser,
    headers: HeaderMap,
    Form(form): Form<RetroArchForm>,
) -> Result<Response, WebError> {
    if state.app.config().admin_cli_only {
        return Err(WebError::Forbidden("adding devices is reserved to the server's admin"));
    }
    let prefix = if form.prefix.trim().is_empty() { "retroarch" } else { form.prefix.trim() };
    let created = crate::dav::create_device(&state.app, &user.user_name, &form.name, prefix)
        .await
        .map_err(|e| WebError::BadRequest(format!("Could not create the device: {e}")))?;
    tracing::info!(user = user.user_id, device = created.device_id, "RetroArch device created");
    let server = super::pair::server_url(&state, &headers);
    let settings = crate::dav::retroarch_settings(&server, &created.username);
    let seq = cursor(&state, user.user_id).await?;
    let body = html! {
        p { "RetroArch device " strong { (created.username) } " created; its saves and states go to "
            code { (created.root.as_str()) "/" } " in your library." }
        p { "In RetroArch, Settings > Saving > Cloud Sync:" }
        table id="retroarch-settings" {
            tr { th { "Cloud Sync Enable" } td { "ON" } }
            tr { th { "Cloud Sync Backend" } td { "webdav" } }
            tr { th { "Cloud Storage URL" } td { code { (settings.url) } } }
            tr { th { "Username" } td { code id="retroarch-username" { (settings.username) } } }
            tr { th { "Password" } td { code id="retroarch-password" { (created.password) } } }
        }
        p.notice.warn { "The password is shown only now. Revoke the device on the Devices page to cut it off." }
    };
    let page =
        Page { title: "RetroArch device", user: &user, nav: Nav::Pair, cursor: seq, notice: None };
    Ok(layout::page(&page, body))
}
