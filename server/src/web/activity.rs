//! The Activity page: the signed-in user's recent sync sessions (which device, when, what
//! it planned and reported) and audit log (every upload, delete, restore, pairing,
//! revocation), newest first.

use super::error::WebError;
use super::layout::{self, Nav, Page};
use super::live::cursor;
use super::session::SessionUser;
use crate::http::ServerState;
use crate::timestamps::rfc3339;
use axum::extract::State;
use axum::response::Response;
use maud::html;
use std::collections::HashMap;

/// Rows shown of each list.
const MAX_ROWS: usize = 100;

/// `GET /web/activity`.
pub async fn page(
    State(state): State<ServerState>,
    user: SessionUser,
) -> Result<Response, WebError> {
    let meta = state.app.meta();
    let seq = cursor(&state, user.user_id).await?;
    let devices: HashMap<i64, String> =
        meta.list_devices(user.user_id).await?.into_iter().map(|d| (d.id, d.name)).collect();
    let sessions = meta.sessions(user.user_id).await?;
    let audit = meta.audit(user.user_id, MAX_ROWS as u32).await?;
    let body = html! {
        h2 { "Sync sessions" }
        @if sessions.is_empty() { p.muted { "None yet." } } @else {
            table id="sessions" {
                thead { tr { th { "Started" } th { "Device" } th.num.wide { "Entries" } th { "Result" } } }
                tbody {
                    @for s in sessions.iter().rev().take(MAX_ROWS) {
                        tr {
                            td { (layout::when(&rfc3339(s.started_at))) }
                            td { (s.device_id.and_then(|d| devices.get(&d)).map_or("-", String::as_str)) }
                            td.num.wide { (s.manifest_entries) }
                            td {
                                @match &s.completed {
                                    Some((_, r)) => { "↑" (r.uploaded) " ↓" (r.downloaded) " ✕" (r.deleted)
                                        @if r.conflicts > 0 { " " span.badge.conflict { (r.conflicts) " conflicts" } }
                                        @if r.errors > 0 { " " span.error { (r.errors) " errors" } } }
                                    None => { span.muted { "planned " (s.planned_actions) ", not reported" } }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Audit log" }
        @if audit.is_empty() { p.muted { "Nothing yet." } } @else {
            table id="audit" {
                thead { tr { th { "When" } th { "What" } th { "Save" } th.wide { "Device" } } }
                tbody {
                    @for a in &audit {
                        tr {
                            td { (layout::when(&a.at)) }
                            td { (a.operation) }
                            td { (a.path.as_deref().unwrap_or("")) }
                            td.wide { (a.device.as_deref().unwrap_or("dashboard")) }
                        }
                    }
                }
            }
        }
    };
    let page =
        Page { title: "Activity", user: &user, nav: Nav::Activity, cursor: seq, notice: None };
    Ok(layout::page(&page, body))
}
