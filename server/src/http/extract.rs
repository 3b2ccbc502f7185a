//! Request extractors that fail with [`ApiError`]: JSON bodies (`bad_json`), query strings
//! (`bad_request`), save paths (`bad_path`) and the device token (`unauthorized`,
//! `device_revoked`); plus [`ClientAddr`], the address rate limits are keyed on.

use super::ServerState;
use crate::error::ApiError;
use crate::meta::{Actor, DeviceId, UserId};
use crate::secrets::{hash_token, hashes_match};
use crate::timestamps::now_unix;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use savesync_core::{ErrorCode, SavePath};
use serde::de::DeserializeOwned;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// `axum::Json` whose rejection is `bad_json` (or `body_too_large`), with the same
/// messages. A body sent as exactly `application/json` is parsed by plain `serde_json`
/// first; only when that fails is it parsed again by `axum::Json`, whose message names the
/// failing field (`serde_path_to_error`). In a profile of a 10,000-entry negotiate, tracking
/// that path was 2 of the parse's 5 ms. Other content types go to `axum::Json` as is.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_plain_json(req.headers()) {
            let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
            return Ok(ApiJson(value));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(JsonRejection::from)?;
        match serde_json::from_slice(&bytes) {
            Ok(value) => Ok(ApiJson(value)),
            Err(_) => Ok(ApiJson(axum::Json::<T>::from_bytes(&bytes)?.0)),
        }
    }
}

/// Whether the content type is exactly `application/json`, which `axum::Json` accepts too.
/// Anything it might refuse (or accept only after parsing the type) returns false.
fn is_plain_json(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|v| v.as_bytes() == b"application/json")
}

/// `axum::extract::Query` whose rejection is `bad_request`. Unlike it, a query whose
/// percent-decoded bytes are not UTF-8 is refused instead of decoded lossily: two different
/// invalid names must not silently become the same `U+FFFD` save path.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if !decodes_to_utf8(parts.uri.query().unwrap_or_default()) {
            return Err(ApiError::bad_request(
                "the query string is not valid UTF-8 once percent-decoded",
            ));
        }
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(value))
    }
}

/// Whether every `%XX` escape in `query` decodes, together with the literal bytes, to
/// UTF-8. A `%` not followed by two hex digits stays literal, as form decoding treats it.
fn decodes_to_utf8(query: &str) -> bool {
    if !query.contains('%') {
        return true; // the URI is already text
    }
    let bytes = query.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    std::str::from_utf8(&decoded).is_ok()
}

/// `axum::extract::Path` (URL segments such as a device id) whose rejection is
/// `bad_request`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Validate a `path=` query value.
pub fn parse_path(raw: &str) -> Result<SavePath, ApiError> {
    SavePath::parse(raw)
        .map_err(|e| ApiError::new(ErrorCode::BadPath, format!("invalid save path: {e}")))
}

/// The authenticated device making the request.
#[derive(Debug, Clone)]
pub struct AuthDevice {
    pub user_id: UserId,
    pub device_id: DeviceId,
}

impl AuthDevice {
    /// Attribution for writes.
    #[must_use]
    pub fn actor(&self) -> Actor {
        Actor { user_id: self.user_id, device_id: Some(self.device_id) }
    }
}

impl FromRequestParts<ServerState> for AuthDevice {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ServerState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized =
            || ApiError::new(ErrorCode::Unauthorized, "missing or unknown device token");
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(unauthorized)?;
        let presented = hash_token(token);
        let lookup = presented.clone();
        let device = state
            .app
            .meta()
            .device_by_token_hash(&lookup)
            .await?
            .filter(|d| hashes_match(&d.token_hash, &presented))
            .ok_or_else(unauthorized)?;
        if device.revoked {
            return Err(ApiError::new(ErrorCode::DeviceRevoked, "this device has been revoked"));
        }
        if state.app.due_for_last_seen(device.device_id) {
            let app = state.app.clone();
            let id = device.device_id;
            // Fire and forget: a failed informational update must not fail the request.
            tokio::spawn(async move {
                if let Err(e) = app.meta().touch_device(id, now_unix()).await {
                    tracing::debug!(error = %e, "could not update last_seen_at");
                }
            });
        }
        // Debug formatting escapes anything a name stored before validation existed may hold.
        tracing::debug!(device = ?device.device_name, user = ?device.user_name, "authenticated");
        Ok(AuthDevice { user_id: device.user_id, device_id: device.device_id })
    }
}

