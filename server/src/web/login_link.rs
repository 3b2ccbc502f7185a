//! Issuing one-time login links (`savesync-server login-link NAME`): a 256-bit random
//! token, stored as its SHA-256 with an expiry, redeemed once by `login::with_link`.

use super::session::random_secret;
use crate::app::App;
use crate::secrets::hash_token;
use crate::timestamps::{now_unix, rfc3339};
use anyhow::Context;

/// A freshly issued link.
pub struct LoginLink {
    /// The full URL to open (the token after `#`).
    pub url: String,
    pub expires_at: String,
}

impl std::fmt::Debug for LoginLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLink").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

/// A one-time link for the existing user `name`, under the server's base URL `base`.
pub async fn issue(app: &App, name: &str, base: &str) -> anyhow::Result<LoginLink> {
    let name = name.trim();
    let user = app
        .meta()
        .user_password(name)
        .await?
        .with_context(|| {
            format!("no user {name:?} (users are created by `savesync-server pair --user {name}`)")
        })?
        .user_id;
    let token = random_secret();
    let now = now_unix();
    let ttl = i64::try_from(app.config().web.login_link_ttl.as_secs()).unwrap_or(i64::MAX);
    let expires = now.saturating_add(ttl);
    app.meta().add_login_link(user, &hash_token(&token), expires, now).await?;
    Ok(LoginLink {
        url: format!("{}/web/login/link#{token}", base.trim_end_matches('/')),
        expires_at: rfc3339(expires),
    })
}
