//! Whether this machine can run FUSE mounts. Outside CI a missing FUSE is a visible skip;
//! under `CI=true` it is a failure, because CI is where the mount tests must really run.

use std::fs::OpenOptions;
use std::process::{Command, Stdio};

/// True if `/dev/fuse` can be opened and `fusermount3` runs. If not: panics under
/// `CI=true`, otherwise prints `SKIPPED: ...` and returns false.
#[must_use]
pub fn require_fuse() -> bool {
    match fuse_problem() {
        None => true,
        Some(problem) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("FUSE is required under CI=true but is unusable: {problem}");
            }
            eprintln!("SKIPPED: FUSE is unusable on this machine ({problem})");
            false
        }
    }
}

fn fuse_problem() -> Option<String> {
    if let Err(e) = OpenOptions::new().read(true).write(true).open("/dev/fuse") {
        return Some(format!("cannot open /dev/fuse: {e}"));
    }
    match Command::new("fusermount3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => None,
        Err(e) => Some(format!("cannot run fusermount3: {e}")),
    }
}
