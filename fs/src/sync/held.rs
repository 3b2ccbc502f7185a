//! Queue entries the uploader holds back in memory because the durable queue itself could
//! not be updated after their sync (the state DB's disk is full). Such an entry keeps its old
//! due time in the DB, so without a hold it would be taken first again and again, and the
//! saves queued behind it would never get a slot. A hold backs off per path like a failed
//! entry (`policy::entry_backoff`) and ends when an update of that path succeeds.

use super::policy::entry_backoff;
use savesync_core::SavePath;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Most paths held at once; beyond it the oldest hold ends (an entry taken too early only
/// costs one more failed attempt).
const MAX_HELD: usize = 4096;

#[derive(Debug, Default)]
pub(super) struct Held {
    paths: HashMap<SavePath, (Instant, i64)>,
}

impl Held {
    /// Hold `path` back after another fault, for `base` doubling per fault in a row.
    pub(super) fn fault(&mut self, path: SavePath, base: Duration, now: Instant) {
        if self.paths.len() >= MAX_HELD && !self.paths.contains_key(&path) {
            self.expire(now);
            if let Some(oldest) =
                self.paths.iter().min_by_key(|(_, (t, _))| *t).map(|(p, _)| p.clone())
            {
                self.paths.remove(&oldest);
            }
        }
        let faults = self.paths.get(&path).map_or(0, |(_, n)| n + 1);
        self.paths.insert(path, (now + entry_backoff(base, faults), faults));
    }

    /// The queue entry of `path` was updated: it is no longer held.
    pub(super) fn cleared(&mut self, path: &SavePath) {
        self.paths.remove(path);
    }

    /// Whether `path` must wait at `now`.
    pub(super) fn is_held(&self, path: &SavePath, now: Instant) -> bool {
        self.paths.get(path).is_some_and(|(until, _)| *until > now)
    }

    /// How many paths are held at `now`.
    pub(super) fn count(&self, now: Instant) -> usize {
        self.paths.values().filter(|(until, _)| *until > now).count()
    }

    /// When the earliest hold ends, if any is still running at `now`.
    pub(super) fn next_release(&self, now: Instant) -> Option<Instant> {
        self.paths.values().map(|(until, _)| *until).filter(|t| *t > now).min()
    }

    fn expire(&mut self, now: Instant) {
        // Keep the fault count of a path whose hold ran out only while there is room.
        self.paths.retain(|_, (until, _)| *until > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> SavePath {
        SavePath::parse(s).unwrap()
    }

    #[test]
    fn a_hold_backs_off_per_fault_and_ends_when_the_entry_is_updated() {
        let (base, t0) = (Duration::from_millis(100), Instant::now());
        let mut held = Held::default();
        held.fault(p("a.sav"), base, t0);
        assert!(held.is_held(&p("a.sav"), t0));
        assert!(!held.is_held(&p("b.sav"), t0), "other paths are free");
        assert!(!held.is_held(&p("a.sav"), t0 + base), "the first hold lasts the base");
        held.fault(p("a.sav"), base, t0);
        assert!(
            held.is_held(&p("a.sav"), t0 + base),
            "a second fault in a row holds twice as long"
        );
        assert_eq!(held.next_release(t0), Some(t0 + base * 2));
        assert_eq!(held.count(t0), 1);
        held.cleared(&p("a.sav"));
        assert!(!held.is_held(&p("a.sav"), t0));
        assert_eq!(held.next_release(t0), None);
    }

    #[test]
    fn holds_are_bounded() {
        let (base, t0) = (Duration::from_secs(1), Instant::now());
        let mut held = Held::default();
        for i in 0..MAX_HELD + 10 {
            held.fault(p(&format!("s{i}.sav")), base, t0);
        }
        assert_eq!(held.paths.len(), MAX_HELD);
        assert!(held.is_held(&p(&format!("s{}.sav", MAX_HELD + 9)), t0), "the newest hold stays");
    }
}
