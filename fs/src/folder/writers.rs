//! Which files below a directory some process has open for writing, read from
//! `/proc/PID/fd` (where each descriptor points) and `/proc/PID/fdinfo/FD` (its open
//! flags). This is how a synced folder tells a save still being written (an emulator that
//! keeps its SRAM file open between writes) from a finished one, without any cooperation
//! from the writer. Processes of other users are invisible without root; their files
//! count as not open (the debounce still applies).
//!
//! Cost: one `readlink` per open descriptor on the machine, and one small read per
//! descriptor that points into the folder. Callers check only files that are otherwise
//! quiet, and reuse one answer for a whole listing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// `O_ACCMODE` bits of an fdinfo `flags:` line (octal) say write or read-write.
#[must_use]
pub fn fdinfo_writable(fdinfo: &str) -> bool {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .is_some_and(|flags| {
            let mode = flags & libc::O_ACCMODE as u32;
            mode == libc::O_WRONLY as u32 || mode == libc::O_RDWR as u32
        })
}

/// Every file below `root` that a process other than this one has open for writing.
#[must_use]
pub fn open_for_writing(root: &Path) -> HashSet<PathBuf> {
    let mut out = HashSet::new();
    let me = std::process::id().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    for proc in procs.flatten() {
        let pid = proc.file_name();
        let Some(pid) = pid.to_str() else { continue };
        if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(proc.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else { continue };
            if !target.starts_with(root) {
                continue;
            }
            let info = proc.path().join("fdinfo").join(fd.file_name());
            if std::fs::read_to_string(info).is_ok_and(|t| fdinfo_writable(&t)) {
                out.insert(target);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{fdinfo_writable, open_for_writing};
    use std::io::Write;

    #[test]
    fn fdinfo_flags_table() {
        let table: &[(&str, bool)] = &[
            ("pos:\t0\nflags:\t0100000\nmnt_id:\t29\n", false), // O_RDONLY|O_LARGEFILE
            ("pos:\t0\nflags:\t0100001\n", true),               // O_WRONLY
            ("pos:\t0\nflags:\t0100002\n", true),               // O_RDWR
            ("pos:\t0\nflags:\t02102001\n", true),              // O_WRONLY|O_APPEND|...
            ("pos:\t0\n", false),                               // no flags line
            ("flags:\tzz\n", false),
        ];
        for (text, want) in table {
            assert_eq!(fdinfo_writable(text), *want, "{text:?}");
        }
    }

    #[test]
    fn a_file_held_open_for_writing_by_another_process_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let file = root.join("held.srm");
        std::fs::File::create(&file).unwrap().write_all(b"x").unwrap();
        // Another process holds it open for writing (this process is skipped on purpose).
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("exec 3>>\"$1\"; read _")
            .arg("sh")
            .arg(&file)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while !open_for_writing(&root).contains(&file) {
            assert!(start.elapsed() < std::time::Duration::from_secs(10), "never seen open");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        drop(child.stdin.take());
        child.wait().unwrap();
        assert!(!open_for_writing(&root).contains(&file));
    }
}
