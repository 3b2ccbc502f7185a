//! An inotify queue overflow: the daemon's inotify instance is created while
//! `/proc/sys/fs/inotify/max_queued_events` is lowered to 16 (restored at once after the
//! daemon started), then 400 saves are written in a burst while the daemon is stopped
//! (SIGSTOP), so nobody reads the queue. The kernel drops events; once continued, the daemon
//! must notice (IN_Q_OVERFLOW), rescan, and sync every save.

use savesync_tests::{FolderDevice, RemoteView, TestServer, poll_until, save_bytes};
use std::collections::BTreeMap;
use std::time::Duration;

const USER: &str = "ovo";
const SAVES: usize = 400;
const DEADLINE: Duration = Duration::from_secs(60);
const KNOB: &str = "/proc/sys/fs/inotify/max_queued_events";

/// Restores the system-wide limit when dropped (also on a panic).
struct Limit(String);

impl Drop for Limit {
    fn drop(&mut self) {
        let _ = std::fs::write(KNOB, &self.0);
    }
}

/// Continues the stopped daemon when dropped (also on a panic).
struct Cont(nix::unistd::Pid);

impl Drop for Cont {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGCONT);
    }
}

#[test]
fn every_change_syncs_after_an_inotify_queue_overflow() {
    let Ok(old) = std::fs::read_to_string(KNOB) else {
        assert!(std::env::var("CI").is_err(), "{KNOB} is not readable under CI");
        eprintln!("SKIPPED: {KNOB} is not readable here");
        return;
    };
    let server = TestServer::start_blocking();
    let view = RemoteView::new(&server, USER);
    let mut b = FolderDevice::pair(&server, USER, "handheld");
    {
        let lowered = std::fs::write(KNOB, "16");
        if lowered.is_err() {
            assert!(std::env::var("CI").is_err(), "cannot lower {KNOB} under CI (not root?)");
            eprintln!("SKIPPED: cannot write {KNOB} (needs root)");
            return;
        }
        let _restore = Limit(old.trim().to_owned());
        b.start();
    }
    assert_eq!(std::fs::read_to_string(KNOB).unwrap().trim(), old.trim(), "limit restored");
    let mut want = BTreeMap::new();
    for d in 0..4 {
        std::fs::create_dir_all(b.path(&format!("dir{d}"))).unwrap();
    }
    // Stopped, the daemon reads no events: the burst must overflow its queue of 16.
    let pid = nix::unistd::Pid::from_raw(b.pid().expect("the daemon runs") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP the daemon");
    let cont = Cont(pid);
    for i in 0..SAVES {
        let rel = format!("dir{}/save-{i:03}.srm", i % 4);
        let bytes = save_bytes(7000 + i as u64, 256);
        std::fs::write(b.path(&rel), &bytes).unwrap();
        want.insert(rel, savesync_core::ContentHash::of(&bytes));
    }
    drop(cont);
    let done = poll_until(DEADLINE, || (view.try_saves()? == want).then_some(()));
    let have = view.saves();
    let missing = want.keys().filter(|p| have.get(*p) != want.get(*p)).count();
    assert!(done.is_some(), "{missing} of {SAVES} saves never synced after the overflow");
    let log = std::fs::read_to_string(b.log_path()).unwrap();
    assert!(
        log.contains("file events were lost: rescanning"),
        "the burst did not overflow the queue of 16 events, so nothing was tested:\n{}",
        b.log_tail()
    );
    b.stop();
}
