//! `savesync status --wait`: block until the profile's daemon has synced every save waiting
//! in its queue, showing the count as it falls, so a script can sync before powering a
//! handheld off (`savesync status --wait --timeout 60 && poweroff`). It counts the queue in
//! the state DB, as `status` does (for a synced folder once the watcher caught up, see
//! `crate::folder::wait_barrier`; for a mount after an unclean stop once its check of the
//! cache queued what changed, see `crate::tree::cache_check`); the daemon does the
//! syncing. When to stop is [`verdict`], when to show a line [`line_due`] and what it says
//! [`progress_line`], all pure functions.

use crate::tree::cache_check::CacheCheck;
use std::io::IsTerminal;
use std::time::Duration;

/// How often the queue is counted while waiting.
const POLL: Duration = Duration::from_millis(250);
/// Shortest time between two progress lines while only the count changes.
const LINE_EVERY: Duration = Duration::from_secs(1);
/// Longest time between two progress lines while nothing changes.
const QUIET_LINE: Duration = Duration::from_secs(10);

/// How long an empty queue of a synced folder's daemon is not believed when no barrier
/// could be raised in the folder (`crate::folder::wait_barrier`): its watcher reports a
/// change some milliseconds after the file is closed (a mount queues a save before its
/// close returns).
pub const FOLDER_SETTLE: Duration = Duration::from_millis(500);

/// What the queue and the daemon look like at one count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Saves waiting to sync.
    pub pending: u64,
    /// A daemon (mount or synced folder) runs for the profile.
    pub daemon: bool,
    /// The daemon reaches the server.
    pub online: bool,
    /// The daemon has queued every change made before the wait began (always, for a
    /// mount; for a synced folder, once its watcher caught up).
    pub settled: bool,
    /// The mount's check of the cache after an unclean stop, while due: saves it has not
    /// reached may have changes nothing queued yet.
    pub check: Option<CacheCheck>,
}

impl Sample {
    /// Nothing waits: the queue is empty and no check of the cache is due.
    fn idle(&self) -> bool {
        self.pending == 0 && self.check.is_none()
    }
}

/// Whether to go on waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing waits to sync.
    Synced,
    /// Saves wait (or the cache waits to be checked), and no daemon runs to do it.
    NoDaemon,
    /// `timeout` passed with saves still waiting.
    TimedOut,
    Wait,
}

/// Whether waiting is over after `waited`; a `timeout` of zero never passes. An empty queue
/// counts once the daemon has `settled` and checked its cache.
#[must_use]
pub fn verdict(sample: Sample, waited: Duration, timeout: Duration) -> Verdict {
    if sample.idle() && (sample.settled || !sample.daemon) {
        Verdict::Synced
    } else if !sample.idle() && !sample.daemon {
        Verdict::NoDaemon
    } else if !timeout.is_zero() && waited >= timeout {
        Verdict::TimedOut
    } else {
        Verdict::Wait
    }
}

/// One progress line: what still waits, how many synced since the wait began and at what
/// rate, and an estimate of the time left while the count falls.
#[must_use]
pub fn progress_line(first: u64, sample: Sample, waited: Duration) -> String {
    if let Some(c) = sample.check {
        let mut line = format!(
            "waiting: the cache is checked after an unclean stop ({} of {} saves)",
            c.checked, c.total
        );
        if sample.pending > 0 {
            line.push_str(&format!(", {} save(s) to sync", sample.pending));
        }
        return line;
    }
    if sample.pending == 0 && !sample.settled {
        return "waiting: for the daemon to notice the latest changes".to_owned();
    }
    let mut line = format!("waiting: {} save(s) to sync", sample.pending);
    if !sample.online {
        line.push_str(", server offline");
        return line;
    }
    let done = first.saturating_sub(sample.pending);
    let secs = waited.as_secs_f64();
    if done > 0 && secs >= 1.0 {
        let rate = done as f64 / secs;
        let left = (sample.pending as f64 / rate).ceil();
        line.push_str(&format!(", {done} synced ({rate:.0}/s, about {left:.0} s left)"));
    }
    line
}

