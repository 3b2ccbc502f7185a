//! The page shell every dashboard page shares (head, navigation, sign-out form, notices),
//! the response headers that go with it (no caching, a strict Content-Security-Policy that
//! allows only this server's own script, style and images), and small display helpers.
//!
//! The `<main data-live>` region and the `data-cursor` attribute are the live-update
//! contract with `assets/app.js`: when the user's feed passes the page's cursor, the script
//! re-fetches the page and swaps that region.

use super::session::SessionUser;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use savesync_core::Seq;

/// The navigation entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Saves,
    Conflicts,
    Devices,
    Pair,
    Activity,
}

const NAV: [(Nav, &str, &str); 5] = [
    (Nav::Saves, "/web/saves", "Saves"),
    (Nav::Conflicts, "/web/conflicts", "Conflicts"),
    (Nav::Devices, "/web/devices", "Devices"),
    (Nav::Pair, "/web/pair", "Pair"),
    (Nav::Activity, "/web/activity", "Activity"),
];

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// What a page is.
#[derive(Debug)]
pub struct Page<'a> {
    pub title: &'a str,
    pub user: &'a SessionUser,
    pub nav: Nav,
    /// The feed position the page reflects (live updates start after it).
    pub cursor: Seq,
    /// A message picked by the `notice` query key (see [`notice`]).
    pub notice: Option<&'a str>,
}

/// A message for a `?notice=KEY` after a redirect: the key picks fixed text, so nothing
/// from the URL is ever shown. `(css class, text)`.
#[must_use]
pub fn notice(key: &str) -> Option<(&'static str, &'static str)> {
    Some(match key {
        "restored" => ("ok", "Restored: that version is the head now; devices pick it up."),
        "race" => (
            "warn",
            "Not restored: the save changed since this page was loaded (another device wrote \
             it). Look at the new history and choose again.",
        ),
        "revoked" => ("ok", "Device revoked: its token no longer works."),
        "gone" => ("warn", "That no longer exists."),
        _ => return None,
    })
}

/// A full signed-in page.
pub fn page(p: &Page<'_>, body: Markup) -> Response {
    let notice = p.notice.and_then(notice);
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (p.title) " · savesync" }
                link rel="stylesheet" href="/web/assets/app.css";
                script src="/web/assets/app.js" defer {}
            }
            body data-cursor=(p.cursor.0) {
                header {
                    a.brand href="/web/saves" { "savesync" }
                    nav {
                        @for (nav, href, label) in NAV {
                            a href=(href) aria-current=[(nav == p.nav).then_some("page")] { (label) }
                        }
                    }
                    form.signout method="post" action="/web/logout" {
                        input type="hidden" name="csrf" value=(p.user.csrf);
                        span.who { (p.user.user_name) }
                        button type="submit" { "Sign out" }
                    }
                }
                @if let Some((class, text)) = notice {
                    p.notice.(class) role="status" { (text) }
                }
                h1 { (p.title) " " span id="live" title="live updates" {} }
                main data-live { (body) }
            }
        }
    };
    html_response(StatusCode::OK, doc)
}

/// A page for someone not signed in (login pages, errors).
pub fn bare(status: StatusCode, title: &str, body: Markup) -> Response {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · savesync" }
                link rel="stylesheet" href="/web/assets/app.css";
                script src="/web/assets/app.js" defer {}
            }
            body.bare {
                header { a.brand href="/web/saves" { "savesync" } }
                h1 { (title) }
                main { (body) }
            }
        }
    };
    html_response(status, doc)
}

/// An error page.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    bare(
        status,
        title,
        html! { p.error { (message) } p { a href="/web/saves" { "Back to your saves" } } },
    )
}

fn html_response(status: StatusCode, doc: Markup) -> Response {
    let mut response = (status, doc.into_string()).into_response();
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(HeaderName::from_static("content-security-policy"), HeaderValue::from_static(CSP));
    h.insert(HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    h.insert(HeaderName::from_static("referrer-policy"), HeaderValue::from_static("same-origin"));
    response
}

/// `12.3 KiB`.
#[must_use]
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `2026-11-30T18:04:22Z` as `2026-11-30 18:04:22 UTC`.
#[must_use]
pub fn when(rfc3339: &str) -> String {
    match rfc3339.strip_suffix('Z') {
        Some(t) => format!("{} UTC", t.replacen('T', " ", 1)),
        None => rfc3339.to_owned(),
    }
}

/// `/web/history?path=...` for a save.
#[must_use]
pub fn history_href(path: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new()).append_pair("path", path).finish();
    format!("/web/history?{q}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times_read_well() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(8192), "8.0 KiB");
        assert_eq!(size(5 * 1024 * 1024 + 1), "5.0 MiB");
        assert_eq!(when("2026-11-30T18:04:22Z"), "2026-11-30 18:04:22 UTC");
        assert_eq!(when("garbage"), "garbage");
        assert_eq!(history_href("snes/A b.srm"), "/web/history?path=snes%2FA+b.srm");
    }

    #[test]
    fn notices_are_fixed_texts_chosen_by_key() {
        assert!(notice("restored").is_some());
        assert!(notice("race").unwrap().1.contains("changed"));
        assert_eq!(notice("<script>"), None);
    }
}
