//! When a file in a synced folder may be uploaded (and may be replaced): it has been
//! quiet for the debounce time and no process has it open for writing.
//!
//! A folder sees no `close` or `fsync` the way the mount does, so "done writing" is
//! inferred: the file's last change (the later of its mtime and ctime: a temp file
//! renamed into place keeps the temp's mtime but gets a new ctime) lies at least the
//! debounce in the past, and no file descriptor open for writing points at it (see
//! `writers`). Together these cover temp + rename (the rename is the last change), in-place
//! rewrites and truncate + write (quiet after the last write), and a writer that keeps its
//! save open between writes (open for writing).
//!
//! A change stamped further in the future than the debounce cannot come from a write on
//! this clock (a copy that kept a future timestamp, or the clock was set back): waiting
//! for it could take years, so it counts as quiet.

use std::time::Duration;

/// Whether a file is ready to be uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Changed less than the debounce ago: ready after `wait` unless it changes again.
    Settling {
        wait: Duration,
    },
    /// Some process has it open for writing.
    OpenForWriting,
}

impl Readiness {
    #[must_use]
    pub fn is_ready(self) -> bool {
        self == Readiness::Ready
    }
}

/// The pure rule. `changed_ns` is the later of the file's mtime and ctime.
#[must_use]
pub fn readiness(
    now_ns: i64,
    changed_ns: i64,
    debounce: Duration,
    open_for_writing: bool,
) -> Readiness {
    if open_for_writing {
        return Readiness::OpenForWriting;
    }
    let debounce_ns = i64::try_from(debounce.as_nanos()).unwrap_or(i64::MAX);
    let age = now_ns.saturating_sub(changed_ns);
    if age >= debounce_ns || age < -debounce_ns {
        return Readiness::Ready;
    }
    // Up to `debounce` in the future counts as "just now" (clock granularity).
    let wait = debounce_ns - age.max(0);
    Readiness::Settling { wait: Duration::from_nanos(wait as u64) }
}

#[cfg(test)]
mod tests {
    use super::{Readiness, readiness};
    use std::time::Duration;

    const MS: i64 = 1_000_000;

    #[test]
    fn readiness_table() {
        let d = Duration::from_millis(100);
        let settling = |ms: u64| Readiness::Settling { wait: Duration::from_millis(ms) };
        // (now, changed, open for writing) -> readiness
        let table: &[(i64, i64, bool, Readiness)] = &[
            (1_000 * MS, 0, false, Readiness::Ready), // long quiet
            (1_000 * MS, 900 * MS, false, Readiness::Ready), // exactly the debounce
            (1_000 * MS, 950 * MS, false, settling(50)), // written 50 ms ago
            (1_000 * MS, 1_000 * MS, false, settling(100)), // written just now
            (1_000 * MS, 1_050 * MS, false, settling(100)), // a tick ahead: just now
            (1_000 * MS, 5_000 * MS, false, Readiness::Ready), // far future stamp
            (1_000 * MS, 0, true, Readiness::OpenForWriting), // quiet but held open
            (1_000 * MS, 999 * MS, true, Readiness::OpenForWriting),
        ];
        for &(now, changed, open, want) in table {
            assert_eq!(readiness(now, changed, d, open), want, "now {now} changed {changed}");
        }
        assert!(readiness(0, 0, Duration::ZERO, false).is_ready());
    }
}