/// Whether to show a progress line now, `waited` into the wait, the last one having shown
/// `last`: the first at once, then when the server comes or goes, when the count changed
/// and [`LINE_EVERY`] passed, or after [`QUIET_LINE`] of nothing new.
#[must_use]
pub fn line_due(last: Option<(Sample, Duration)>, now: Sample, waited: Duration) -> bool {
    let Some((shown, at)) = last else { return true };
    let since = waited.saturating_sub(at);
    shown.online != now.online
        || ((shown.pending, shown.check) != (now.pending, now.check) && since >= LINE_EVERY)
        || since >= QUIET_LINE
}

/// Wait as [`verdict`] says, counting with `sample` every [`POLL`] and writing progress
/// lines to stderr as [`line_due`] says (on a terminal, one line rewritten in place).
/// `Ok` once nothing waits; otherwise an error that says what still waits and why.
pub fn wait_until_synced(
    timeout: Duration,
    mut sample: impl FnMut() -> anyhow::Result<Sample>,
) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    let first = sample()?;
    let mut shown: Option<(Sample, Duration)> = None;
    let mut now = first;
    let terminal = std::io::stderr().is_terminal();
    let show = |line: &str| {
        if terminal {
            eprint!("\r\x1b[K{line}");
        } else {
            eprintln!("{line}");
        }
    };
    loop {
        let waited = start.elapsed();
        let verdict = verdict(now, waited, timeout);
        if terminal && shown.is_some() && verdict != Verdict::Wait {
            eprintln!();
        }
        match verdict {
            Verdict::Synced => {
                if shown.is_some() {
                    show("synced: nothing waits");
                    if terminal {
                        eprintln!();
                    }
                }
                return Ok(());
            }
            Verdict::NoDaemon if now.pending == 0 => anyhow::bail!(
                "the cache was not checked since the mount stopped uncleanly, and no mount \
                 runs for this profile: start `savesync mount` to check it"
            ),
            Verdict::NoDaemon => anyhow::bail!(
                "{} save(s) wait to sync and no daemon runs for this profile: start \
                 `savesync mount` or `savesync sync` to sync them",
                now.pending
            ),
            Verdict::TimedOut if now.check.is_some() => anyhow::bail!(
                "the check of the cache after an unclean stop did not end within {} s",
                timeout.as_secs()
            ),
            Verdict::TimedOut if now.pending == 0 => anyhow::bail!(
                "the daemon did not notice the latest changes within {} s",
                timeout.as_secs()
            ),
            Verdict::TimedOut => anyhow::bail!(
                "{} save(s) still wait to sync after {} s{}",
                now.pending,
                timeout.as_secs(),
                if now.online { "" } else { " (the server is offline)" }
            ),
            Verdict::Wait => {}
        }
        if line_due(shown, now, waited) {
            show(&progress_line(first.pending, now, waited));
            shown = Some((now, waited));
        }
        std::thread::sleep(POLL);
        now = sample()?;
    }
}

#[cfg(test)]
mod tests {
    use super::{CacheCheck, Sample, Verdict, line_due, progress_line, verdict};
    use std::time::Duration;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn at(pending: u64, daemon: bool, online: bool) -> Sample {
        Sample { pending, daemon, online, settled: true, check: None }
    }

    /// A mount checking its cache after an unclean stop, `checked` of 10 saves so far.
    fn checking(pending: u64, daemon: bool, checked: u64) -> Sample {
        Sample { check: Some(CacheCheck { checked, total: 10 }), ..at(pending, daemon, true) }
    }

    fn unsettled(pending: u64) -> Sample {
        Sample { settled: false, ..at(pending, true, true) }
    }

