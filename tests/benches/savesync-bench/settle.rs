//! Letting the filesystem forget the bench's own deletions before the next timed workload.
//!
//! ext4 without a journal (the root filesystem of the VM the figures in
//! docs/performance.md come from) does not hand out an inode freed moments ago: each new
//! file's allocation walks past the recently freed inodes of its block group, reading the
//! inode table to check when each was deleted. Right after a mass deletion a create costs
//! more CPU, whichever process made the deletions, so without a pause the workload after a
//! cleanup pays for part of it (measured in docs/performance.md, run 11).

use std::time::Duration;

/// Write back what the deletions dirtied, then wait `pause` (zero: no wait), saying why.
pub fn settle(pause: Duration, after: &str) {
    if pause.is_zero() {
        return;
    }
    eprintln!(
        "   settling {} s after {after}, so the next workload's creates do not pay for those \
         deletions (--settle-secs 0 skips this)",
        pause.as_secs()
    );
    nix::unistd::sync();
    std::thread::sleep(pause);
}
