//! The per-file policy of an SSH remote run, as pure functions over what the server
//! remembers ([`RemoteFile`]), what the device shows and the library head. Content is
//! compared by hash and history by revision through [`savesync_core::decide`], exactly as
//! the mount and the negotiate endpoint do; no clock is ever consulted. The device's size
//! and mtime are only a cache key: equal to what was recorded means "the hash recorded
//! then", anything else means "read and hash it again".
//!
//! Conflicts work as on the mount: the device keeps its bytes, the server's version is
//! written beside them as `NAME.conflict`, and the device's version is kept as a `conflict`
//! version in history. While that copy exists the file is left alone (only a newer server
//! version refreshes the copy). Once the copy is gone, the base recorded at conflict time
//! (the server head) makes `decide` do the right thing: the device's `NAME` still differs
//! from it (the copy was deleted: keep the device version) and is uploaded, or it now
//! equals it (the copy was renamed over `NAME`) and nothing moves.

use crate::meta::remotes::{DeviceStat, RemoteFile};
use savesync_core::{ContentHash, Decision, Rev, Version, decide};

/// A device file's size and mtime from its directory listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub size: u64,
    pub mtime: i64,
}

/// The content hash the state already vouches for, if the device file is unchanged since
/// it was recorded; `None` means it must be read.
#[must_use]
pub fn cached_hash(recorded: Option<&DeviceStat>, seen: Seen) -> Option<ContentHash> {
    recorded.filter(|d| d.size == seen.size && d.mtime == seen.mtime).map(|d| d.hash)
}

/// A file modified within this many seconds of the read may be modified again within the
/// same second without its size or mtime changing (SFTP mtimes are whole seconds).
pub const RACY_SECS: i64 = 2;

/// Whether a device file read at `now` (server clock) may be remembered by its size and
/// mtime. A file changed in the last [`RACY_SECS`] is not: the next run reads it again, as
/// git treats "racily clean" index entries. (A device clock far off the server's defeats
/// this guard; such devices rely on size changes or later mtimes.)
#[must_use]
pub fn stat_is_stable(mtime: i64, now: i64) -> bool {
    (now - mtime).abs() > RACY_SECS
}

/// What one run does for one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing to transfer or record beyond the device file's current look.
    Nothing,
    /// Remember this base (or forget it).
    Record(Option<Version>),
    /// Commit the device bytes, conditional on the head still being `expected`.
    Upload { expected: Rev },
    /// Commit a tombstone, conditional on the head still being `expected`.
    DeleteOnServer { expected: Rev },
    /// Write this server version to the device.
    Download(Version),
    /// Remove the device file; the server deleted it.
    DeleteOnDevice(Version),
    /// Both changed: keep the device bytes (as a `conflict` version in history, too) and
    /// write this server version beside them as `NAME.conflict`.
    Conflict(Version),
    /// A conflict is open and the server moved on to other content: replace the copy.
    RefreshConflictCopy(Version),
    /// A conflict is open on the device: wait for the user.
    AwaitResolution,
}

