//! `savesync untrack PATH` / `savesync track PATH` on a real server: an untracked save
//! stops following the other devices on this one (its old bytes stay), and `track`
//! brings it back in step.

use savesync_tests::{Device, DevicePair, save_bytes, wait_for_bytes};
use std::time::Duration;

const USER: &str = "opt";
const SAVE: &str = "snes/Zelda.srm";
const DEADLINE: Duration = Duration::from_secs(10);

fn cli_ok(dev: &Device, args: &[&str]) -> String {
    let out = dev.run_cli(args);
    assert!(
        out.status.success(),
        "savesync {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_untracked_save_keeps_its_old_bytes_here_until_it_is_tracked_again() {
    let Some(DevicePair { mut a, mut b, view, server: _server }) = DevicePair::start(USER) else {
        return;
    };
    std::fs::create_dir_all(a.path("snes")).unwrap();
    let first = save_bytes(1, 4096);
    std::fs::write(a.path(SAVE), &first).unwrap();
    wait_for_bytes(&b.path(SAVE), &first, DEADLINE);

    b.unmount();
    let said = cli_ok(&b, &["untrack", SAVE]);
    assert!(said.contains("no longer synced"), "untrack says what it did: {said}");
    let second = save_bytes(2, 4096);
    std::fs::write(a.path(SAVE), &second).unwrap();
    savesync_tests::wait_until(DEADLINE, "A's second version on the server", || {
        view.has(SAVE, &second).then_some(())
    });
    let second_seq = view.head(SAVE).expect("A's second version is the head").seq.0;
    b.mount();
    // Wait until B has negotiated past A's commit, so a wrong download would have been
    // planned by now; then give it a bounded window to (wrongly) happen.
    savesync_tests::wait_until(DEADLINE, "B online with a cursor past A's commit", || {
        let status = b.status_json();
        let caught_up =
            status["online"] == true && status["cursor"].as_u64().is_some_and(|c| c >= second_seq);
        caught_up.then_some(())
    });
    // Untracked: B's negotiate leaves the save alone, so its old bytes stay.
    let seen_on_b = savesync_tests::poll_until(Duration::from_secs(2), || {
        (std::fs::read(b.path(SAVE)).ok()? == second).then_some(())
    });
    assert!(seen_on_b.is_none(), "an untracked save does not follow A on B");
    assert_eq!(std::fs::read(b.path(SAVE)).unwrap(), first, "B keeps its old bytes");

    b.unmount();
    cli_ok(&b, &["track", SAVE]);
    b.mount();
    wait_for_bytes(&b.path(SAVE), &second, DEADLINE);
    a.unmount();
    b.unmount();
}
