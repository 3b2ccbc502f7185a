//! The engine's retry policies as pure functions (table-tested): how long the feed
//! follower waits between reachability probes while offline (and how close together local
//! changes may make them), how long a failed queue entry waits, and which failures are
//! worth retrying at all.

use super::reconcile::SyncError;
use crate::remote::RemoteError;
use std::time::Duration;

/// First wait after the server was found unreachable.
pub(crate) const FIRST_OFFLINE_WAIT: Duration = Duration::from_millis(200);
/// Longest wait of a failed queue entry.
const MAX_ENTRY_BACKOFF: Duration = Duration::from_secs(30);

/// The wait after `prev` when the server is still unreachable: doubling, capped at `max`.
#[must_use]
pub(crate) fn next_offline_wait(prev: Duration, max: Duration) -> Duration {
    (prev * 2).clamp(FIRST_OFFLINE_WAIT.min(max), max)
}

/// How long a local change made while offline waits before it probes the server, the last
/// probe having started `since_last` ago: at once, unless that was less than
/// [`FIRST_OFFLINE_WAIT`] ago. A burst of closed saves then probes a few times a second,
/// not once per save, and a server that came back is still found within that wait.
#[must_use]
pub(crate) fn local_change_probe_delay(since_last: Duration) -> Duration {
    FIRST_OFFLINE_WAIT.saturating_sub(since_last)
}

/// The wait of a queue entry after its `attempts`-th failure: `base` doubling per attempt,
/// capped at 30 s.
#[must_use]
pub(crate) fn entry_backoff(base: Duration, attempts: i64) -> Duration {
    let exp = attempts.clamp(0, 16) as u32;
    base.saturating_mul(1 << exp).min(MAX_ENTRY_BACKOFF)
}

/// What to do with a queue entry whose sync failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The server is unreachable: keep the entry; it runs again once the server is back.
    Offline,
    /// A transient fault (5xx, 429, 507, timeout, or a local one such as a busy database
    /// or a full disk): retry with backoff, however often it takes.
    Retry,
    /// The server refused the save for good (a 4xx other than 409 and 429; 507 counts as
    /// transient): stop retrying until the save changes again, and say so in `status`.
    GiveUp,
}

#[must_use]
pub(crate) fn verdict(err: &SyncError) -> Verdict {
    match err {
        SyncError::Remote(RemoteError::Offline(_)) => Verdict::Offline,
        // A 404 outside the cases `sync_path` handles: the version is gone; a newer head
        // queues the save again when the feed announces it.
        SyncError::Remote(RemoteError::Refused(_) | RemoteError::NotFound) => Verdict::GiveUp,
        SyncError::Remote(_) | SyncError::Local(_) => Verdict::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn offline_waits_double_up_to_the_cap() {
        let max = Duration::from_secs(300);
        let table = [
            (MS(0), MS(200)),
            (MS(200), MS(400)),
            (MS(400), MS(800)),
            (Duration::from_secs(200), max),
            (max, max),
        ];
        for (prev, next) in table {
            assert_eq!(next_offline_wait(prev, max), next, "after {prev:?}");
        }
        // A cap below the first wait is respected.
        assert_eq!(next_offline_wait(MS(0), MS(50)), MS(50));
    }

    #[test]
    fn a_local_change_probes_at_most_every_first_offline_wait() {
        for (since_last, delay) in [
            (MS(0), MS(200)),
            (MS(1), MS(199)),
            (MS(150), MS(50)),
            (MS(199), MS(1)),
            (MS(200), MS(0)),
            (MS(5_000), MS(0)),
            (Duration::MAX, MS(0)),
        ] {
            assert_eq!(local_change_probe_delay(since_last), delay, "since {since_last:?}");
        }
    }

    #[test]
    fn entry_backoff_doubles_from_the_base_and_caps_at_30_s() {
        let table = [(0, MS(250)), (1, MS(500)), (3, MS(2000)), (7, MS(30_000)), (99, MS(30_000))];
        for (attempts, wait) in table {
            assert_eq!(entry_backoff(MS(250), attempts), wait, "attempt {attempts}");
        }
        assert_eq!(entry_backoff(MS(1), 5), MS(32));
    }

    #[test]
    fn only_a_server_refusal_gives_up() {
        let table = [
            (SyncError::Remote(RemoteError::Offline("refused".into())), Verdict::Offline),
            (SyncError::Remote(RemoteError::Transient("503".into())), Verdict::Retry),
            (SyncError::Remote(RemoteError::NotFound), Verdict::GiveUp),
            (SyncError::Local("database is locked".into()), Verdict::Retry),
            (SyncError::Local("No space left on device".into()), Verdict::Retry),
            (SyncError::Remote(RemoteError::Refused("400 bad path".into())), Verdict::GiveUp),
        ];
        for (err, want) in table {
            assert_eq!(verdict(&err), want, "{err}");
        }
    }
}
