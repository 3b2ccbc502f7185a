//! Sync-session retention. Every negotiate opens a session row and the device completes it
//! with its counts; rows are a record of what devices did, not state anything depends on,
//! so they are pruned by age in the periodic collection pass: completed ones after
//! `config.session_keep`, ones never completed (the device crashed or went offline
//! mid-sync) after `config.open_session_keep`.

use crate::app::App;
use crate::meta::MetaError;
use crate::timestamps::now_unix;
use std::time::Duration;

/// `(completed_before, open_before)`: unix-second cutoffs for [`crate::meta::MetaStore::prune_sessions`].
#[must_use]
pub fn cutoffs(now: i64, keep: Duration, open_keep: Duration) -> (i64, i64) {
    let before =
        |age: Duration| now.saturating_sub(i64::try_from(age.as_secs()).unwrap_or(i64::MAX));
    (before(keep), before(open_keep))
}

/// Delete expired sessions; returns how many.
pub async fn prune(app: &App) -> Result<u64, MetaError> {
    let config = app.config();
    let (completed_before, open_before) =
        cutoffs(now_unix(), config.session_keep, config.open_session_keep);
    app.meta().prune_sessions(completed_before, open_before).await
}

#[cfg(test)]
mod tests {
    use super::cutoffs;
    use std::time::Duration;

    #[test]
    fn cutoffs_table() {
        let day = Duration::from_secs(86_400);
        let table = [
            (1_000_000, 30 * day, day, (1_000_000 - 30 * 86_400, 1_000_000 - 86_400)),
            (1_000, Duration::from_secs(10), Duration::from_secs(1), (990, 999)),
            (1_000, Duration::ZERO, Duration::ZERO, (1_000, 1_000)),
            (0, Duration::MAX, Duration::MAX, (i64::MIN + 1, i64::MIN + 1)),
        ];
        for (now, keep, open_keep, expected) in table {
            assert_eq!(cutoffs(now, keep, open_keep), expected, "now {now}");
        }
    }
}
