//! Who is asking: HTTP Basic auth with the device name as the user name and the device
//! token as the password. The token is looked up by its hash and confirmed in constant
//! time, exactly as the API's bearer tokens are; the name must match too, so a token typed
//! under the wrong name is refused. Only devices created for WebDAV (with a library root)
//! are let in, and a revoked device is refused (`401`) like an unknown one.

use crate::http::ServerState;
use crate::meta::{Actor, DeviceId, UserId};
use crate::secrets::{hash_token, hashes_match};
use crate::timestamps::now_unix;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use savesync_core::SavePath;

/// An authenticated WebDAV device.
#[derive(Debug, Clone)]
pub struct DavDevice {
    pub user_id: UserId,
    pub device_id: DeviceId,
    /// The library folder its base URL maps to.
    pub root: SavePath,
}

impl DavDevice {
    pub fn actor(&self) -> Actor {
        Actor { user_id: self.user_id, device_id: Some(self.device_id) }
    }
}

/// Why a request is not let in.
#[derive(Debug)]
pub enum Refused {
    /// No, malformed or wrong credentials, a revoked device, or not a WebDAV device.
    Unauthorized,
    /// The metadata store failed.
    Store(crate::meta::MetaError),
}

/// The user name and password of a Basic `Authorization` header.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

pub async fn authenticate(state: &ServerState, headers: &HeaderMap) -> Result<DavDevice, Refused> {
    let (name, token) = basic_credentials(headers).ok_or(Refused::Unauthorized)?;
    let presented = hash_token(token.trim());
    let meta = state.app.meta();
    let device = meta
        .device_by_token_hash(&presented)
        .await
        .map_err(Refused::Store)?
        .filter(|d| hashes_match(&d.token_hash, &presented))
        .ok_or(Refused::Unauthorized)?;
    if device.revoked || device.device_name != name {
        return Err(Refused::Unauthorized);
    }
    let root = meta
        .dav_root(device.device_id)
        .await
        .map_err(Refused::Store)?
        .ok_or(Refused::Unauthorized)?;
    if state.app.due_for_last_seen(device.device_id) {
        let app = state.app.clone();
        let id = device.device_id;
        tokio::spawn(async move {
            if let Err(e) = app.meta().touch_device(id, now_unix()).await {
                tracing::debug!(error = %e, "could not update last_seen_at");
            }
        });
    }
    Ok(DavDevice { user_id: device.user_id, device_id: device.device_id, root })
}

#[cfg(test)]
mod tests {
    use super::basic_credentials;
    use axum::http::{HeaderMap, HeaderValue};

    #[test]
    fn basic_credentials_are_parsed_and_anything_else_is_refused() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("authorization", HeaderValue::from_static(v));
            basic_credentials(&h)
        };
        // "deck:ss_abc" and "deck:pa:ss" (a colon in the password is kept)
        assert_eq!(with("Basic ZGVjazpzc19hYmM="), Some(("deck".into(), "ss_abc".into())));
        assert_eq!(with("basic ZGVjazpwYTpzcw=="), Some(("deck".into(), "pa:ss".into())));
        assert_eq!(with("Bearer ss_abc"), None);
        assert_eq!(with("Basic !!!"), None);
        assert_eq!(with("Basic ZGVjaw=="), None); // "deck", no colon
        assert_eq!(with("Digest username=\"deck\""), None);
        assert_eq!(basic_credentials(&HeaderMap::new()), None);
    }
}
