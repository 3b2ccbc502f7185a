//! [`plan`]: what the engine does with one save, given `core::decide`'s decision and what
//! the device has. This is the device's policy, as a pure function: busy files are never
//! replaced and bytes still being written are never uploaded; large remote saves are shown
//! without their bytes (stores that can) until opened; small ones are prefetched for
//! offline play; a save in conflict backs up each new closed version before its
//! `NAME.conflict` copy is shown. `reconcile` carries the [`Plan`] out; the table test
//! below covers every row.

use crate::local::{Entry, EntryKind};
use savesync_core::{ContentHash, Decision, Rev, Version};

/// Why a save is synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// From the queue: large downloads are left for open; busy files wait.
    Background,
    /// A front-end needs the bytes now (a file being opened or renamed).
    Open,
}

/// The facts [`plan`] decides on.
#[derive(Debug, Clone)]
pub struct PlanInput {
    /// What is at the path on the device.
    pub entry: Entry,
    /// `decide(local, base, head)`.
    pub decision: Decision,
    pub base: Option<Version>,
    pub head: Option<Version>,
    /// Size of the server's head.
    pub head_size: u64,
    /// Hash of the device's bytes (None when it has none).
    pub local: Option<ContentHash>,
    /// The device's bytes already kept on the server as a `conflict` version.
    pub backed_up: Option<ContentHash>,
    /// The version the `NAME.conflict` copy shows, if there is one.
    pub conflict_shown: Option<Version>,
}

/// Settings the policy depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanConfig {
    pub prefetch_max_bytes: u64,
    /// The local store can show a save whose bytes are not here.
    pub shows_uncached: bool,
}

/// The one thing to do with the save now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Settled for now.
    Done,
    /// The bytes are being written: come back later.
    Busy,
    /// Download this version into place.
    Download(Version),
    /// Show the save without its bytes (fetched when opened).
    ShowUncached(Version),
    /// Upload the device's bytes on top of `expected`.
    Upload { expected: Rev },
    /// In conflict: offer the device's new bytes against its stale base, so the server
    /// keeps them as a `conflict` version.
    BackUp { expected: Rev },
    /// Delete the save on the server if its head is still `expected`.
    DeleteRemote { expected: Rev },
    /// Remove the device's copy; the tombstone becomes the base.
    RemoveLocal(Version),
    /// Show the other side's version as `NAME.conflict`.
    ShowConflict(Version),
    /// The decision needs bytes the device does not have (cannot happen with a
    /// consistent state DB; reported as a local error).
    MissingBytes,
}

/// What [`plan`] decided: an optional base to record first, whether a stale
/// `NAME.conflict` copy goes, and the action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// A base to record first (`Some(None)`: forget a base the server no longer knows).
    pub record_base: Option<Option<Version>>,
    pub drop_conflict: bool,
    pub action: Action,
}

impl Plan {
    fn just(action: Action) -> Plan {
        Plan { record_base: None, drop_conflict: false, action }
    }
}

