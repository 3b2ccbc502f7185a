//! `POST /negotiate` and `POST /sessions/{id}/complete`.
//!
//! The device sends its manifest; the server loads all of the user's heads in ONE query,
//! decides every save in memory with `savesync_core::decide` (the same function the mount
//! runs), and records the plan as a sync session. A 10,000-entry manifest is a hash-map
//! pass, not 10,000 queries; it runs on a blocking thread, and a manifest over
//! `config.max_manifest_entries` is refused (`body_too_large`) before any of it.

use super::ServerState;
use super::extract::{ApiJson, ApiPath, AuthDevice};
use crate::error::ApiError;
use crate::meta::SessionStart;
use crate::timestamps::now_unix;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use savesync_core::wire::{
    ActionKind, ManifestEntry, NegotiateRequest, NegotiateResponse, PlannedAction, SaveMeta,
    SessionReport,
};
use savesync_core::{ContentHash, ErrorCode, SavePath, Version, decide};
use std::collections::HashSet;

pub async fn negotiate(
    State(state): State<ServerState>,
    auth: AuthDevice,
    ApiJson(req): ApiJson<NegotiateRequest>,
) -> Result<Json<NegotiateResponse>, ApiError> {
    let cap = state.app.config().max_manifest_entries;
    let entries = req.entries.len() as u64;
    if entries > cap {
        return Err(ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("the manifest has {entries} entries; the limit is {cap}"),
        ));
    }
    let (user, device, actor) = (auth.user_id, auth.device_id, auth.actor());
    // Planning (a pass over up to `max_manifest_entries` entries) runs on a blocking
    // thread, never on an async worker; the store moves its own I/O off them too.
    let meta = state.app.meta();
    let (heads, cursor) = meta.all_heads(user).await?;
    let untracked = meta.untracked(device).await?;
    let actions =
        tokio::task::spawn_blocking(move || plan(&req.entries, heads, &untracked)).await?;
    let start = SessionStart {
        actor,
        manifest_entries: entries,
        planned_actions: actions.len() as u64,
        cursor,
        now: now_unix(),
    };
    let session_id = meta.start_session(&start).await?;
    let response = NegotiateResponse { session_id, cursor, actions };
    Ok(Json(response))
}

pub async fn complete(
    State(state): State<ServerState>,
    auth: AuthDevice,
    ApiPath(id): ApiPath<i64>,
    ApiJson(report): ApiJson<SessionReport>,
) -> Result<StatusCode, ApiError> {
    let actor = auth.actor();
    let found = state.app.meta().complete_session(actor, id, &report, now_unix()).await?;
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("session {id}")))
    }
}

/// Decide every manifest entry, then every live server save the manifest does not name
/// (as if the device had nothing there). Tombstones the device never saw need no action.
///
/// The heads are sorted once and found by binary search, and a head is copied only into
/// an action: in a device's steady state (everything in sync) nothing is copied at all.
/// A map keyed by path cost a copy of every path and every head per negotiate, a sixth of
/// a 10,000-entry negotiate in a profile.
#[must_use]
pub fn plan(
    entries: &[ManifestEntry],
    mut heads: Vec<SaveMeta>,
    untracked: &[SavePath],
) -> Vec<PlannedAction> {
    heads.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    let mut named_by_entry = vec![false; heads.len()];
    let untracked: HashSet<&SavePath> = untracked.iter().collect();
    let mut actions = Vec::new();
    let mut named = HashSet::with_capacity(entries.len());
    for entry in entries {
        if !named.insert(&entry.path) {
            continue; // a duplicate entry would only repeat the first answer
        }
        let at = heads.binary_search_by(|h| h.path.cmp(&entry.path)).ok();
        if let Some(i) = at {
            named_by_entry[i] = true;
        }
        let head = at.map(|i| &heads[i]);
        if untracked.contains(&entry.path) {
            actions.push(untracked_action(entry.path.clone(), head.cloned()));
        } else {
            actions.extend(action_for(&entry.path, entry.local, entry.base, head));
        }
    }
    // What is left, in path order: the saves the manifest does not name.
    for (head, _) in heads.iter().zip(named_by_entry).filter(|(h, named)| !named && !h.deleted) {
        if untracked.contains(&head.path) {
            actions.push(untracked_action(head.path.clone(), Some(head.clone())));
        } else {
            actions.extend(action_for(&head.path, None, None, Some(head)));
        }
    }
    actions
}

