//! The Devices page: every device of the signed-in user (name, kind, last seen, online
//! now: it holds an open event stream to this server), and revoking one.

use super::error::WebError;
use super::layout::{self, Nav, Page};
use super::live::cursor;
use super::session::SessionUser;
use crate::http::ServerState;
use crate::timestamps::now_unix;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct NoticeQuery {
    pub notice: Option<String>,
}

/// `GET /web/devices`.
pub async fn page(
    State(state): State<ServerState>,
    user: SessionUser,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, WebError> {
    let seq = cursor(&state, user.user_id).await?;
    let devices = state.app.meta().list_devices(user.user_id).await?;
    let admin_only = state.app.config().admin_cli_only;
    let body = html! {
        @if devices.is_empty() {
            p { "No devices yet. " a href="/web/pair" { "Pair one" } "." }
        } @else {
            table id="devices" {
                thead { tr { th { "Name" } th.wide { "Kind" } th { "Last seen" } th { "" } } }
                tbody {
                    @for d in &devices {
                        @let online = !d.revoked && state.streams.count(d.id) > 0;
                        tr data-device=(d.id) {
                            td { (d.name) " "
                                @if online { span.badge.online { "online" } }
                                @if d.revoked { span.badge { "revoked" } } }
                            td.wide { (d.kind) }
                            td { (d.last_seen_at.as_deref().map_or_else(|| "never".to_owned(), layout::when)) }
                            td {
                                @if !d.revoked && !admin_only {
                                    form.inline method="post" action={"/web/devices/" (d.id) "/revoke"} {
                                        input type="hidden" name="csrf" value=(user.csrf);
                                        button type="submit" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if admin_only { p.muted { "Revoking is reserved to the server's admin here." } }
        }
    };
    let page = Page {
        title: "Devices",
        user: &user,
        nav: Nav::Devices,
        cursor: seq,
        notice: q.notice.as_deref(),
    };
    Ok(layout::page(&page, body))
}

/// `POST /web/devices/{id}/revoke`: only a device of the signed-in user (else 404).
pub async fn revoke(
    State(state): State<ServerState>,
    user: SessionUser,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    if state.app.config().admin_cli_only {
        return Err(WebError::Forbidden("revoking devices is reserved to the server's admin"));
    }
    if !state.app.meta().revoke_device(Some(user.user_id), id, now_unix()).await? {
        return Err(WebError::NotFound);
    }
    state.app.signal_revoked(id);
    tracing::info!(device_id = id, user = user.user_id, "device revoked from the dashboard");
    Ok(Redirect::to("/web/devices?notice=revoked").into_response())
}