/// Decide what to do. Pure: no I/O, no clock.
#[must_use]
pub fn plan(input: &PlanInput, mode: SyncMode, cfg: PlanConfig) -> Plan {
    let e = &input.entry;
    if e.kind == EntryKind::Other {
        // A local directory (or symlink, FIFO, ...) shadows a server save of the same
        // name: leave both alone.
        return Plan::just(Action::Done);
    }
    let background = mode == SyncMode::Background;
    let has_bytes = e.kind == EntryKind::File && e.cached;
    let drop_conflict =
        input.conflict_shown.is_some() && !matches!(input.decision, Decision::Conflict(_));
    let action = match input.decision {
        Decision::NoOp | Decision::RecordBase(_) => {
            // A save shown without its bytes: fetch them when opened, or now if small
            // enough to prefetch for offline play.
            let prefetch = !background || (input.head_size <= cfg.prefetch_max_bytes && !e.busy);
            let shown_only = e.kind == EntryKind::File && !e.cached;
            match input.head.filter(|h| h.hash.is_some()).or(input.base) {
                Some(v) if prefetch && shown_only => Action::Download(v),
                _ => Action::Done,
            }
        }
        Decision::Upload { expected } => {
            // An emulator may keep its save open for hours and fsync it: what was
            // flushed is uploaded; only bytes still in motion wait.
            if e.unflushed && background {
                Action::Busy
            } else if !has_bytes {
                Action::MissingBytes
            } else {
                Action::Upload { expected }
            }
        }
        Decision::DeleteRemote { expected } => Action::DeleteRemote { expected },
        Decision::Download(v) => {
            let large = input.head_size > cfg.prefetch_max_bytes;
            if e.busy {
                Action::Busy
            } else if background && large && !has_bytes && cfg.shows_uncached {
                // Too big to prefetch: show it, fetch it when opened.
                Action::ShowUncached(v)
            } else {
                Action::Download(v)
            }
        }
        Decision::DeleteLocal(v) => {
            if e.busy {
                Action::Busy
            } else {
                Action::RemoveLocal(v)
            }
        }
        Decision::Conflict(v) => {
            // While the conflict is open, every new closed version of the device's bytes
            // is offered against its stale base, so whichever side the user picks, nothing
            // closed here is lost. Bytes still being written wait for their flush.
            let in_motion = e.unflushed && background;
            if has_bytes && input.local != input.backed_up && !in_motion {
                Action::BackUp { expected: input.base.map_or(Rev::NONE, |b| b.rev) }
            } else if input.conflict_shown == Some(v) {
                Action::Done
            } else {
                Action::ShowConflict(v)
            }
        }
    };
    let record_base = match input.decision {
        Decision::RecordBase(v) => Some(v),
        _ => None,
    };
    Plan { record_base, drop_conflict, action }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::ChangeToken;
    use savesync_core::ContentHash;

    fn h(n: u8) -> ContentHash {
        ContentHash::of(&[n])
    }
    fn v(rev: u64, n: u8) -> Version {
        Version { rev: Rev(rev), hash: Some(h(n)) }
    }
    fn tomb(rev: u64) -> Version {
        Version { rev: Rev(rev), hash: None }
    }

    /// Entry shapes used by the rows.
    #[derive(Clone, Copy)]
    enum E {
        Absent,
        Cached,
        Uncached,
        Busy,
        Unflushed,
        Other,
    }

    fn entry(e: E) -> Entry {
        let file = |cached, busy, unflushed| Entry {
            kind: EntryKind::File,
            cached,
            busy,
            unflushed,
            token: ChangeToken { id: 7, size: 1, mtime_ns: 1 },
        };
        match e {
            E::Absent => Entry::absent(),
            E::Cached => file(true, false, false),
            E::Uncached => file(false, false, false),
            E::Busy => file(true, true, false),
            E::Unflushed => file(true, true, true),
            E::Other => Entry { kind: EntryKind::Other, ..file(true, false, false) },
        }
    }

    const SMALL: u64 = 10;
    const LARGE: u64 = 1 << 30;
    const MOUNT: PlanConfig = PlanConfig { prefetch_max_bytes: 1024, shows_uncached: true };
    const FOLDER: PlanConfig = PlanConfig { prefetch_max_bytes: 1024, shows_uncached: false };
    use SyncMode::{Background as BG, Open};

    struct Row {
        name: &'static str,
        entry: E,
        decision: Decision,
        head_size: u64,
        backed_up: Option<ContentHash>,
        shown: Option<Version>,
        mode: SyncMode,
        cfg: PlanConfig,
        want: Plan,
    }

    fn act(action: Action) -> Plan {
        Plan::just(action)
    }

    #[test]
    #[allow(clippy::too_many_lines)]
    fn every_policy_row() {
        let base = v(1, 1);
        let head = v(2, 2);
        let up = Decision::Upload { expected: Rev(1) };
        let rows = [
            Row {
                name: "settled",
                entry: E::Cached,
                decision: Decision::NoOp,
                head_size: SMALL,
                backed_up: None,
                shown: None,
                mode: BG,
                cfg: MOUNT,
                want: act(Action::Done),
            },
            Row {
                name: "record a converged base",
                entry: E::Cached,
                decision: Decision::RecordBase(Some(head)),
                head_size: SMALL,
                backed_up: None,
                shown: None,
                mode: BG,
                cfg: MOUNT,
                want: Plan {
                    record_base: Some(Some(head)),
                    drop_conflict: false,
                    action: Action::Done,
                },
            },
            Row {
                name: "small uncached save is prefetched",
                entry: E::Uncached,
                decision: Decision::NoOp,
                head_size: SMALL,
                backed_up: None,
                shown: None,
                mode: BG,
                cfg: MOUNT,
                want: act(Action::Download(head)),
            },
            Row {
                name: "large uncached save waits for open",
                entry: E::Uncached,
                decision: Decision::NoOp,
                head_size: LARGE,
                backed_up: None,
                shown: None,
                mode: BG,
                cfg: MOUNT,
                want: act(Action::Done),
            },
            Row {
                name: "large uncached save is fetched on open",
                entry: E::Uncached,
                decision: Decision::NoOp,
                head_size: LARGE,
                backed_up: None,
                shown: None,
                mode: Open,
                cfg: MOUNT,
                want: act(Action::Download(head)),
            },
            Row {
                name: "upload flushed bytes",
                entry: E::Cached,
                decision: up,
                head_size: SMALL,
                backed_up: None,
                shown: None,
                mode: BG,
                cfg: MOUNT,
                want: act(Action::Upload { expected: Rev(1) }),
            },
            Row {
                name: "upload flushed bytes of a file still open",
                entry: E::Busy,
                decision: up,
                head_size: SMALL,
                backed_up: None,
                shown: None,
                mode: BG,
                cfg: MOUNT,
                want: act(Action::Upload { expected: Rev(1) }),
            },
            Row {
                name: "bytes in motion wait",
                entry: E::Unflushed,
                decision: up,
                head_size: SMALL,
                backed_up: None,
                shown: None,
                mode: BG,
                cfg: MOUNT,
                want: act(Action::Busy),
            },
            Row {
                name: "an upload needs bytes",
                entry: E::Uncached,
                decision: up,
                head_size: SMALL,
                backed_up: None,
                shown: None,
                mode: BG,
                cfg: MOUNT,
                want: act(Action::MissingBytes),
            },
            Row {
                name: "delete on the server",
                entry: E::Absent,
                decision: Decision::DeleteRemote { expected: Rev(1) },
                head_size: SMALL,
                backed_up: None,
                shown: None,
                mode: BG,
                cfg: MOUNT,
                want: act(Action::DeleteRemote { expected: Rev(1) }),
            },
            Row {
                name: "download a small change",
                entry: E::Cached,
                decision: Decision::Download(head),
                head_size: SMALL,
                backed_up: None,
                shown: None,
                mode: BG,
                cfg: MOUNT,
                want: act(Action::Download(head)),
            },
            Row {
                name: "never replace a busy file",
                entry: E::Busy,
                decision: Decision::Download(head),
                head_size: SMALL,
                backed_up: None,
                shown: None,
                mode: BG,
                cfg: MOUNT,
                want: act(Action::Busy),
            },
            Row {
                name: "a large new save is shown uncached",
                entry: E::Absent,
                decision: Decision::Download(head),
                head_size: LARGE,
                backed_up: None,
                shown: None,
                mode: BG,
                cfg: MOUNT,
                want: act(Action::ShowUncached(head)),
            },
            Row {
                name: "a large change of a cached save is downloaded",
                entry: E::Cached,
                decision: Decision::Download(head),
                head_size: LARGE,
                backed_up: None,
                shown: None,
                mode: BG,
                cfg: MOUNT,
                want: act(Action::Download(head)),
            },
            Row {
                name: "a folder downloads large saves",
                entry: E::Absent,
                decision: Decision::Download(head),
                head_size: LARGE,
                backed_up: None,
                shown: None,
                mode: BG,
                cfg: FOLDER,
                want: act(Action::Download(head)),
            },
            Row {
                name: "open fetches a large save",
                entry: E::Absent,
                decision: Decision::Download(head),
                head_size: LARGE,
                backed_up: None,
                shown: None,
                mode: Open,
                cfg: MOUNT,
                want: act(Action::Download(head)),
            },
            Row {
                name: "remove a save deleted on the server",
                entry: E::Cached,
                decision: Decision::DeleteLocal(tomb(3)),
                head_size: 0,
                backed_up: None,
                shown: None,
                mode: BG,
                cfg: MOUNT,
                want: act(Action::RemoveLocal(tomb(3))),
            },
            Row {
                name: "never remove a busy file",
                entry: E::Busy,
                decision: Decision::DeleteLocal(tomb(3)),
                head_size: 0,
                backed_up: None,
                shown: None,
                mode: BG,
                cfg: MOUNT,
                want: act(Action::Busy),
            },
            Row {
                name: "conflict: back up new bytes first",
                entry: E::Cached,
                decision: Decision::Conflict(head),
                head_size: SMALL,
                backed_up: None,
                shown: None,
                mode: BG,
                cfg: MOUNT,
                want: act(Action::BackUp { expected: Rev(1) }),
            },
            Row {
                name: "conflict: backed up, show the copy",
                entry: E::Cached,
                decision: Decision::Conflict(head),
                head_size: SMALL,
                backed_up: Some(h(9)),
                shown: None,
                mode: BG,
                cfg: MOUNT,
                want: act(Action::ShowConflict(head)),
            },
            Row {
                name: "conflict: copy already shown",
                entry: E::Cached,
                decision: Decision::Conflict(head),
                head_size: SMALL,
                backed_up: Some(h(9)),
                shown: Some(head),
                mode: BG,
                cfg: MOUNT,
                want: act(Action::Done),
            },
            Row {
                name: "conflict: newer head replaces the copy",
                entry: E::Cached,
                decision: Decision::Conflict(v(3, 3)),
                head_size: SMALL,
                backed_up: Some(h(9)),
                shown: Some(head),
                mode: BG,
                cfg: MOUNT,
                want: act(Action::ShowConflict(v(3, 3))),
            },
            Row {
                name: "conflict: bytes in motion are not backed up",
                entry: E::Unflushed,
                decision: Decision::Conflict(head),
                head_size: SMALL,
                backed_up: None,
                shown: None,
                mode: BG,
                cfg: MOUNT,
                want: act(Action::ShowConflict(head)),
            },
            Row {
                name: "converged: the stale copy goes",
                entry: E::Cached,
                decision: Decision::RecordBase(Some(head)),
                head_size: SMALL,
                backed_up: None,
                shown: Some(head),
                mode: BG,
                cfg: MOUNT,
                want: Plan {
                    record_base: Some(Some(head)),
                    drop_conflict: true,
                    action: Action::Done,
                },
            },
            Row {
                name: "a directory shadows the save",
                entry: E::Other,
                decision: Decision::Download(head),
                head_size: SMALL,
                backed_up: None,
                shown: None,
                mode: BG,
                cfg: MOUNT,
                want: act(Action::Done),
            },
        ];
        for r in rows {
            let local = match r.entry {
                E::Cached | E::Busy | E::Unflushed => Some(h(9)),
                E::Uncached => Some(h(1)),
                _ => None,
            };
            let input = PlanInput {
                entry: entry(r.entry),
                decision: r.decision,
                base: Some(base),
                head: Some(head),
                head_size: r.head_size,
                local,
                backed_up: r.backed_up,
                conflict_shown: r.shown,
            };
            assert_eq!(plan(&input, r.mode, r.cfg), r.want, "{}", r.name);
        }
    }
}
