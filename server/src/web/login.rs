//! Signing in and out: with a password, or with a one-time login link; and the rate limit
//! on both.
//!
//! Every attempt (right or wrong) first passes [`LoginLimiter`], keyed by client address:
//! `login_burst` attempts at once, then one per `login_interval`. It is checked before the
//! password is hashed, so guessing costs the guesser time and the server nothing. A wrong
//! name and a wrong password get the same answer in about the same time (see `password`).
//!
//! A login link is `…/web/login/link#TOKEN`: the token sits after `#`, so it never reaches
//! the server in a URL (nor its logs, nor a `Referer`). The page's script copies it into
//! a form; pressing the button POSTs it. A link preview that merely fetches the URL
//! therefore cannot use the link up.

use super::cookies;
use super::csrf;
use super::error::WebError;
use super::layout;
use super::session::{self, LOGIN_COOKIE};
use super::settings::WebSettings;
use crate::http::ServerState;
use crate::http::extract::ClientAddr;
use crate::secrets::hash_token;
use crate::timestamps::now_unix;
use axum::Form;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use maud::html;
use serde::Deserialize;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

/// How long the pre-login CSRF cookie lives (a login form left open this long is reloaded).
const LOGIN_COOKIE_TTL: Duration = Duration::from_secs(60 * 60);

/// Login attempts per client address.
#[derive(Debug)]
pub struct LoginLimiter(Option<DefaultKeyedRateLimiter<IpAddr>>);

impl LoginLimiter {
    pub fn new(settings: &WebSettings) -> LoginLimiter {
        let burst = NonZeroU32::new(settings.login_burst.max(1)).unwrap_or(NonZeroU32::MIN);
        LoginLimiter(
            Quota::with_period(settings.login_interval)
                .map(|q| RateLimiter::keyed(q.allow_burst(burst))),
        )
    }

    /// Count one attempt from `addr`, or say how long it must wait.
    fn admit(&self, addr: IpAddr) -> Result<(), WebError> {
        let Some(limiter) = &self.0 else { return Ok(()) };
        // The limiter's map only grows with new addresses; forget idle ones now and then.
        if limiter.len() > 10_000 {
            limiter.retain_recent();
        }
        limiter.check_key(&addr).map_err(|not_until| {
            WebError::RateLimited(not_until.wait_time_from(DefaultClock::default().now()))
        })
    }
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

#[derive(Debug, Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    token: String,
}

/// The login secret this browser holds, or a new one with the cookie that stores it.
fn login_secret(state: &ServerState, headers: &HeaderMap) -> (String, Option<String>) {
    match cookies::read(headers, LOGIN_COOKIE) {
        Some(secret) => (secret, None),
        None => {
            let secret = session::random_secret();
            let cookie = cookies::set(
                LOGIN_COOKIE,
                &secret,
                LOGIN_COOKIE_TTL,
                session::secure_cookies(state),
            );
            (secret, Some(cookie))
        }
    }
}

fn with_cookie(mut response: Response, cookie: Option<String>) -> Response {
    if let Some(v) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().append(SET_COOKIE, v);
    }
    response
}

fn password_page(
    state: &ServerState,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let (secret, cookie) = login_secret(state, headers);
    let body = html! {
        form.stack method="post" action="/web/login" {
            input type="hidden" name="csrf" value=(csrf::token_for(&secret));
            @if let Some(error) = error { p.error role="alert" { (error) } }
            label { "User" br; input type="text" name="name" autocomplete="username" required autofocus; }
            label { "Password" br; input type="password" name="password" autocomplete="current-password" required; }
            p { button.primary type="submit" { "Sign in" } }
        }
        p.muted { "No password? Ask the server's admin for one ("
            code { "savesync-server users passwd NAME" } ") or for a one-time login link." }
    };
    with_cookie(layout::bare(status, "Sign in", body), cookie)
}

/// `GET /web/login`.
pub async fn page(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    password_page(&state, &headers, StatusCode::OK, None)
}

/// Sign in and go to the saves page.
async fn signed_in(state: &ServerState, user: crate::meta::UserId) -> Result<Response, WebError> {
    let cookie = session::start(state, user).await?;
    let mut response = Redirect::to("/web/saves").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(SET_COOKIE, v);
    }
    Ok(response)
}

/// `POST /web/login` (CSRF-checked by the middleware).
pub async fn with_password(
    State(state): State<ServerState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Result<Response, WebError> {
    state.web.logins.admit(addr)?;
    let stored = state.app.meta().user_password(form.name.trim()).await?;
    let user = stored.as_ref().map(|s| s.user_id);
    let phc = stored.and_then(|s| s.phc);
    let password = form.password;
    let ok = tokio::task::spawn_blocking(move || {
        super::password::verify_password(&password, phc.as_deref())
    })
    .await
    .unwrap_or(false);
    match (ok, user) {
        (true, Some(user)) => {
            tracing::info!(user, "dashboard sign-in with password");
            signed_in(&state, user).await
        }
        _ => {
            tracing::info!(%addr, "dashboard sign-in refused: wrong user name or password");
            Ok(password_page(
                &state,
                &headers,
                StatusCode::UNAUTHORIZED,
                Some("Wrong user name or password."),
            ))
        }
    }
}

fn link_form(
    state: &ServerState,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let (secret, cookie) = login_secret(state, headers);
    let body = html! {
        form.stack method="post" action="/web/login/link" {
            input type="hidden" name="csrf" value=(csrf::token_for(&secret));
            @if let Some(error) = error { p.error role="alert" { (error) } }
            p { "This one-time link signs you in on this browser." }
            label { "Link code" br;
                input type="text" name="token" data-from-hash autocomplete="off" required; }
            p { button.primary type="submit" { "Sign in" } }
        }
    };
    with_cookie(layout::bare(status, "Sign in with a link", body), cookie)
}

/// `GET /web/login/link` (the token is in the URL fragment; the script fills the form).
pub async fn link_page(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    link_form(&state, &headers, StatusCode::OK, None)
}

/// `POST /web/login/link` (CSRF-checked by the middleware).
pub async fn with_link(
    State(state): State<ServerState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LinkForm>,
) -> Result<Response, WebError> {
    state.web.logins.admit(addr)?;
    let token = form.token.trim();
    let user = if token.is_empty() || token.len() > 256 {
        None
    } else {
        state.app.meta().redeem_login_link(&hash_token(token), now_unix()).await?
    };
    match user {
        Some(user) => {
            tracing::info!(user, "dashboard sign-in with a login link");
            signed_in(&state, user).await
        }
        None => Ok(link_form(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("This login link is unknown, already used, or expired. Ask for a new one."),
        )),
    }
}

/// `POST /web/logout`.
pub async fn logout(
    State(state): State<ServerState>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let cookie = session::end(&state, &headers).await?;
    let mut response = Redirect::to("/web/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(SET_COOKIE, v);
    }
    Ok(response)
}
