//! The one reader of `/proc/self/mountinfo`: which directories are live FUSE mounts (the
//! daemon checks before mounting, `status` to tell a live mount from a stale row, the test
//! harness to wait for a mount to come up or go away), and cleaning stale mounts: a crashed
//! daemon leaves a FUSE mount whose every access fails with ENOTCONN until it is lazily
//! unmounted.

use std::path::Path;

/// Mount ids of every FUSE mount (fstype `fuse` or `fuse.*`) whose mount point is `dir`.
#[must_use]
pub fn fuse_mount_ids(dir: &Path) -> Vec<u64> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let wanted = dir.to_string_lossy();
    text.lines().filter_map(|line| parse_fuse_line(line, &wanted)).collect()
}

/// True if `dir` (canonicalised when it exists) is currently a FUSE mount point.
#[must_use]
pub fn is_fuse_mounted(dir: &Path) -> bool {
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    !fuse_mount_ids(&canonical).is_empty()
}

/// `id parent maj:min root mountpoint opts [optional...] - fstype source superopts`.
fn parse_fuse_line(line: &str, wanted_mountpoint: &str) -> Option<u64> {
    let (before, after) = line.split_once(" - ")?;
    let fstype = after.split(' ').next()?;
    if fstype != "fuse" && !fstype.starts_with("fuse.") {
        return None;
    }
    let fields: Vec<&str> = before.split(' ').collect();
    let mountpoint = unescape_octal(fields.get(4)?);
    if mountpoint != wanted_mountpoint {
        return None;
    }
    fields.first()?.parse().ok()
}

/// The kernel escapes space, tab, newline and backslash in mountinfo as `\ooo`.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|_| bytes[i] == b'\\');
        let value = octal
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match value {
            Some(v) => {
                out.push(v);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// If `mountpoint` is a dead FUSE mount (stat fails with ENOTCONN), detach it.
pub fn clean_stale_mount(mountpoint: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(mountpoint) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            tracing::warn!(
                "{} is a stale mount left by a crash: detaching it",
                mountpoint.display()
            );
            lazy_unmount(mountpoint)
        }
        _ => Ok(()),
    }
}

/// Detach a mount now, even if busy (`fusermount3 -uz`, else `umount2(MNT_DETACH)`).
pub fn lazy_unmount(mountpoint: &Path) -> anyhow::Result<()> {
    let status = std::process::Command::new("fusermount3")
        .arg("-uz")
        .arg(mountpoint)
        .stderr(std::process::Stdio::null())
        .status();
    if status.is_ok_and(|s| s.success()) {
        return Ok(());
    }
    nix::mount::umount2(mountpoint, nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| anyhow::anyhow!("detaching {}: {e}", mountpoint.display()))
}

#[cfg(test)]
mod tests {
    use super::{parse_fuse_line, unescape_octal};

    #[test]
    fn finds_a_fuse_mount_by_its_mountpoint() {
        let line = "812 29 0:83 / /tmp/dev\\040a/mnt rw,nosuid,nodev - fuse.savesync savesync rw";
        assert_eq!(parse_fuse_line(line, "/tmp/dev a/mnt"), Some(812));
        assert_eq!(parse_fuse_line(line, "/tmp/other"), None);
    }

    #[test]
    fn ignores_mounts_that_are_not_fuse() {
        let line = "25 1 0:22 / /tmp rw shared:5 - tmpfs tmpfs rw";
        assert_eq!(parse_fuse_line(line, "/tmp"), None);
    }

    #[test]
    fn unescapes_octal_sequences() {
        assert_eq!(unescape_octal("a\\040b\\134c"), "a b\\c");
        assert_eq!(unescape_octal("trailing\\04"), "trailing\\04");
    }
}