/// Decide one path. `local` is the device file's hash (`None`: absent), `head` the
/// library's head (`None`: never existed), `copy_present` whether `NAME.conflict` exists
/// on the device.
#[must_use]
pub fn plan(
    state: Option<&RemoteFile>,
    local: Option<ContentHash>,
    head: Option<Version>,
    copy_present: bool,
) -> Step {
    let base = state.and_then(|s| s.base);
    if let Some(copy) = state.and_then(|s| s.conflict)
        && copy_present
    {
        return match head {
            Some(h) if h.hash.is_some_and(|hash| hash != copy) => Step::RefreshConflictCopy(h),
            _ => Step::AwaitResolution,
        };
    }
    match decide(local, base, head) {
        Decision::NoOp => Step::Nothing,
        Decision::RecordBase(v) => Step::Record(v),
        Decision::Upload { expected } => Step::Upload { expected },
        Decision::DeleteRemote { expected } => Step::DeleteOnServer { expected },
        Decision::Download(v) => Step::Download(v),
        Decision::DeleteLocal(v) => Step::DeleteOnDevice(v),
        Decision::Conflict(v) => Step::Conflict(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use savesync_core::SavePath;

    fn h(n: u8) -> ContentHash {
        ContentHash::of(&[n])
    }

    fn state(base: Option<Version>, conflict: Option<ContentHash>) -> RemoteFile {
        RemoteFile { path: SavePath::parse("gba/a.sav").unwrap(), base, device: None, conflict }
    }

    #[test]
    fn the_stat_is_only_a_cache_key() {
        let recorded = DeviceStat { size: 8, mtime: 100, hash: h(1) };
        assert_eq!(cached_hash(Some(&recorded), Seen { size: 8, mtime: 100 }), Some(h(1)));
        assert_eq!(cached_hash(Some(&recorded), Seen { size: 8, mtime: 101 }), None);
        assert_eq!(cached_hash(Some(&recorded), Seen { size: 9, mtime: 100 }), None);
        assert_eq!(cached_hash(None, Seen { size: 8, mtime: 100 }), None);
    }

    #[test]
    fn recently_modified_files_are_read_again_next_time() {
        let now = 1_000_000;
        for (mtime, stable) in
            [(now, false), (now - 2, false), (now - 3, true), (now + 5, true), (0, true)]
        {
            assert_eq!(stat_is_stable(mtime, now), stable, "{mtime}");
        }
    }

    /// (what, state, device hash, head, `NAME.conflict` present, expected step)
    type Case<'a> =
        (&'a str, Option<&'a RemoteFile>, Option<ContentHash>, Option<Version>, bool, Step);

    #[test]
    fn plan_table() {
        let v1 = Version::live(1, h(1));
        let v2 = Version::live(2, h(2));
        let gone = Version::tombstone(2);
        let synced = state(Some(v1), None);
        let open = state(Some(v2), Some(h(2)));
        let table: &[Case<'_>] = &[
            (
                "new on the device",
                None,
                Some(h(1)),
                None,
                false,
                Step::Upload { expected: Rev::NONE },
            ),
            ("new on the server", None, None, Some(v1), false, Step::Download(v1)),
            ("same on both, first run", None, Some(h(1)), Some(v1), false, Step::Record(Some(v1))),
            ("unchanged", Some(&synced), Some(h(1)), Some(v1), false, Step::Nothing),
            (
                "device changed",
                Some(&synced),
                Some(h(3)),
                Some(v1),
                false,
                Step::Upload { expected: Rev(1) },
            ),
            ("server changed", Some(&synced), Some(h(1)), Some(v2), false, Step::Download(v2)),
            ("both changed", Some(&synced), Some(h(3)), Some(v2), false, Step::Conflict(v2)),
            (
                "deleted on the device",
                Some(&synced),
                None,
                Some(v1),
                false,
                Step::DeleteOnServer { expected: Rev(1) },
            ),
            (
                "deleted on the server",
                Some(&synced),
                Some(h(1)),
                Some(gone),
                false,
                Step::DeleteOnDevice(gone),
            ),
            (
                "change beats a server delete",
                Some(&synced),
                Some(h(3)),
                Some(gone),
                false,
                Step::Upload { expected: Rev(2) },
            ),
            (
                "change beats a device delete",
                Some(&synced),
                None,
                Some(v2),
                false,
                Step::Download(v2),
            ),
            ("conflict open", Some(&open), Some(h(3)), Some(v2), true, Step::AwaitResolution),
            (
                "conflict open, server moved",
                Some(&open),
                Some(h(3)),
                Some(Version::live(3, h(4))),
                true,
                Step::RefreshConflictCopy(Version::live(3, h(4))),
            ),
            (
                "copy deleted: keep the device version",
                Some(&open),
                Some(h(3)),
                Some(v2),
                false,
                Step::Upload { expected: Rev(2) },
            ),
            (
                "copy renamed over: take the server version",
                Some(&open),
                Some(h(2)),
                Some(v2),
                false,
                Step::Nothing,
            ),
            (
                "a stray .conflict file is ignored",
                Some(&synced),
                Some(h(1)),
                Some(v1),
                true,
                Step::Nothing,
            ),
        ];
        for (what, st, local, head, copy, want) in table {
            assert_eq!(plan(*st, *local, *head, *copy), *want, "{what}");
        }
    }
}
