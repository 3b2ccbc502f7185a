//! The three-way comparison: given what the device has (`local`), what it last agreed on
//! with the server (`base`) and the server's head (`remote`), say what must happen.
//!
//! Content is compared by hash, history by server revision; clocks are never consulted
//! (handhelds often have none). An absent file and a tombstone count as the same value, so
//! a save deleted on both sides has converged. A remote revision *below* the base means the
//! server was restored from an older backup: the base is then distrusted and the save is
//! treated as never synced (as it is when the head has the base's revision but other
//! content: the restored server has re-issued that revision). The server's negotiate endpoint and the mount's sync engine both
//! call [`decide`], so they can never disagree.

use crate::{ContentHash, Rev};
use serde::{Deserialize, Serialize};

/// One committed state of a save: its revision and its content hash, or `None` for a
/// tombstone (a committed delete).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Version {
    pub rev: Rev,
    pub hash: Option<ContentHash>,
}

impl Version {
    /// A live version with content.
    #[must_use]
    pub fn live(rev: u64, hash: ContentHash) -> Version {
        Version { rev: Rev(rev), hash: Some(hash) }
    }

    /// A tombstone at `rev`.
    #[must_use]
    pub fn tombstone(rev: u64) -> Version {
        Version { rev: Rev(rev), hash: None }
    }

    /// True when this version is a committed delete.
    #[must_use]
    pub fn is_tombstone(&self) -> bool {
        self.hash.is_none()
    }
}

/// What to do with one save.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Nothing to transfer and the base is already right.
    NoOp,
    /// Nothing to transfer, but the device must remember `Some(version)` as its new base
    /// (`None`: forget a base the server no longer knows).
    RecordBase(Option<Version>),
    /// Send the local bytes, conditional on the server head still being `expected`
    /// (`Rev::NONE`: the save must not exist at all).
    Upload { expected: Rev },
    /// Commit a tombstone, conditional on the server head still being `expected`.
    DeleteRemote { expected: Rev },
    /// Fetch this live remote version and make it the local content and the base.
    Download(Version),
    /// The remote is this tombstone: remove the local file and record it as the base.
    DeleteLocal(Version),
    /// Both sides changed since they agreed: keep local bytes, show this remote version
    /// beside them as `NAME.conflict`.
    Conflict(Version),
}

/// Decide what to do with a save. See the module docs and `docs/protocol.md` for the table.
#[must_use]
pub fn decide(
    local: Option<ContentHash>,
    base: Option<Version>,
    remote: Option<Version>,
) -> Decision {
    // A base the server has never heard of (remote missing, or remote older than the
    // base after a restore from backup) is not trusted: treat the save as never synced.
    // The same rev with other content means the server re-issued that rev after such a
    // restore: the base is just as untrustworthy.
    let trusted_base = match (base, remote) {
        (Some(b), Some(r)) if r.rev > b.rev || (r.rev == b.rev && r.hash == b.hash) => Some(b),
        _ => None,
    };
    match (trusted_base, remote) {
        (None, None) => match local {
            Some(_) => Decision::Upload { expected: Rev::NONE },
            None if base.is_some() => Decision::RecordBase(None),
            None => Decision::NoOp,
        },
        (None, Some(r)) => decide_without_base(local, r),
        (Some(_), None) => unreachable!("a trusted base implies a remote head"),
        (Some(b), Some(r)) if r.rev == b.rev => decide_against_unchanged_head(local, r),
        (Some(b), Some(r)) => decide_against_newer_head(local, b, r),
    }
}

/// No shared history: only content equality can prove agreement.
fn decide_without_base(local: Option<ContentHash>, remote: Version) -> Decision {
    match (local, remote.hash) {
        (None, Some(_)) => Decision::Download(remote),
        (None, None) => Decision::RecordBase(Some(remote)),
        (Some(l), Some(h)) if l == h => Decision::RecordBase(Some(remote)),
        (Some(_), Some(_)) => Decision::Conflict(remote),
        // A change beats a delete.
        (Some(_), None) => Decision::Upload { expected: remote.rev },
    }
}

/// The head is the version this device last agreed on: only the device can have changed.
fn decide_against_unchanged_head(local: Option<ContentHash>, head: Version) -> Decision {
    match (local, head.hash) {
        (l, h) if l == h => Decision::NoOp,
        (Some(_), _) => Decision::Upload { expected: head.rev },
        (None, Some(_)) => Decision::DeleteRemote { expected: head.rev },
        (None, None) => Decision::NoOp,
    }
}

/// The server moved on since this device last agreed.
fn decide_against_newer_head(local: Option<ContentHash>, base: Version, head: Version) -> Decision {
    if local == head.hash {
        return Decision::RecordBase(Some(head));
    }
    if local == base.hash {
        return match head.hash {
            Some(_) => Decision::Download(head),
            None => Decision::DeleteLocal(head),
        };
    }
    match (local, head.hash) {
        (Some(_), Some(_)) => Decision::Conflict(head),
        // A change beats a delete, in both directions.
        (Some(_), None) => Decision::Upload { expected: head.rev },
        (None, Some(_)) => Decision::Download(head),
        (None, None) => unreachable!("local == head.hash was handled above"),
    }
}
