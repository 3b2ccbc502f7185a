//! Mount checks for the harness, from the device program's own mountinfo reader: the
//! harness never trusts "the process started" as "the mount is up": it waits for the
//! kernel to list the mount, and after unmounting it waits for the entry to go away.

pub use savesync_fs::mountinfo::fuse_mount_ids;
use std::path::Path;

/// True if `dir` (as given: nothing under it is stat'ed, so a hung mount cannot block the
/// harness) is currently a FUSE mount point.
#[must_use]
pub fn is_fuse_mount(dir: &Path) -> bool {
    !fuse_mount_ids(dir).is_empty()
}
