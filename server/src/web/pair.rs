//! The Pair page: mint a one-time pairing code for a new device of the signed-in user, and
//! show it as text, as the `savesync pair` command, and as a QR code image (served as SVG
//! from `GET /web/pair/qr.svg`).
//!
//! The code stays out of every URL (a URL lands in logs and history): the page remembers
//! the last code each session minted in [`PairSlots`], in memory, until it expires, and the
//! QR endpoint renders that one. The slots are bounded.

use super::error::WebError;
use super::layout::{self, Nav, Page};
use super::live::cursor;
use super::pair_targets;
use super::session::SessionUser;
use crate::http::ServerState;
use crate::timestamps::now_unix;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most sessions with a code on display at once; beyond it the oldest is forgotten.
const MAX_SLOTS: usize = 1024;

#[derive(Debug, Clone)]
struct Slot {
    code: String,
    expires_at: String,
    link: String,
    server: String,
    until: Instant,
}

/// The code each session minted last, keyed by the session's CSRF token (which is derived
/// from the session id, so it names the session without storing its id).
#[derive(Debug, Default)]
pub struct PairSlots(Mutex<HashMap<String, Slot>>);

impl PairSlots {
    fn put(&self, key: &str, slot: Slot) {
        let mut slots = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        slots.retain(|_, s| s.until > now);
        while slots.len() >= MAX_SLOTS {
            let oldest = slots.iter().min_by_key(|(_, s)| s.until).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => slots.remove(&k),
                None => break,
            };
        }
        slots.insert(key.to_owned(), slot);
    }

    fn get(&self, key: &str) -> Option<Slot> {
        let slots = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        slots.get(key).filter(|s| s.until > Instant::now()).cloned()
    }
}

/// The server's base URL as devices should use it: the configured public URL, else the
/// address this browser reached.
pub(super) fn server_url(state: &ServerState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.app.config().public_url {
        return url.trim_end_matches('/').to_owned();
    }
    match headers.get(HOST).and_then(|h| h.to_str().ok()) {
        Some(host) if !host.is_empty() => format!("http://{host}"),
        _ => state.app.config().device_url(),
    }
}

/// `GET /web/pair`.
pub async fn page(
    State(state): State<ServerState>,
    user: SessionUser,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let seq = cursor(&state, user.user_id).await?;
    let slot = state.web.pair_slots.get(&user.csrf);
    let server = slot.as_ref().map_or_else(|| server_url(&state, &headers), |s| s.server.clone());
    let admin_only = state.app.config().admin_cli_only;
    let targets = pair_targets::targets(&server);
    let body = html! {
        @if let Some(slot) = &slot {
            section.pick {
                div.card.stack {
                    p { "Pairing code, valid once until " (layout::when(&slot.expires_at)) ":" }
                    p.code id="pairing-code" { (slot.code) }
                    p { "On the device, run:" }
                    pre { code { "savesync pair " (slot.server) " " (slot.code) } }
                }
                div.card {
                    img.qr id="pairing-qr" src="/web/pair/qr.svg" alt={"QR code of " (slot.link)};
                    p.muted { "Or scan this with the device." }
                }
            }
        }
        @if admin_only {
            p { "Pairing codes are minted by the server's admin here ("
                code { "savesync-server pair --user " (user.user_name) } ")." }
        } @else {
            form method="post" action="/web/pair" {
                input type="hidden" name="csrf" value=(user.csrf);
                button.primary id="new-code" type="submit" {
                    @if slot.is_some() { "Make another code" } @else { "Make a pairing code" }
                }
            }
        }
        @for target in &targets {
            h2 { (target.title) }
            table { @for (label, value) in &target.fields { tr { th { (label) } td { code { (value) } } } } }
            p.muted { (target.note) }
        }
        @if !admin_only {
            h2 { "Create a RetroArch device" }
            form.stack method="post" action="/web/pair/retroarch" {
                input type="hidden" name="csrf" value=(user.csrf);
                label { "Name (its Username)" br;
                    input type="text" name="name" required maxlength="128" placeholder="retroid"; }
                label { "Library folder for its saves and states" br;
                    input type="text" name="prefix" value="retroarch"; }
                p { button type="submit" id="new-retroarch" { "Create" } }
            }
        }
    };
    let page =
        Page { title: "Pair a device", user: &user, nav: Nav::Pair, cursor: seq, notice: None };
    Ok(layout::page(&page, body))
}

/// `POST /web/pair`: mint a code for this user and show it.
pub async fn mint(
    State(state): State<ServerState>,
    user: SessionUser,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    if state.app.config().admin_cli_only {
        return Err(WebError::Forbidden("minting pairing codes is reserved to the server's admin"));
    }
    let code = state.app.pairing_code_for(user.user_id, None, now_unix()).await?;
    let server = server_url(&state, &headers);
    let ttl = state.app.config().pairing_ttl;
    let slot = Slot {
        link: crate::cli::pair_link(&server, &code.code),
        code: code.code,
        expires_at: code.expires_at,
        server,
        until: Instant::now() + ttl.max(Duration::from_secs(1)),
    };
    state.web.pair_slots.put(&user.csrf, slot);
    tracing::info!(user = user.user_id, "pairing code minted from the dashboard");
    Ok(Redirect::to("/web/pair").into_response())
}

/// `GET /web/pair/qr.svg`: the QR code of this session's current pairing link.
pub async fn qr_svg(
    State(state): State<ServerState>,
    user: SessionUser,
) -> Result<Response, WebError> {
    let slot = state.web.pair_slots.get(&user.csrf).ok_or(WebError::NotFound)?;
    let image = super::qr::svg(&slot.link).ok_or(WebError::NotFound)?;
    let mut response = image.into_response();
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
