//! Server-assigned counters: [`Rev`] counts commits of one save, [`Seq`] counts commits of
//! one user and is the cursor of the changes feed. Neither is ever derived from a clock.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Revision of one save: `Rev::NONE` (0) means "no commit yet"; every commit, including a
/// delete (a tombstone), is the previous head plus one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Rev(pub u64);

impl Rev {
    /// The revision of a save that has never been committed.
    pub const NONE: Rev = Rev(0);

    /// The revision a commit on top of this one receives.
    #[must_use]
    pub fn next(self) -> Rev {
        Rev(self.0 + 1)
    }
}

impl fmt::Display for Rev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Position in a user's changes feed: every commit of any of the user's saves takes the next
/// value. A device remembers the last `Seq` it has seen and asks for everything after it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    /// The cursor before the first change.
    pub const START: Seq = Seq(0);
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
