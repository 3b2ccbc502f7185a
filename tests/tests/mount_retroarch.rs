//! RetroArch's Cloud Sync (replayed by [`RetroArch`]) and a real FUSE mount of the same
//! user keep one save in step both ways: what RetroArch uploads appears on the mount (woken
//! by the changes feed, not a poll of the library), and what the emulator on the mount's
//! side writes, RetroArch fetches at its next sync.

use savesync_tests::{RetroArch, SoloDevice, wait_for_bytes, wait_until};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(10);
const KEY: &str = "saves/snes9x/Chrono Trigger (USA).srm";
const ON_MOUNT: &str = "retroarch/saves/snes9x/Chrono Trigger (USA).srm";

#[test]
fn retroarch_and_a_mount_sync_the_same_save_both_ways() {
    let Some(t) = SoloDevice::start("alice", "desktop") else { return };
    let creds = t.server.retroarch_device("alice", "steamdeck", "retroarch");
    let deck = RetroArch::new(&t.server.url(), &creds);

    // RetroArch -> mount.
    deck.write(KEY, b"sram from the deck");
    let synced_at = Instant::now();
    let outcome = deck.sync();
    assert!(!outcome.failures && !outcome.conflicts, "{outcome:?}");
    wait_for_bytes(&t.a.path(ON_MOUNT), b"sram from the deck", DEADLINE);
    println!("RetroArch upload visible on the mount after {:?}", synced_at.elapsed());

    // Mount -> RetroArch: the emulator on the desktop saves in place.
    std::fs::write(t.a.path(ON_MOUNT), b"sram from the desktop, later").unwrap();
    wait_until(DEADLINE, "the mount's save on the server", || {
        t.view.has(ON_MOUNT, b"sram from the desktop, later").then_some(())
    });
    deck.take_log();
    let outcome = deck.sync();
    assert!(!outcome.failures && !outcome.conflicts, "{outcome:?}");
    assert_eq!(deck.read(KEY).as_deref(), Some(&b"sram from the desktop, later"[..]));
    assert!(
        deck.take_log().iter().any(|l| l.starts_with("GET /dav/saves/snes9x/Chrono%20Trigger")),
        "fetched by a GET"
    );

    // And back once more: RetroArch's change replaces what the mount shows.
    deck.write(KEY, b"sram from the deck, third");
    let outcome = deck.sync();
    assert!(!outcome.failures && !outcome.conflicts, "{outcome:?}");
    wait_for_bytes(&t.a.path(ON_MOUNT), b"sram from the deck, third", DEADLINE);
    let history = t.view.history(ON_MOUNT);
    assert!(
        history.versions.iter().all(|v| v.kind == savesync_core::wire::VersionKind::Commit),
        "ordinary commits, no conflict: {history:?}"
    );
}