    #[test]
    fn waiting_ends_when_the_queue_is_empty_or_cannot_empty() {
        let rows = [
            (at(0, true, true), S(0), S(0), Verdict::Synced),
            (at(0, false, false), S(5), S(1), Verdict::Synced),
            (at(3, false, true), S(0), S(0), Verdict::NoDaemon),
            (at(3, false, false), S(9), S(1), Verdict::NoDaemon),
            (at(3, true, true), S(9), S(0), Verdict::Wait),
            (at(3, true, false), S(59), S(60), Verdict::Wait),
            (at(3, true, false), S(60), S(60), Verdict::TimedOut),
            (at(3, true, true), S(61), S(60), Verdict::TimedOut),
            // A synced folder's watcher may not have reported a change made just before.
            (unsettled(0), S(0), S(0), Verdict::Wait),
            (unsettled(0), S(5), S(5), Verdict::TimedOut),
            (unsettled(2), S(1), S(0), Verdict::Wait),
            // After an unclean stop, saves the check has not reached may have changed.
            (checking(0, true, 3), S(1), S(0), Verdict::Wait),
            (checking(2, true, 3), S(1), S(0), Verdict::Wait),
            (checking(0, true, 3), S(5), S(5), Verdict::TimedOut),
            (checking(0, false, 3), S(0), S(0), Verdict::NoDaemon),
        ];
        for (sample, waited, timeout, want) in rows {
            assert_eq!(verdict(sample, waited, timeout), want, "{sample:?} {waited:?} {timeout:?}");
        }
    }

    #[test]
    fn progress_lines_come_when_something_changed_but_at_most_once_a_second() {
        let ms = Duration::from_millis;
        let rows = [
            (None, at(5, true, true), ms(0), true),
            (Some((at(5, true, true), ms(0))), at(5, true, true), ms(250), false),
            (Some((at(5, true, true), ms(0))), at(4, true, true), ms(500), false),
            (Some((at(5, true, true), ms(0))), at(4, true, true), ms(1000), true),
            (Some((at(5, true, true), ms(0))), at(5, true, false), ms(250), true),
            (Some((at(5, true, false), ms(0))), at(5, true, false), ms(9_999), false),
            (Some((at(5, true, false), ms(0))), at(5, true, false), ms(10_000), true),
            (Some((checking(0, true, 3), ms(0))), checking(0, true, 3), ms(1000), false),
            (Some((checking(0, true, 3), ms(0))), checking(0, true, 7), ms(1000), true),
        ];
        for (last, now, waited, want) in rows {
            assert_eq!(line_due(last, now, waited), want, "{last:?} {now:?} {waited:?}");
        }
    }

    #[test]
    fn a_progress_line_says_what_waits_and_how_fast_it_falls() {
        let rows = [
            (10, at(10, true, true), S(0), "waiting: 10 save(s) to sync"),
            (10, at(10, true, false), S(5), "waiting: 10 save(s) to sync, server offline"),
            (10, at(8, true, false), S(5), "waiting: 8 save(s) to sync, server offline"),
            (100, at(80, true, true), Duration::from_millis(500), "waiting: 80 save(s) to sync"),
            (
                1000,
                at(600, true, true),
                S(4),
                "waiting: 600 save(s) to sync, 400 synced (100/s, about 6 s left)",
            ),
            (
                10,
                at(9, true, true),
                S(3),
                "waiting: 9 save(s) to sync, 1 synced (0/s, about 27 s left)",
            ),
            // More waiting now than at the start (new saves): no rate to give.
            (5, at(7, true, true), S(3), "waiting: 7 save(s) to sync"),
            (0, unsettled(0), S(0), "waiting: for the daemon to notice the latest changes"),
            (4, unsettled(4), S(0), "waiting: 4 save(s) to sync"),
            (
                0,
                checking(0, true, 3),
                S(2),
                "waiting: the cache is checked after an unclean stop (3 of 10 saves)",
            ),
            (
                0,
                checking(2, true, 7),
                S(2),
                "waiting: the cache is checked after an unclean stop (7 of 10 saves), 2 save(s) to sync",
            ),
        ];
        for (first, sample, waited, want) in rows {
            assert_eq!(progress_line(first, sample, waited), want);
        }
    }
}
