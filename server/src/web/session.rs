//! Signed-in dashboard sessions: a random 256-bit id in the `savesync_session` cookie,
//! stored server-side only as its SHA-256 with an expiry (see `meta::sqlite::web`). The
//! [`SessionUser`] extractor is what scopes every page: each query a page makes takes its
//! `user_id`, never anything from the URL.

use super::cookies;
use super::csrf;
use super::error::WebError;
use crate::http::ServerState;
use crate::meta::UserId;
use crate::secrets::{hash_token, hashes_match};
use crate::timestamps::now_unix;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

/// The session cookie.
pub const SESSION_COOKIE: &str = "savesync_session";
/// The pre-login CSRF secret cookie (see `csrf`).
pub const LOGIN_COOKIE: &str = "savesync_login";

/// A fresh 256-bit random secret, hex encoded (session ids, login links, login cookies).
#[must_use]
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// Whether cookies get `Secure` (the server is reached over https).
#[must_use]
pub fn secure_cookies(state: &ServerState) -> bool {
    state.app.config().public_url.as_deref().is_some_and(|u| u.starts_with("https://"))
}

/// The signed-in user of this request.
#[derive(Clone)]
pub struct SessionUser {
    pub user_id: UserId,
    pub user_name: String,
    /// The token this session's forms carry.
    pub csrf: String,
}

impl std::fmt::Debug for SessionUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionUser").field("user_id", &self.user_id).finish_non_exhaustive()
    }
}

impl FromRequestParts<ServerState> for SessionUser {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ServerState,
    ) -> Result<Self, Self::Rejection> {
        let id = cookies::read(&parts.headers, SESSION_COOKIE).ok_or(WebError::SignIn)?;
        let presented = hash_token(&id);
        let session = state
            .app
            .meta()
            .web_session(&presented, now_unix())
            .await?
            .filter(|s| hashes_match(&s.id_hash, &presented))
            .ok_or(WebError::SignIn)?;
        Ok(SessionUser {
            user_id: session.user_id,
            user_name: session.user_name,
            csrf: csrf::token_for(&id),
        })
    }
}

/// Start a session for `user`: store it and return the `Set-Cookie` value.
pub async fn start(state: &ServerState, user: UserId) -> Result<String, WebError> {
    let settings = &state.app.config().web;
    let id = random_secret();
    let now = now_unix();
    let ttl = i64::try_from(settings.session_ttl.as_secs()).unwrap_or(i64::MAX);
    state
        .app
        .meta()
        .add_web_session(
            user,
            &hash_token(&id),
            now.saturating_add(ttl),
            settings.max_sessions_per_user,
            now,
        )
        .await?;
    Ok(cookies::set(SESSION_COOKIE, &id, settings.session_ttl, secure_cookies(state)))
}

/// End the request's session, if any; returns the `Set-Cookie` value that clears it.
pub async fn end(state: &ServerState, headers: &HeaderMap) -> Result<String, WebError> {
    if let Some(id) = cookies::read(headers, SESSION_COOKIE) {
        state.app.meta().end_web_session(&hash_token(&id)).await?;
    }
    Ok(cookies::clear(SESSION_COOKIE, secure_cookies(state)))
}
