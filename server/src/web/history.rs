//! One save's history: every kept version (commit or conflict) with its device, time and
//! size; downloading any version by its id; and restoring one as the head in one click.
//!
//! Restore is the device API's compare-and-swap: the form carries the head revision the
//! page showed (`base_rev`), so if a device wrote the save after the page was loaded the
//! restore is refused and the page says so (`?notice=race`) instead of overwriting that
//! newer save. Every lookup is scoped by the session's user: another user's save or
//! version id is a 404.

use super::error::WebError;
use super::layout::{self, Nav, Page, history_href};
use super::session::SessionUser;
use crate::http::ServerState;
use crate::http::content::commit_and_publish;
use crate::meta::{Actor, CommitRequest, NewContent};
use crate::timestamps::now_unix;
use axum::Form;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::HeaderValue;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use savesync_core::wire::{HASH_HEADER, REV_HEADER, VersionKind};
use savesync_core::{ErrorCode, Rev, SavePath};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    path: String,
    notice: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct VersionQuery {
    path: String,
    id: i64,
}

#[derive(Debug, Deserialize)]
pub struct RestoreForm {
    path: String,
    version_id: i64,
    base_rev: u64,
}

/// A path from the URL or a form; one that is not a valid save path names no save.
fn save_path(raw: &str) -> Result<SavePath, WebError> {
    SavePath::parse(raw).map_err(|_| WebError::NotFound)
}

/// `GET /web/history?path=P`.
pub async fn page(
    State(state): State<ServerState>,
    user: SessionUser,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, WebError> {
    let path = save_path(&q.path)?;
    let meta = state.app.meta();
    let seq = meta.current_seq(user.user_id).await?;
    let history = meta.history(user.user_id, &path).await?.ok_or(WebError::NotFound)?;
    let head = meta.head(user.user_id, &path).await?;
    let head_rev = head.as_ref().map_or(Rev::NONE, |h| h.rev);
    let body = html! {
        p { "Head: "
            @match &head {
                Some(h) if h.deleted => { "deleted at rev " (h.rev.0) }
                Some(h) => { "rev " (h.rev.0) ", " (layout::size(h.size)) ", "
                    (layout::when(&h.committed_at)) " by " (h.device.as_deref().unwrap_or("-")) }
                None => { "none (only conflict versions are kept)" }
            }
        }
        table id="versions" {
            thead { tr { th { "Version" } th { "When" } th.wide { "Device" } th.num { "Size" } th { "" } } }
            tbody {
                @for v in &history.versions {
                    @let is_head = v.kind == VersionKind::Commit && v.rev == head_rev;
                    tr data-version=(v.version_id) data-kind=(if v.kind == VersionKind::Commit { "commit" } else { "conflict" }) {
                        td {
                            @match v.kind {
                                VersionKind::Commit => { "rev " (v.rev.0) " " }
                                VersionKind::Conflict => { span.badge.conflict { "conflict" } " on rev " (v.rev.0) " " }
                            }
                            @if is_head { span.badge.head { "head" } }
                        }
                        td { (layout::when(&v.created_at)) }
                        td.wide { (v.device.as_deref().unwrap_or("-")) }
                        td.num { @if v.hash.is_some() { (layout::size(v.size)) } @else { "deleted" } }
                        td {
                            @if v.hash.is_some() {
                                a.download href=(version_href(path.as_str(), v.version_id)) download { "Download" }
                                " "
                            }
                            @if !is_head {
                                form.inline method="post" action="/web/restore" {
                                    input type="hidden" name="csrf" value=(user.csrf);
                                    input type="hidden" name="path" value=(path.as_str());
                                    input type="hidden" name="version_id" value=(v.version_id);
                                    input type="hidden" name="base_rev" value=(head_rev.0);
                                    button.restore type="submit" { "Restore" }
                                }
                            }
                        }
                    }
                }
            }
        }
        p.muted { "Restoring makes a copy of that version the new head; nothing is lost." }
    };
    let page = Page {
        title: path.as_str(),
        user: &user,
        nav: Nav::Saves,
        cursor: seq,
        notice: q.notice.as_deref(),
    };
    Ok(layout::page(&page, body))
}

/// `/web/version?path=P&id=N`.
#[must_use]
pub fn version_href(path: &str, id: i64) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("path", path)
        .append_pair("id", &id.to_string())
        .finish();
    format!("/web/version?{q}")
}