/// The client's address: the TCP peer, or with `trust_forwarded_for` the last
/// `X-Forwarded-For` entry (the one the trusted proxy appended). Without connection info
/// (a router driven in-process) every request counts as `0.0.0.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<ServerState> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ServerState,
    ) -> Result<Self, Self::Rejection> {
        if state.app.config().trust_forwarded_for
            && let Some(ip) = forwarded_for(&parts.headers)
        {
            return Ok(ClientAddr(ip));
        }
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(ClientAddr(peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))))
    }
}

/// The last address of the last `X-Forwarded-For` header, if it parses.
fn forwarded_for(headers: &axum::http::HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?;
    let entry = last.to_str().ok()?.rsplit(',').next()?.trim();
    entry.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{ApiJson, decodes_to_utf8, forwarded_for, is_plain_json};
    use crate::error::ApiError;
    use axum::extract::{FromRequest, Request};
    use axum::http::{HeaderMap, HeaderValue};
    use savesync_core::wire::NegotiateRequest;

    #[test]
    fn only_an_exact_json_content_type_takes_the_plain_parse() {
        let cases: [(Option<&'static str>, bool); 7] = [
            (Some("application/json"), true),
            (Some("application/json; charset=utf-8"), false),
            (Some("Application/JSON"), false),
            (Some("application/vnd.api+json"), false),
            (Some("application/jsonx"), false),
            (Some("text/plain"), false),
            (None, false),
        ];
        for (content_type, plain) in cases {
            let mut headers = HeaderMap::new();
            if let Some(v) = content_type {
                headers.insert("content-type", HeaderValue::from_static(v));
            }
            assert_eq!(is_plain_json(&headers), plain, "{content_type:?}");
        }
    }

    async fn both_ways(content_type: &str, body: &'static str) -> (String, String) {
        let request =
            || Request::builder().header("content-type", content_type).body(body.into()).unwrap();
        let ours = ApiJson::<NegotiateRequest>::from_request(request(), &()).await;
        let axums = axum::Json::<NegotiateRequest>::from_request(request(), &()).await;
        let ours = ours.map(|_| "ok".to_owned()).unwrap_or_else(|e| e.message);
        let axums = axums.map(|_| "ok".to_owned()).unwrap_or_else(|e| ApiError::from(e).message);
        (ours, axums)
    }

    #[tokio::test]
    async fn bodies_are_accepted_and_refused_with_axum_json_messages() {
        let valid = r#"{"entries": [{"path": "a/b.srm", "local": null, "base": null}]}"#;
        let bodies = [
            valid,
            "{\"entries\": [ not json",
            r#"{"entries": [{"path": "../x", "local": null, "base": null}]}"#,
            r#"{"entries": [{"path": "a/b.srm", "local": "zz", "base": null}]}"#,
            r#"{"entries": []} trailing"#,
            "",
        ];
        for content_type in ["application/json", "application/json; charset=utf-8", "text/plain"] {
            for body in bodies {
                let (ours, axums) = both_ways(content_type, body).await;
                assert_eq!(ours, axums, "{content_type}: {body}");
            }
        }
        assert_eq!(both_ways("application/json", valid).await.0, "ok");
        // The message still names the field, from the second (path-tracking) parse.
        assert!(both_ways("application/json", bodies[2]).await.0.contains("entries[0].path"));
    }

    #[test]
    fn queries_that_decode_to_invalid_utf8_are_detected() {
        assert!(decodes_to_utf8("path=snes%2Fzelda.srm&base_rev=0"));
        assert!(decodes_to_utf8("path=%C3%A9t%C3%A9.sav"));
        assert!(decodes_to_utf8("path=100%&x=%ZZ%4"));
        assert!(!decodes_to_utf8("path=%FF%FE"));
        assert!(!decodes_to_utf8("path=%C3"));
    }

    #[test]
    fn forwarded_for_takes_the_entry_the_nearest_proxy_appended() {
        let mut headers = HeaderMap::new();
        assert_eq!(forwarded_for(&headers), None);
        headers.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 203.0.113.7"));
        assert_eq!(forwarded_for(&headers), Some("203.0.113.7".parse().unwrap()));
        headers.append("x-forwarded-for", HeaderValue::from_static(" 2001:db8::1 "));
        assert_eq!(forwarded_for(&headers), Some("2001:db8::1".parse().unwrap()));
        headers.append("x-forwarded-for", HeaderValue::from_static("garbage"));
        assert_eq!(forwarded_for(&headers), None);
    }
}
