//! What the re-export tests share: a mounted device re-exported by a real file server
//! (Samba, SFTP), one save-handling scenario every share client runs, and the check that the
//! sync server ends up with exactly the expected saves.
//!
//! A re-exporting server runs as root against the mount (allow_other + default_permissions),
//! as on a NAS. The external tools are found on PATH; when one is missing the test is
//! skipped with a visible message, except under `CI=true`, where it fails: CI installs them
//! (`.ci/install-deps`).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use savesync_core::ContentHash;
use savesync_tests::{Device, RemoteView, TestServer, require_fuse};
pub use savesync_tests::{require_tools, wait_with_deadline};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a save may take from the share client's close to the sync server.
pub const SERVER_DEADLINE: Duration = Duration::from_secs(20);

/// A sync server, one device with its mount, and an observer on the server side.
/// Field order is drop order: the mount goes before the server.
pub struct MountedDevice {
    pub device: Device,
    pub remote: RemoteView,
    pub server: TestServer,
}

impl MountedDevice {
    /// `None` (after a visible skip) when FUSE is unusable outside CI.
    #[must_use]
    pub fn start(device_name: &str) -> Option<MountedDevice> {
        if !require_fuse() {
            return None;
        }
        let server = TestServer::start_blocking();
        let mut device = Device::pair(&server, "nas-owner", device_name);
        device.mount();
        let remote = RemoteView::new(&server, "nas-owner");
        Some(MountedDevice { device, remote, server })
    }

    /// The directory the file server shares.
    #[must_use]
    pub fn share_dir(&self) -> PathBuf {
        self.device.mountpoint().to_path_buf()
    }
}

/// The operations a share client (smbclient, sftp) performs on the share; paths are
/// relative to the share root, `/`-separated.
pub trait ShareClient {
    fn mkdir(&self, dir: &str);
    /// Upload a local file to `remote`, creating or overwriting it.
    fn put(&self, local: &Path, remote: &str);
    /// Rename `from` to `to`, replacing `to` if it exists.
    fn rename_over(&self, from: &str, to: &str);
    fn delete(&self, remote: &str);
    /// Names of the entries of `dir` (without `.` and `..`).
    fn list(&self, dir: &str) -> Vec<String>;
}

/// Bytes the scenario writes; distinct so a stale version is recognised.
pub const CHRONO_V1: &[u8] = b"chrono trigger sram, first save\n";
pub const CHRONO_V2: &[u8] = b"chrono trigger sram, second save after the boss\n";
pub const MANA_V1: &[u8] = b"secret of mana sram v1\n";
pub const MANA_V2: &[u8] = b"secret of mana sram v2, written as a temp file then renamed over\n";
pub const DOOMED: &[u8] = b"this save is deleted through the share\n";

/// What a user does through a re-export: create, overwrite in place, the editor/Samba
/// "write a temp file, rename it over the save" pattern, delete, list. Returns the saves the
/// sync server must hold afterwards (path -> bytes).
pub fn run_save_scenario(client: &dyn ShareClient, staging: &Path) -> BTreeMap<String, Vec<u8>> {
    let stage = |name: &str, bytes: &[u8]| -> PathBuf {
        let path = staging.join(name);
        std::fs::write(&path, bytes).expect("write a staging file");
        path
    };
    client.mkdir("snes");
    client.put(&stage("chrono-v1", CHRONO_V1), "snes/Chrono Trigger.srm");
    client.put(&stage("chrono-v2", CHRONO_V2), "snes/Chrono Trigger.srm");
    client.put(&stage("mana-v1", MANA_V1), "snes/Secret of Mana.srm");
    client.put(&stage("mana-v2", MANA_V2), "snes/Secret of Mana.srm.tmp");
    client.rename_over("snes/Secret of Mana.srm.tmp", "snes/Secret of Mana.srm");
    client.put(&stage("doomed", DOOMED), "snes/Deleted Game.srm");
    client.delete("snes/Deleted Game.srm");

    let mut listed = client.list("snes");
    listed.sort();
    assert_eq!(
        listed,
        ["Chrono Trigger.srm", "Secret of Mana.srm"],
        "the share lists exactly the two saves (no temp file, no deleted save)"
    );
    BTreeMap::from([
        ("snes/Chrono Trigger.srm".to_owned(), CHRONO_V2.to_vec()),
        ("snes/Secret of Mana.srm".to_owned(), MANA_V2.to_vec()),
    ])
}

/// The plain-directory control: `root` holds exactly the expected files with their bytes.
pub fn assert_dir_holds(root: &Path, expected: &BTreeMap<String, Vec<u8>>) {
    for (path, bytes) in expected {
        let got = std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"));
        assert!(got == *bytes, "{path} does not hold the bytes written last");
    }
}

/// Waits until the sync server's live saves are exactly `expected` (same paths, same
/// bytes): nothing missing, nothing stale, no temp file, no deleted save. On the deadline
/// the panic shows both sides by name.
pub fn assert_server_holds_exactly(remote: &RemoteView, expected: &BTreeMap<String, Vec<u8>>) {
    let want: BTreeMap<String, ContentHash> =
        expected.iter().map(|(path, bytes)| (path.clone(), ContentHash::of(bytes))).collect();
    let start = Instant::now();
    let mut last_seen = None;
    while start.elapsed() < SERVER_DEADLINE {
        if let Some(saves) = remote.try_saves() {
            if saves == want {
                return;
            }
            last_seen = Some(saves);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "the server does not hold exactly the expected saves after {SERVER_DEADLINE:?}\n\
         expected: {}\nserver:   {}",
        describe(&want),
        last_seen.as_ref().map_or_else(|| "unreachable".to_owned(), describe)
    );
}

/// `path (which scenario version, or other bytes)` for a readable failure.
fn describe(saves: &BTreeMap<String, ContentHash>) -> String {
    let known: BTreeMap<ContentHash, &str> = [
        (CHRONO_V1, "chrono v1"),
        (CHRONO_V2, "chrono v2"),
        (MANA_V1, "mana v1"),
        (MANA_V2, "mana v2"),
        (DOOMED, "deleted save"),
    ]
    .into_iter()
    .map(|(bytes, name)| (ContentHash::of(bytes), name))
    .collect();
    let entries: Vec<String> = saves
        .iter()
        .map(|(path, hash)| {
            format!("{path} ({})", known.get(hash).copied().unwrap_or("other bytes"))
        })
        .collect();
    format!("[{}]", entries.join(", "))
}
