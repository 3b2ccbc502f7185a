//! Where the CLI binaries of this package are. `env!("CARGO_BIN_EXE_*")` only exists while
//! compiling integration tests, not this library, so the harness looks beside the running
//! test binary: cargo puts test executables in `target/<profile>/deps/` and the package's
//! binaries in `target/<profile>/`. `SAVESYNC_E2E_MOUNT_BIN` / `SAVESYNC_E2E_SERVER_BIN`
//! override the lookup.

use std::path::PathBuf;

/// Path of `savesync-e2e-mount` (the `savesync` CLI).
#[must_use]
pub fn mount_bin() -> PathBuf {
    find_bin("savesync-e2e-mount", "SAVESYNC_E2E_MOUNT_BIN")
}

/// Path of `savesync-e2e-server` (the `savesync-server` CLI).
#[must_use]
pub fn server_bin() -> PathBuf {
    find_bin("savesync-e2e-server", "SAVESYNC_E2E_SERVER_BIN")
}

fn find_bin(name: &str, env_override: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_override) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("path of the running test binary");
    let mut candidates = Vec::new();
    if let Some(dir) = exe.parent() {
        candidates.push(dir.join(name));
        if let Some(profile_dir) = dir.parent() {
            candidates.push(profile_dir.join(name));
        }
    }
    candidates.iter().find(|p| p.is_file()).cloned().unwrap_or_else(|| {
        panic!(
            "binary {name} not found (looked at {candidates:?}); build it with \
             `cargo test -p savesync-tests` or set {env_override}"
        )
    })
}