fn untracked_action(path: SavePath, head: Option<SaveMeta>) -> PlannedAction {
    PlannedAction { path, action: ActionKind::Untracked, expected_rev: None, head }
}

fn action_for(
    path: &SavePath,
    local: Option<ContentHash>,
    base: Option<Version>,
    head: Option<&SaveMeta>,
) -> Option<PlannedAction> {
    match ActionKind::of(decide(local, base, head.map(SaveMeta::version))) {
        (ActionKind::NoOp, _) => None,
        (action, expected_rev) => {
            Some(PlannedAction { path: path.clone(), action, expected_rev, head: head.cloned() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use savesync_core::{Rev, Seq};

    fn p(s: &str) -> SavePath {
        SavePath::parse(s).unwrap()
    }

    fn head(path: &str, rev: u64, bytes: Option<&[u8]>) -> SaveMeta {
        SaveMeta {
            path: p(path),
            rev: Rev(rev),
            seq: Seq(rev),
            hash: bytes.map(ContentHash::of),
            size: 0,
            deleted: bytes.is_none(),
            committed_at: String::new(),
            device: None,
        }
    }

    fn entry(path: &str, local: Option<&[u8]>, base: Option<(u64, &[u8])>) -> ManifestEntry {
        ManifestEntry {
            path: p(path),
            local: local.map(ContentHash::of),
            base: base.map(|(rev, b)| Version::live(rev, ContentHash::of(b))),
        }
    }

    fn kinds(actions: &[PlannedAction]) -> Vec<(&str, ActionKind, Option<Rev>)> {
        actions.iter().map(|a| (a.path.as_str(), a.action, a.expected_rev)).collect()
    }

    #[test]
    fn every_kind_of_entry_gets_the_decision_table_answer() {
        let heads = vec![
            head("a/same", 1, Some(b"x")),
            head("a/changed-locally", 1, Some(b"x")),
            head("a/changed-remotely", 2, Some(b"y")),
            head("a/both", 2, Some(b"y")),
            head("a/deleted-locally", 1, Some(b"x")),
        ];
        let entries = vec![
            entry("a/same", Some(b"x"), Some((1, b"x"))),
            entry("a/changed-locally", Some(b"z"), Some((1, b"x"))),
            entry("a/changed-remotely", Some(b"x"), Some((1, b"x"))),
            entry("a/both", Some(b"z"), Some((1, b"x"))),
            entry("a/deleted-locally", None, Some((1, b"x"))),
            entry("a/new", Some(b"n"), None),
        ];
        let actions = plan(&entries, heads, &[]);
        assert_eq!(
            kinds(&actions),
            vec![
                ("a/changed-locally", ActionKind::Upload, Some(Rev(1))),
                ("a/changed-remotely", ActionKind::Download, None),
                ("a/both", ActionKind::Conflict, None),
                ("a/deleted-locally", ActionKind::DeleteRemote, Some(Rev(1))),
                ("a/new", ActionKind::Upload, Some(Rev(0))),
            ]
        );
    }

    #[test]
    fn live_saves_missing_from_the_manifest_are_downloads_and_tombstones_are_skipped() {
        let heads = vec![head("b/remote-only", 3, Some(b"r")), head("b/gone", 4, None)];
        let actions = plan(&[], heads, &[]);
        assert_eq!(kinds(&actions), vec![("b/remote-only", ActionKind::Download, None)]);
        assert_eq!(actions[0].head.as_ref().unwrap().rev, Rev(3));
    }

    #[test]
    fn untracked_paths_are_reported_as_untracked_not_decided() {
        let heads = vec![head("c/mine", 1, Some(b"x")), head("c/remote", 1, Some(b"y"))];
        let entries = vec![entry("c/mine", Some(b"changed"), Some((1, b"x")))];
        let actions = plan(&entries, heads, &[p("c/mine"), p("c/remote")]);
        assert_eq!(
            kinds(&actions),
            vec![
                ("c/mine", ActionKind::Untracked, None),
                ("c/remote", ActionKind::Untracked, None),
            ]
        );
    }

    #[test]
    fn ten_thousand_entries_plan_quickly() {
        let heads: Vec<SaveMeta> =
            (0..10_000).map(|i| head(&format!("n/{i}"), 1, Some(b"x"))).collect();
        let entries: Vec<ManifestEntry> =
            (0..10_000).map(|i| entry(&format!("n/{i}"), Some(b"x"), Some((1, b"x")))).collect();
        let started = std::time::Instant::now();
        let actions = plan(&entries, heads, &[]);
        assert!(actions.is_empty());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