/// A `Content-Disposition` for downloading `path`'s version `rev` under its own file name
/// (RFC 6266: an ASCII fallback plus the UTF-8 name percent-encoded).
fn attachment(path: &SavePath, rev: Rev) -> String {
    let name = path.as_str().rsplit('/').next().unwrap_or("save");
    let fallback: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._- ".contains(c) { c } else { '_' })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!(
        "attachment; filename=\"r{} {fallback}\"; filename*=UTF-8''r{}%20{encoded}",
        rev.0, rev.0
    )
}

/// `GET /web/version?path=P&id=N`: the bytes of one version (commit or conflict).
pub async fn download(
    State(state): State<ServerState>,
    user: SessionUser,
    Query(q): Query<VersionQuery>,
) -> Result<Response, WebError> {
    let path = save_path(&q.path)?;
    let version = state
        .app
        .meta()
        .version_by_id(user.user_id, &path, q.id)
        .await?
        .ok_or(WebError::NotFound)?;
    let hash = version.hash.ok_or(WebError::NotFound)?;
    let (reader, _) = match state.app.blobs().get(&hash).await {
        Ok(found) => found,
        Err(crate::blob::BlobError::NotFound) => {
            tracing::error!(%hash, path = %path, "blob of a kept version is missing");
            return Err(WebError::NotFound);
        }
        Err(e) => return Err(e.into()),
    };
    let mut response = Body::from_stream(tokio_util::io::ReaderStream::new(reader)).into_response();
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(version.size));
    h.insert(REV_HEADER, HeaderValue::from(version.rev.0));
    if let Ok(v) = HeaderValue::from_str(&hash.to_hex()) {
        h.insert(HASH_HEADER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&attachment(&path, version.rev)) {
        h.insert(CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// `POST /web/restore` (CSRF-checked by the middleware).
pub async fn restore(
    State(state): State<ServerState>,
    user: SessionUser,
    Form(form): Form<RestoreForm>,
) -> Result<Response, WebError> {
    let path = save_path(&form.path)?;
    let version = state
        .app
        .meta()
        .version_by_id(user.user_id, &path, form.version_id)
        .await?
        .ok_or(WebError::NotFound)?;
    let content = match version.hash {
        Some(hash) => NewContent::Bytes { hash, size: version.size },
        None => NewContent::Tombstone,
    };
    let request = CommitRequest {
        actor: Actor { user_id: user.user_id, device_id: None },
        path: path.clone(),
        base_rev: Rev(form.base_rev),
        content,
        operation: "restore",
        now: now_unix(),
    };
    let back = history_href(path.as_str());
    match commit_and_publish(&state, request, None).await {
        Ok(head) => {
            tracing::info!(user = user.user_id, rev = head.rev.0, "restored from the dashboard");
            Ok(Redirect::to(&format!("{back}&notice=restored")).into_response())
        }
        Err(e) if e.code == ErrorCode::Conflict => {
            Ok(Redirect::to(&format!("{back}&notice=race")).into_response())
        }
        Err(e) if e.code == ErrorCode::NotFound => Err(WebError::NotFound),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_are_named_after_the_save_and_its_revision() {
        let p = SavePath::parse("snes/Chrono Trigger.srm").unwrap();
        assert_eq!(
            attachment(&p, Rev(3)),
            "attachment; filename=\"r3 Chrono Trigger.srm\"; filename*=UTF-8''r3%20Chrono%20Trigger.srm"
        );
        let p = SavePath::parse("gba/Pokémon \"x\".sav").unwrap();
        let header = attachment(&p, Rev(1));
        assert!(header.contains("filename=\"r1 Pok_mon _x_.sav\""), "{header}");
        assert!(header.contains("Pok%C3%A9mon%20%22x%22.sav"), "{header}");
        assert_eq!(version_href("a/b c", 7), "/web/version?path=a%2Fb+c&id=7");
    }
}
