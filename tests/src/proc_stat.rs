//! `/proc/PID/stat` as tests and the benchmark read it: whether a process still runs, its session and CPU
//! time, counted past the command name, which may hold spaces and parentheses.

use std::str::SplitWhitespace;

/// The text of `/proc/PID/stat`; None when there is no such process.
#[must_use]
pub fn proc_stat(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()
}

/// Fields 3 onward of a `/proc/.../stat` line, the state first: counted from the last `)`,
/// because the command name in field 2 may hold spaces and parentheses.
#[must_use]
pub fn fields_after_name(stat: &str) -> Option<SplitWhitespace<'_>> {
    Some(stat[stat.rfind(')')? + 1..].split_whitespace())
}

/// True while process `pid` exists and has not exited (a zombie no one reaped has).
#[must_use]
pub fn is_running(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|stat| {
        fields_after_name(&stat).and_then(|mut fields| fields.next()).is_some_and(|s| s != "Z")
    })
}

/// Session id of process `pid` (field 6).
#[must_use]
pub fn session_of(pid: u32) -> Option<u32> {
    let stat = proc_stat(pid)?;
    // After the name: state, ppid, pgrp, session.
    fields_after_name(&stat)?.nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_counted_past_a_name_with_spaces_and_parentheses() {
        let table = [
            ("42 (savesync) S 1 42 42 0", Some(vec!["S", "1", "42", "42", "0"])),
            ("42 (a) b (c)) R 7", Some(vec!["R", "7"])),
            ("42 (x y)", Some(vec![])),
            ("no name here", None),
        ];
        for (stat, fields) in table {
            let got = fields_after_name(stat).map(Iterator::collect::<Vec<_>>);
            assert_eq!(got, fields, "{stat}");
        }
    }

    #[test]
    fn a_live_process_has_its_kernel_session_and_a_missing_one_has_no_stat() {
        // The session may be 0 when the runner was started outside any session (a container's
        // init), so compare with what the kernel says rather than with a constant.
        let sid = nix::unistd::getsid(None).expect("getsid of this process");
        assert_eq!(session_of(std::process::id()), u32::try_from(sid.as_raw()).ok());
        assert!(is_running(std::process::id()));
        assert_eq!(proc_stat(u32::MAX), None);
        assert!(!is_running(u32::MAX));
    }
}
