//! Cross-site request forgery protection for every dashboard POST, in one middleware so no
//! form can forget it.
//!
//! Two checks, both must pass:
//! - **Origin.** The request's `Origin` (or, without one, its `Referer`) must name this
//!   server's own host, as the browser reached it (`Host`). A request with neither is
//!   refused: every browser sends `Origin` on a form POST.
//! - **Synchronizer token.** The form's `csrf` field must equal a token derived from a
//!   secret only this browser holds in an HttpOnly cookie: the session id once signed in,
//!   the pre-login secret (`savesync_login`) on the login forms. The token is
//!   SHA-256("savesync-csrf", secret): tied to the session, unguessable without the
//!   cookie, and nothing to store. Compared in constant time.

use super::cookies;
use super::error::WebError;
use super::session::{LOGIN_COOKIE, SESSION_COOKIE};
use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{HOST, ORIGIN, REFERER};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// Largest dashboard form body (a password, a path, a few ids).
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// The form token for a browser holding cookie secret `secret`.
#[must_use]
pub fn token_for(secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"savesync-csrf\0");
    h.update(secret.as_bytes());
    hex::encode(h.finalize())
}

/// Whether `origin` (else `referer`) names `host` (`name[:port]`, as in the Host header).
#[must_use]
pub fn same_origin(origin: Option<&str>, referer: Option<&str>, host: Option<&str>) -> bool {
    let Some(host) = host.map(str::trim).filter(|h| !h.is_empty()) else { return false };
    let claimed = origin.filter(|o| !o.trim().is_empty()).or(referer);
    let Some(url) = claimed.and_then(|c| url::Url::parse(c.trim()).ok()) else { return false };
    if !matches!(url.scheme(), "http" | "https") {
        return false;
    }
    let Some(name) = url.host_str() else { return false };
    let authority = match url.port() {
        Some(port) => format!("{name}:{port}"),
        None => name.to_owned(),
    };
    authority.eq_ignore_ascii_case(host) || default_port_form(&authority, &url) == host
}

/// `url` with its scheme's default port written out (a Host header may carry it).
fn default_port_form(authority: &str, url: &url::Url) -> String {
    match (url.port(), url.port_or_known_default()) {
        (None, Some(port)) => format!("{authority}:{port}"),
        _ => authority.to_owned(),
    }
}

/// Whether the submitted `token` matches the one derived from any of `secrets`.
#[must_use]
pub fn token_matches(token: Option<&str>, secrets: &[Option<String>]) -> bool {
    let Some(token) = token else { return false };
    secrets.iter().flatten().any(|secret| crate::secrets::hashes_match(&token_for(secret), token))
}

/// The `csrf` field of an urlencoded form body.
fn form_token(body: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(body).find(|(k, _)| k == "csrf").map(|(_, v)| v.into_owned())
}

fn header<'a>(headers: &'a HeaderMap, name: &axum::http::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Refuse any state-changing dashboard request that fails either check (403); pass the
/// rest on with their (buffered) body.
pub async fn require_csrf(req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    if !same_origin(header(h, &ORIGIN), header(h, &REFERER), header(h, &HOST)) {
        return WebError::Forbidden("the request did not come from this dashboard's own pages")
            .into_response();
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return WebError::BadRequest("the form is too large".to_owned()).into_response();
    };
    let secrets = [cookies::read(h, SESSION_COOKIE), cookies::read(h, LOGIN_COOKIE)];
    if !token_matches(form_token(&bytes).as_deref(), &secrets) {
        return WebError::Forbidden(
            "the form's security token is missing or stale: reload the page and try again",
        )
        .into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_check_table() {
        let host = Some("nas.local:7878");
        let table = [
            (Some("http://nas.local:7878"), None, host, true),
            (Some("https://NAS.local:7878"), None, host, true),
            (None, Some("http://nas.local:7878/web/saves?q=x"), host, true),
            (Some("http://evil.example"), Some("http://nas.local:7878/"), host, false),
            (Some("http://nas.local:7879"), None, host, false),
            (Some("null"), None, host, false),
            (None, None, host, false),
            (Some("http://nas.local:7878"), None, None, false),
            (Some("http://nas.local"), None, Some("nas.local"), true),
            (Some("http://nas.local"), None, Some("nas.local:80"), true),
            (Some("file:///x"), None, Some("x"), false),
        ];
        for (origin, referer, host, expected) in table {
            assert_eq!(same_origin(origin, referer, host), expected, "{origin:?} {referer:?}");
        }
    }

    #[test]
    fn token_must_derive_from_a_cookie_the_browser_holds() {
        let session = Some("s3cr3t".to_owned());
        let good = token_for("s3cr3t");
        assert!(token_matches(Some(&good), &[session.clone(), None]));
        assert!(token_matches(Some(&good), &[None, session.clone()]));
        assert!(!token_matches(Some(&good), &[Some("other".to_owned()), None]));
        assert!(!token_matches(None, &[session.clone(), None]));
        assert!(!token_matches(Some("s3cr3t"), &[session, None]), "the raw secret is not it");
        assert!(!token_matches(Some(&good), &[None, None]));
    }

    #[test]
    fn the_token_is_read_from_the_form_body() {
        assert_eq!(form_token(b"a=1&csrf=ab%2Bc&b=2").as_deref(), Some("ab+c"));
        assert_eq!(form_token(b"a=1"), None);
    }
}
