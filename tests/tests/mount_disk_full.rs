//! The device's disk fills up: the device's data dir (cache and state DB) sits on a 2 MiB
//! tmpfs. Saves are written until one fails; the application must see a clear error
//! (ENOSPC, or EIO at close), the mount stays up, every save closed before that reads back
//! intact and reaches the server, and once a save is deleted writes work again.
//!
//! Mounting a tmpfs needs root: without it the test fails under `CI=true` and prints
//! `SKIPPED` otherwise (like [`require_fuse`]).

use savesync_tests::{
    Device, RemoteView, TestServer, poll_until, require_fuse, save_bytes, wait_until,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const USER: &str = "full";
/// Each save; 64 of them would be four times the tmpfs.
const SAVE_LEN: usize = 64 * 1024;
/// Bound of the fill loop: far more than fits in 2 MiB.
const MAX_SAVES: usize = 128;
const SERVER_DEADLINE: Duration = Duration::from_secs(30);

/// A small tmpfs mounted on a directory; unmounted (lazily if still busy) on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mount a `size` tmpfs on `dir`, or say why not (not root, no mount permission).
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("mounting a tmpfs needs root".into());
        }
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(Tmpfs { dir: dir.to_owned() })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.dir).status().is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a panicking test drops this before the device): detach lazily.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Mount a 2 MiB tmpfs on `dir`: `None` is a visible skip, a failure under `CI=true`.
fn small_tmpfs(dir: &Path) -> Option<Tmpfs> {
    match Tmpfs::mount(dir, "2m") {
        Ok(t) => Some(t),
        Err(problem) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("the disk-full test needs a tmpfs under CI=true: {problem}");
            }
            eprintln!("SKIPPED: cannot mount a small tmpfs ({problem})");
            None
        }
    }
}

/// Create `path`, write `bytes`, fsync and close, reporting the first error of any step
/// (dropping a `File` would hide an error of `close`, where FUSE reports a failed flush).
fn write_save(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    nix::unistd::close(f).map_err(std::io::Error::from)
}

fn is_disk_full_error(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EIO | libc::EDQUOT))
}

#[test]
fn a_full_device_disk_gives_enospc_keeps_closed_saves_and_recovers_after_a_delete() {
    if !require_fuse() {
        return;
    }
    let server = TestServer::start_blocking();
    let view = RemoteView::new(&server, USER);
    let mut dev = Device::pair(&server, USER, "full-handheld");
    let Some(tmpfs) = small_tmpfs(&dev.data_home()) else { return };
    dev.mount();
    let dir = dev.path("gba");
    std::fs::create_dir_all(&dir).expect("mkdir on the mount");

    let mut closed: Vec<(PathBuf, String, Vec<u8>)> = Vec::new();
    let mut failure = None;
    for i in 0..MAX_SAVES {
        let name = format!("save{i:03}.sav");
        let bytes = save_bytes(7000 + i as u64, SAVE_LEN);
        match write_save(&dir.join(&name), &bytes) {
            Ok(()) => closed.push((dir.join(&name), format!("gba/{name}"), bytes)),
            Err(e) => {
                failure = Some((name, e));
                break;
            }
        }
    }
    let (failed_name, err) = failure.expect("a 2 MiB disk must fill before 8 MiB of saves");
    assert!(
        is_disk_full_error(&err),
        "the application gets ENOSPC (or EIO at close) when the disk is full, got {err:?}"
    );
    assert!(!closed.is_empty(), "some saves fit before the disk filled");
    eprintln!("disk full after {} saves: {err}", closed.len());

    // The mount is still up and every closed save is intact, locally and on the server.
    assert!(dev.is_mounted(), "the mount process survives a full disk\n{}", dev.log_tail());
    std::fs::metadata(&dir).expect("the mount still answers after the disk filled");
    for (path, _, bytes) in &closed {
        let got = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(got == *bytes, "{} reads back intact after the disk filled", path.display());
    }
    let on_server = poll_until(SERVER_DEADLINE, || {
        closed.iter().all(|(_, rel, bytes)| view.has(rel, bytes)).then_some(())
    });
    let missing: Vec<&str> = closed
        .iter()
        .filter(|(_, rel, bytes)| !view.has(rel, bytes))
        .map(|(_, rel, _)| rel.as_str())
        .collect();
    assert!(on_server.is_some(), "every closed save reaches the server; missing: {missing:?}");

    // Free space: drop the failed file and two saves; then a new save works end to end.
    let _ = std::fs::remove_file(dir.join(&failed_name));
    for (path, _, _) in closed.drain(..2) {
        std::fs::remove_file(&path).expect("deleting a save on a full disk");
    }
    let fresh = save_bytes(9999, SAVE_LEN);
    // Bounded retries: space freed by unlink may reach the cache a moment later.
    wait_until(Duration::from_secs(10), "a write after freeing space", || {
        write_save(&dir.join("after.sav"), &fresh).ok()
    });
    assert_eq!(std::fs::read(dir.join("after.sav")).expect("read after.sav"), fresh);
    wait_until(SERVER_DEADLINE, "the save written after freeing space on the server", || {
        view.has("gba/after.sav", &fresh).then_some(())
    });
    assert!(dev.is_mounted(), "the mount survived the whole episode\n{}", dev.log_tail());

    dev.unmount();
    drop(tmpfs);
}
