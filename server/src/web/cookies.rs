//! Reading and writing the dashboard's two cookies: the session (`savesync_session`) and
//! the pre-login CSRF secret (`savesync_login`). Both are HttpOnly (scripts never read
//! them), `SameSite=Strict` (no other site's page makes the browser send them, so a
//! forged cross-site form arrives without a session), scoped to `/web`, and `Secure` when
//! the server's public URL is https.
//!
//! Strict rather than Lax is possible because nothing needs the cookie on a cross-site
//! navigation: a login link opens a page whose *button* (a same-site POST) signs in.

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use std::time::Duration;

/// The value of cookie `name` in the request, if present (the first non-empty one wins).
#[must_use]
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, v)| *k == name && !v.trim().is_empty())
        .map(|(_, v)| v.trim().to_owned())
        .next()
}

/// A `Set-Cookie` value that stores `value` for `max_age`.
#[must_use]
pub fn set(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{name}={value}; Path=/web; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        max_age.as_secs()
    )
}

/// A `Set-Cookie` value that deletes cookie `name`.
#[must_use]
pub fn clear(name: &str, secure: bool) -> String {
    set(name, "", Duration::ZERO, secure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn cookies_are_found_by_exact_name_across_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(read(&h, "a"), None);
        h.append(COOKIE, HeaderValue::from_static("xa=1; a=; b=2"));
        h.append(COOKIE, HeaderValue::from_static("a=3"));
        assert_eq!(read(&h, "a"), Some("3".to_owned()), "an empty value does not count");
        assert_eq!(read(&h, "b"), Some("2".to_owned()));
        assert_eq!(read(&h, "x"), None);
    }

    #[test]
    fn set_cookie_is_http_only_strict_and_secure_on_https() {
        let plain = set("s", "v", Duration::from_secs(60), false);
        assert_eq!(plain, "s=v; Path=/web; Max-Age=60; HttpOnly; SameSite=Strict");
        assert!(set("s", "v", Duration::from_secs(1), true).ends_with("; Secure"));
        assert!(clear("s", false).starts_with("s=; Path=/web; Max-Age=0;"));
    }
}
