//! Reading `/proc/self/mountinfo` and cleaning stale mounts: a crashed daemon leaves a
//! FUSE mount whose every access fails with ENOTCONN until it is lazily unmounted.

use std::path::Path;

fn unescape(field: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo (octal).
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let code = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok());
            if let Some(v) = code {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True when `mountpoint` is currently a FUSE mount.
#[must_use]
pub fn is_fuse_mounted(mountpoint: &Path) -> bool {
    let want = std::fs::canonicalize(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf());
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    text.lines().any(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(mp) = fields.get(4) else { return false };
        let fstype = fields.iter().position(|f| *f == "-").and_then(|i| fields.get(i + 1));
        Path::new(&unescape(mp)) == want && fstype.is_some_and(|t| t.starts_with("fuse"))
    })
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
    use super::unescape;

    #[test]
    fn mountinfo_octal_escapes_are_decoded() {
        assert_eq!(unescape(r"/tmp/my\040saves"), "/tmp/my saves");
        assert_eq!(unescape(r"/a\134b"), r"/a\b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape(r"/trailing\04"), r"/trailing\04");
    }
}
