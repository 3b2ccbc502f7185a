//! The Conflicts page: the signed-in user's open conflict versions across all devices
//! (an upload that lost its compare-and-swap and that its device has not yet resolved),
//! each beside the save's current head: the two versions to pick from. Keeping the head
//! needs nothing from the server (the device that made the conflict takes the head at its
//! next sync); keeping the conflict version is a restore of it, compare-and-swap on the
//! head shown.

use super::error::WebError;
use super::history::version_href;
use super::layout::{self, Nav, Page, history_href};
use super::live::cursor;
use super::session::SessionUser;
use crate::http::ServerState;
use axum::extract::State;
use axum::response::Response;
use maud::html;
use savesync_core::Rev;

/// Most conflicts listed at once (a save keeps a bounded number each).
const MAX_LISTED: u32 = 200;

/// `GET /web/conflicts`.
pub async fn page(
    State(state): State<ServerState>,
    user: SessionUser,
) -> Result<Response, WebError> {
    let seq = cursor(&state, user.user_id).await?;
    let conflicts = state.app.meta().open_conflicts(user.user_id, MAX_LISTED).await?;
    let body = html! {
        @if conflicts.is_empty() {
            p id="no-conflicts" { "No open conflicts. Every device agrees on every save." }
        }
        @for c in &conflicts {
            @let head_rev = c.head.as_ref().map_or(Rev::NONE, |h| h.rev);
            h2 { a href=(history_href(c.path.as_str())) { (c.path.as_str()) } }
            div.pick data-conflict=(c.version.version_id) {
                div.card.stack {
                    p { strong { "Current head" } }
                    @match &c.head {
                        Some(h) if !h.deleted => {
                            p { "rev " (h.rev.0) ", " (layout::size(h.size)) ", "
                                (layout::when(&h.committed_at)) " by " (h.device.as_deref().unwrap_or("-")) }
                            p.muted { "To keep it, do nothing: the other device takes it at its next sync." }
                        }
                        Some(_) => { p { "deleted" } }
                        None => { p { "none" } }
                    }
                }
                div.card.stack {
                    p { strong { "Conflict version from " (c.version.device.as_deref().unwrap_or("a device")) } }
                    p { "made on rev " (c.version.rev.0) ", " (layout::size(c.version.size)) ", "
                        (layout::when(&c.version.created_at)) }
                    p {
                        @if c.version.hash.is_some() {
                            a href=(version_href(c.path.as_str(), c.version.version_id)) download { "Download" } " "
                        }
                        form.inline method="post" action="/web/restore" {
                            input type="hidden" name="csrf" value=(user.csrf);
                            input type="hidden" name="path" value=(c.path.as_str());
                            input type="hidden" name="version_id" value=(c.version.version_id);
                            input type="hidden" name="base_rev" value=(head_rev.0);
                            button.primary type="submit" { "Keep this one" }
                        }
                    }
                }
            }
        }
    };
    let page =
        Page { title: "Conflicts", user: &user, nav: Nav::Conflicts, cursor: seq, notice: None };
    Ok(layout::page(&page, body))
}
