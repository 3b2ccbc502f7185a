//! The web dashboard under `/web/`: server-rendered HTML (maud) for a signed-in *user*
//! (not a device), with a little plain JavaScript for live updates. Everything it shows is
//! read through the same `MetaStore` and `BlobStore` as the device API, scoped by the
//! session's user, so one user never sees another's data (another user's save is a 404).
//!
//! Who signs in: a user whose admin set a password (`savesync-server users passwd`) or
//! printed a one-time login link (`savesync-server login-link`). See `session` for the
//! cookie, `csrf` for the form protection every POST passes, `login` for the rate limit.
//!
//! One file per job: pages (`devices`, `pair` with `pair_targets` and `pair_retroarch`, `saves`, `history`, `conflicts`,
//! `activity`), the page shell (`layout`), embedded assets (`assets`), live updates
//! (`live`), pure policies (`tree`, `csrf`, `cookies`), and errors as HTML (`error`).

mod activity;
mod assets;
mod conflicts;
mod cookies;
mod csrf;
mod devices;
mod error;
mod history;
mod layout;
mod live;
mod login;
mod login_link;
mod pair;
mod pair_retroarch;
mod pair_targets;
mod password;
mod qr;
mod saves;
mod session;
mod settings;
mod tree;

pub use login_link::{LoginLink, issue as issue_login_link};
pub use password::{hash_password, set_user_password};
pub use session::SESSION_COOKIE;
pub use settings::WebSettings;

use crate::http::ServerState;
use crate::http::stream_cap::DeviceStreams;
use axum::Router;
use axum::response::Redirect;
use axum::routing::{any, get, post};
use std::sync::Arc;

/// Most live-update streams one user may hold open (one per browser tab); opening one more
/// ends the oldest.
const MAX_STREAMS_PER_USER: usize = 16;

/// The dashboard's in-memory state: the login rate limiter, the pairing codes each session
/// minted last (shown as text and QR code; the codes themselves live in the store), and the
/// open live-update streams per user.
#[derive(Debug)]
pub struct WebState {
    pub(crate) logins: login::LoginLimiter,
    pub(crate) pair_slots: pair::PairSlots,
    pub(crate) streams: Arc<DeviceStreams>,
}

impl WebState {
    #[must_use]
    pub fn new(settings: &WebSettings) -> Arc<WebState> {
        Arc::new(WebState {
            logins: login::LoginLimiter::new(settings),
            pair_slots: pair::PairSlots::default(),
            streams: Arc::new(DeviceStreams::new(MAX_STREAMS_PER_USER)),
        })
    }
}

/// The dashboard routes (all under `/web/`, plus `/` redirecting there), to merge into the
/// server's router. Every route passes the CSRF middleware; it only acts on POSTs.
pub fn router() -> Router<ServerState> {
    let home = || async { Redirect::to("/web/saves") };
    Router::new()
        .route("/", get(home))
        .route("/web", get(home))
        .route("/web/", get(home))
        .route("/web/login", get(login::page).post(login::with_password))
        .route("/web/login/link", get(login::link_page).post(login::with_link))
        .route("/web/logout", post(login::logout))
        .route("/web/devices", get(devices::page))
        .route("/web/devices/{id}/revoke", post(devices::revoke))
        .route("/web/pair", get(pair::page).post(pair::mint))
        .route("/web/pair/qr.svg", get(pair::qr_svg))
        .route("/web/pair/retroarch", post(pair_retroarch::create))
        .route("/web/saves", get(saves::page))
        .route("/web/history", get(history::page))
        .route("/web/version", get(history::download))
        .route("/web/restore", post(history::restore))
        .route("/web/conflicts", get(conflicts::page))
        .route("/web/activity", get(activity::page))
        .route("/web/events", get(live::events))
        .route("/web/assets/{name}", get(assets::serve))
        .route("/web/{*rest}", any(error::not_found_page))
        .route_layer(axum::middleware::from_fn(csrf::require_csrf))
}
