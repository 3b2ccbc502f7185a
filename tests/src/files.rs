//! File checks through a mount, done with plain `std::fs` as an emulator or file manager
//! would: wait until a path reads back given bytes, until it is gone, list a directory.
//! Also deterministic save contents so every test's bytes are distinct and reproducible.

use crate::wait::poll_until;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// Poll until `path` reads back exactly `expected`; returns how long that took. Panics with
/// what was last seen (error, or length and a prefix) after `timeout`.
pub fn wait_for_bytes(path: &Path, expected: &[u8], timeout: Duration) -> Duration {
    let mut last = String::from("nothing read yet");
    let found = poll_until(timeout, || match std::fs::read(path) {
        Ok(bytes) if bytes == expected => Some(()),
        Ok(bytes) => {
            last = format!("{} bytes starting {:?}", bytes.len(), prefix(&bytes));
            None
        }
        Err(e) => {
            last = format!("error: {e}");
            None
        }
    });
    match found {
        Some(((), elapsed)) => elapsed,
        None => panic!(
            "{} did not read back the expected {} bytes (starting {:?}) within {timeout:?}; \
             last saw {last}",
            path.display(),
            expected.len(),
            prefix(expected)
        ),
    }
}

/// Poll until `path` no longer exists; returns how long that took.
pub fn wait_for_absent(path: &Path, timeout: Duration) -> Duration {
    match poll_until(timeout, || (!path.exists()).then_some(())) {
        Some(((), elapsed)) => elapsed,
        None => panic!("{} still exists {timeout:?} later", path.display()),
    }
}

/// Names in `dir` (no `.`/`..`), or the error text.
pub fn dir_names(dir: &Path) -> Result<BTreeSet<String>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("read_dir {}: {e}", dir.display()))?;
    let mut names = BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("read_dir entry in {}: {e}", dir.display()))?;
        names.insert(entry.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}

/// `len` reproducible pseudo-random bytes for `seed` (xorshift; no two seeds alike).
#[must_use]
pub fn save_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

fn prefix(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(16)]
}
