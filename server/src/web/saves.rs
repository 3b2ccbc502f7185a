//! The Saves page: the signed-in user's live saves as a tree by platform, with size, last
//! change and the device that made it, and a search box (`?q=`; see `tree`).

use super::error::WebError;
use super::layout::{self, Nav, Page};
use super::session::SessionUser;
use super::tree;
use crate::http::ServerState;
use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

/// Longest search accepted (it only filters; longer is surely not a name).
const MAX_QUERY_CHARS: usize = 200;

#[derive(Debug, Deserialize)]
pub struct SavesQuery {
    #[serde(default)]
    q: String,
}

/// `GET /web/saves?q=`.
pub async fn page(
    State(state): State<ServerState>,
    user: SessionUser,
    Query(query): Query<SavesQuery>,
) -> Result<Response, WebError> {
    let q: String = query.q.chars().take(MAX_QUERY_CHARS).collect();
    let (saves, seq) = state.app.meta().list_saves(user.user_id, None, false).await?;
    let platforms = tree::group(&saves, &q);
    let body = html! {
        form.search method="get" action="/web/saves" role="search" {
            input type="search" name="q" value=(q) placeholder="Search saves" aria-label="Search saves";
        }
        @if saves.is_empty() {
            p id="no-saves" { "No saves yet. They appear here as soon as a device uploads one." }
        } @else if platforms.is_empty() {
            p { "No save matches " q { (q) } "." }
        }
        @for platform in &platforms {
            details.platform open data-platform=(platform.name) {
                summary { (platform.name) " "
                    span.muted { "(" (platform.saves.len()) ", " (layout::size(platform.bytes)) ")" } }
                table {
                    thead { tr { th { "Save" } th.num { "Size" } th { "Changed" } th.wide { "By" } } }
                    tbody {
                        @for (name, save) in &platform.saves {
                            tr data-path=(save.path.as_str()) {
                                td { a href=(layout::history_href(save.path.as_str())) { (name) } }
                                td.num { (layout::size(save.size)) }
                                td { (layout::when(&save.committed_at)) }
                                td.wide { (save.device.as_deref().unwrap_or("-")) }
                            }
                        }
                    }
                }
            }
        }
    };
    let page = Page { title: "Saves", user: &user, nav: Nav::Saves, cursor: seq, notice: None };
    Ok(layout::page(&page, body))
}
