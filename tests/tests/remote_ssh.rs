//! SSH push-pull remotes against a real OpenSSH `sshd` on loopback: a "handheld" whose
//! saves are a plain directory served over SFTP (generated host and user keys), synced by
//! the server with nothing installed on the device. Runs are started directly
//! (`remotes::sync_now`, `remotes sync` on the real CLI) except in the mount scenario,
//! where the server's own scheduler runs the remote every second.
//!
//! Device files get explicit mtimes in the past, each write a different one: the remote
//! re-reads a file changed within the last two seconds anyway (SFTP mtimes are whole
//! seconds), and these tests assert on exactly which bytes each run reads.

use savesync_core::wire::VersionKind;
use savesync_core::{Rev, SavePath};
use savesync_server::remotes::{self, AddRemote, Counters, RemoteError, RunReport};
use savesync_tests::{
    Device, LoopbackSshd, RemoteView, TestServer, require_fuse, require_tools, server_bin,
    sshd_path, wait_for_bytes, wait_until,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

const USER: &str = "gamer";
const REMOTE: &str = "handheld";
const DEADLINE: Duration = Duration::from_secs(30);
/// Big enough that a transfer over loopback is still under way when sshd is killed.
const BIG: usize = 128 * 1024 * 1024;

/// A server, an observer, and a handheld (sshd serving a save directory).
struct Handheld {
    sshd: LoopbackSshd,
    saves: TempDir,
    view: RemoteView,
    server: TestServer,
    runtime: tokio::runtime::Runtime,
}

/// Seconds for the next device write's mtime: in the past, and never the same twice.
static NEXT_MTIME: AtomicI64 = AtomicI64::new(0);

fn past_mtime() -> SystemTime {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let _ = NEXT_MTIME.compare_exchange(0, now - 100_000, Ordering::SeqCst, Ordering::SeqCst);
    let secs = NEXT_MTIME.fetch_add(1, Ordering::SeqCst);
    UNIX_EPOCH + Duration::from_secs(secs as u64)
}

impl Handheld {
    /// `None` (after a visible skip) when sshd or ssh-keygen is missing outside CI. The
    /// server's scheduler looks at remotes every `check`.
    fn start(test: &str, check: Duration) -> Option<Handheld> {
        let sshd = sshd_path();
        if !require_tools(test, &["ssh-keygen", &sshd]) {
            return None;
        }
        let server = TestServer::start_with_config(move |c| c.remote_check_interval = check);
        let view = RemoteView::new(&server, USER);
        let saves = tempfile::Builder::new().prefix("handheld-saves-").tempdir().unwrap();
        let sshd = LoopbackSshd::start(&sshd, None);
        let runtime = savesync_tests::runtime();
        Some(Handheld { sshd, saves, view, server, runtime })
    }

    /// A handheld whose remote only syncs when a test says so.
    fn manual(test: &str) -> Option<Handheld> {
        let handheld = Handheld::start(test, Duration::from_secs(3600))?;
        handheld.add(3600);
        Some(handheld)
    }

    fn add(&self, every_secs: u64) -> String {
        let request = AddRemote {
            name: REMOTE.to_owned(),
            user: USER.to_owned(),
            ssh: self.sshd.target(),
            key_path: self.sshd.user_key().display().to_string(),
            maps: vec![format!("{}=handheld", self.saves.path().display())],
            every_secs,
        };
        let added = self.runtime.block_on(remotes::add(self.server.app(), &request)).unwrap();
        assert_eq!(added.host_key, self.sshd.host_key_fingerprint(), "the pinned key is sshd's");
        added.host_key
    }

    fn try_sync(&self) -> Result<RunReport, RemoteError> {
        self.runtime.block_on(remotes::sync_now(self.server.app(), REMOTE, &Counters::default()))
    }

    fn sync(&self) -> RunReport {
        self.try_sync().unwrap_or_else(|e| panic!("sync failed: {e}"))
    }

    fn device(&self, rel: &str) -> PathBuf {
        self.saves.path().join(rel)
    }

    /// Write a file on the handheld (as its emulator would), with a fresh past mtime.
    fn write_on_device(&self, rel: &str, bytes: &[u8]) {
        let path = self.device(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(past_mtime())
            .unwrap();
    }

    fn read_on_device(&self, rel: &str) -> Option<Vec<u8>> {
        std::fs::read(self.device(rel)).ok()
    }

    /// Commit `bytes` to the library as another device would.
    fn upload(&self, path: &str, bytes: &[u8]) {
        let base = self.view.head(path).map_or(Rev::NONE, |h| h.rev);
        let save = SavePath::parse(path).unwrap();
        self.view
            .block_on(self.view.client().upload(&save, base, bytes.to_vec().into()))
            .unwrap_or_else(|e| panic!("upload {path}: {e}"));
    }

    fn delete_on_server(&self, path: &str) {
        let head = self.view.head(path).expect("a head to delete");
        let save = SavePath::parse(path).unwrap();
        self.view.block_on(self.view.client().delete(&save, head.rev)).unwrap();
    }

    fn status(&self) -> remotes::RemoteStatus {
        let all = self.runtime.block_on(remotes::status(self.server.app(), None)).unwrap();
        all.into_iter().find(|r| r.name == REMOTE).expect("the remote is listed")
    }

    /// Names in a device directory, sorted.
    fn names(&self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.device(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

#[test]
fn first_sync_carries_saves_both_ways_and_later_runs_transfer_nothing() {
    let Some(h) = Handheld::manual("remote first sync") else { return };
    h.write_on_device("gba/Golden Sun.sav", b"golden sun sram from the handheld");
    h.upload("handheld/snes/Chrono Trigger.srm", b"chrono trigger from the desktop");

    let first = h.sync();
    assert_eq!((first.uploaded, first.downloaded, first.conflicts), (1, 1, 0), "{first:?}");
    assert!(h.view.has("handheld/gba/Golden Sun.sav", b"golden sun sram from the handheld"));
    assert_eq!(
        h.read_on_device("snes/Chrono Trigger.srm").as_deref(),
        Some(&b"chrono trigger from the desktop"[..])
    );
    let history = h.view.history("handheld/gba/Golden Sun.sav");
    assert_eq!(history.versions[0].device.as_deref(), Some(REMOTE), "history names the remote");

    for run in 2..=3 {
        let again = h.sync();
        assert!(again.transferred_nothing(), "run {run} moved something: {again:?}");
        assert_eq!(
            (again.bytes_read, again.bytes_written, again.files_read),
            (0, 0, 0),
            "{again:?}"
        );
        assert_eq!(again.files_seen, 2);
    }
    assert!(h.status().last_ok.is_some() && h.status().last_error.is_none());
}

#[test]
fn a_change_on_either_side_reaches_the_other() {
    let Some(h) = Handheld::manual("remote changes") else { return };
    h.write_on_device("gba/Golden Sun.sav", b"v1");
    h.sync();

    h.write_on_device("gba/Golden Sun.sav", b"v2 written by the handheld");
    let report = h.sync();
    assert_eq!((report.uploaded, report.files_read), (1, 1), "{report:?}");
    assert!(h.view.has("handheld/gba/Golden Sun.sav", b"v2 written by the handheld"));

    h.upload("handheld/gba/Golden Sun.sav", b"v3 from the desktop");
    let report = h.sync();
    assert_eq!((report.downloaded, report.bytes_read), (1, 0), "{report:?}");
    assert_eq!(
        h.read_on_device("gba/Golden Sun.sav").as_deref(),
        Some(&b"v3 from the desktop"[..])
    );
    assert_eq!(h.names("gba"), ["Golden Sun.sav"], "no temp file is left");
    assert!(h.sync().transferred_nothing());
}

#[test]
fn a_conflict_keeps_the_device_bytes_and_deleting_the_copy_keeps_the_device_version() {
    let Some(h) = Handheld::manual("remote conflict, copy deleted") else { return };
    h.write_on_device("gba/Golden Sun.sav", b"base");
    h.sync();
    h.write_on_device("gba/Golden Sun.sav", b"handheld progress");
    h.upload("handheld/gba/Golden Sun.sav", b"desktop progress");

    let report = h.sync();
    assert_eq!(report.conflicts, 1, "{report:?}");
    assert_eq!(h.read_on_device("gba/Golden Sun.sav").as_deref(), Some(&b"handheld progress"[..]));
    assert_eq!(
        h.read_on_device("gba/Golden Sun.sav.conflict").as_deref(),
        Some(&b"desktop progress"[..])
    );
    assert!(h.view.has("handheld/gba/Golden Sun.sav", b"desktop progress"), "head untouched");
    let history = h.view.history("handheld/gba/Golden Sun.sav");
    assert!(
        history.versions.iter().any(|v| v.kind == VersionKind::Conflict
            && v.hash == Some(savesync_core::ContentHash::of(b"handheld progress"))),
        "the device version is kept as a conflict version: {history:?}"
    );
    let waiting = h.sync();
    assert_eq!((waiting.open_conflicts, waiting.uploaded), (1, 0), "{waiting:?}");

    std::fs::remove_file(h.device("gba/Golden Sun.sav.conflict")).unwrap();
    let resolved = h.sync();
    assert_eq!(resolved.uploaded, 1, "{resolved:?}");
    assert!(h.view.has("handheld/gba/Golden Sun.sav", b"handheld progress"));
    assert!(h.sync().transferred_nothing());
}

#[test]
fn renaming_the_conflict_copy_over_the_save_takes_the_server_version() {
    let Some(h) = Handheld::manual("remote conflict, copy renamed") else { return };
    h.write_on_device("gba/Golden Sun.sav", b"base");
    h.sync();
    h.write_on_device("gba/Golden Sun.sav", b"handheld progress");
    h.upload("handheld/gba/Golden Sun.sav", b"desktop progress");
    assert_eq!(h.sync().conflicts, 1);

    std::fs::rename(h.device("gba/Golden Sun.sav.conflict"), h.device("gba/Golden Sun.sav"))
        .unwrap();
    let resolved = h.sync();
    assert_eq!((resolved.uploaded, resolved.conflicts, resolved.open_conflicts), (0, 0, 0));
    assert!(h.view.has("handheld/gba/Golden Sun.sav", b"desktop progress"));
    assert_eq!(h.names("gba"), ["Golden Sun.sav"]);
    // The renamed copy carries the fresh commit time as its mtime, so the next run may read
    // it once more (see `stat_is_stable`); it must not move anything.
    let after = h.sync();
    assert_eq!(
        (after.uploaded, after.downloaded, after.conflicts, after.open_conflicts),
        (0, 0, 0, 0)
    );
}

#[test]
fn deletes_reach_the_other_side_and_a_change_beats_a_delete() {
    let Some(h) = Handheld::manual("remote deletes") else { return };
    h.write_on_device("a.sav", b"a");
    h.write_on_device("b.sav", b"b");
    h.write_on_device("c.sav", b"c");
    h.write_on_device("d.sav", b"d");
    assert_eq!(h.sync().uploaded, 4);

    std::fs::remove_file(h.device("a.sav")).unwrap(); // deleted on the handheld
    h.delete_on_server("handheld/b.sav"); // deleted elsewhere
    std::fs::remove_file(h.device("c.sav")).unwrap(); // deleted here, changed there
    h.upload("handheld/c.sav", b"c changed on the desktop");
    h.write_on_device("d.sav", b"d changed on the handheld"); // changed here, deleted there
    h.delete_on_server("handheld/d.sav");

    let report = h.sync();
    assert_eq!((report.deleted_on_server, report.deleted_on_device), (1, 1), "{report:?}");
    assert!(h.view.head("handheld/a.sav").unwrap().deleted, "a tombstone for a.sav");
    assert_eq!(h.read_on_device("b.sav"), None);
    assert_eq!(h.read_on_device("c.sav").as_deref(), Some(&b"c changed on the desktop"[..]));
    assert!(h.view.has("handheld/d.sav", b"d changed on the handheld"));
    assert_eq!(h.names(""), ["c.sav", "d.sav"]);
    assert!(h.sync().transferred_nothing());
}

fn cli(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(server_bin())
        .arg("remotes")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run savesync-server remotes")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_changed_host_key_is_refused_until_trusted_through_the_cli() {
    let Some(mut h) = Handheld::start("remote host keys", Duration::from_secs(3600)) else {
        return;
    };
    let data = h.server.data_dir().to_path_buf();
    let key = h.sshd.user_key().display().to_string();
    let map = format!("{}=handheld", h.saves.path().display());
    let added = cli(
        &data,
        &[
            "add",
            REMOTE,
            "--user",
            USER,
            "--ssh",
            &h.sshd.target(),
            "--key",
            &key,
            "--map",
            &map,
            "--every",
            "1h",
        ],
    );
    let pinned = h.sshd.host_key_fingerprint();
    assert!(added.status.success(), "{}", text(&added));
    assert!(text(&added).contains(&pinned), "add prints the fingerprint: {}", text(&added));
    assert!(!text(&added).contains("PRIVATE KEY"), "the key never appears");

    h.sshd.replace_host_key();
    let offered = h.sshd.host_key_fingerprint();
    h.write_on_device("gba/Golden Sun.sav", b"must not leave before the key is trusted");
    let refused = cli(&data, &["sync", REMOTE]);
    assert!(!refused.status.success());
    let message = text(&refused);
    assert!(
        message.contains("host key") && message.contains(&pinned) && message.contains(&offered),
        "a clear error naming both keys: {message}"
    );
    assert!(h.view.head("handheld/gba/Golden Sun.sav").is_none(), "nothing synced");
    let listed = text(&cli(&data, &["list"]));
    assert!(listed.contains(&offered) && listed.contains("remotes trust"), "{listed}");
    assert!(h.status().last_error.unwrap().contains("host key"));

    let trusted = cli(&data, &["trust", REMOTE]);
    assert!(trusted.status.success(), "{}", text(&trusted));
    let shown = text(&trusted);
    assert!(shown.contains(&format!("old host key: {pinned}")), "{shown}");
    assert!(shown.contains(&format!("new host key: {offered}")), "{shown}");

    let synced = cli(&data, &["sync", REMOTE, "--json"]);
    assert!(synced.status.success(), "{}", text(&synced));
    let report: serde_json::Value = serde_json::from_slice(&synced.stdout).unwrap();
    assert_eq!(report["uploaded"], 1, "{report}");
    assert!(h.view.has("handheld/gba/Golden Sun.sav", b"must not leave before the key is trusted"));
    let listed = text(&cli(&data, &["list"]));
    assert!(!listed.contains("OFFERED") && listed.contains(&offered), "{listed}");
    assert!(cli(&data, &["remove", REMOTE]).status.success());
    assert!(text(&cli(&data, &["list"])).trim().is_empty());
}

/// Runs a sync on its own thread; kills sshd once `moved` says bytes are flowing.
fn sync_and_vanish(h: &mut Handheld, moved: impl Fn(&Counters) -> u64) -> RemoteError {
    let counters = Arc::new(Counters::default());
    let app = h.server.app().clone();
    let running = {
        let counters = Arc::clone(&counters);
        std::thread::spawn(move || {
            savesync_tests::runtime().block_on(remotes::sync_now(&app, REMOTE, &counters))
        })
    };
    wait_until(DEADLINE, "the transfer to start", || (moved(&counters) > 0).then_some(()));
    h.sshd.stop();
    let outcome = running.join().unwrap();
    let total = moved(&counters);
    match outcome {
        Ok(report) => panic!("the run finished before sshd was killed ({total} bytes): {report:?}"),
        Err(e) => {
            assert!((total as usize) < BIG, "the kill landed mid-transfer ({total} bytes)");
            e
        }
    }
}

#[test]
fn a_device_that_vanishes_mid_download_keeps_no_partial_file() {
    let Some(mut h) = Handheld::manual("remote vanishes mid-download") else { return };
    h.write_on_device("states/slot1.state", b"the old state");
    h.sync();
    let big = savesync_tests::save_bytes(7, BIG);
    h.upload("handheld/states/slot1.state", &big);

    let error = sync_and_vanish(&mut h, Counters::bytes_written);
    assert!(matches!(error, RemoteError::Unreachable(_)), "{error}");
    let kept = h.read_on_device("states/slot1.state").unwrap_or_default();
    assert!(
        kept == b"the old state",
        "the device still has its old, whole file (it has {} bytes)",
        kept.len()
    );
    assert!(h.status().last_error.is_some(), "the failure is the remote's status");

    h.sshd.restart();
    let report = h.sync();
    assert_eq!((report.downloaded, report.leftovers_removed), (1, 1), "{report:?}");
    assert!(h.read_on_device("states/slot1.state").unwrap() == big);
    assert_eq!(h.names("states"), ["slot1.state"], "the temp file is gone");
    assert!(h.status().last_error.is_none());
}

#[test]
fn a_device_that_vanishes_mid_upload_commits_nothing() {
    let Some(mut h) = Handheld::manual("remote vanishes mid-upload") else { return };
    let big = savesync_tests::save_bytes(9, BIG);
    h.write_on_device("states/slot2.state", &big);

    let error = sync_and_vanish(&mut h, Counters::bytes_read);
    assert!(matches!(error, RemoteError::Unreachable(_)), "{error}");
    assert!(h.view.head("handheld/states/slot2.state").is_none(), "no partial commit");
    let staging = h.server.data_dir().join("blobs").join("staging");
    let staged: Vec<_> =
        std::fs::read_dir(&staging).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(staged.is_empty(), "no partial blob is left in staging: {staged:?}");

    h.sshd.restart();
    let report = h.sync();
    assert_eq!(report.uploaded, 1, "{report:?}");
    assert!(h.view.has("handheld/states/slot2.state", &big));
}

#[test]
fn the_api_syncs_a_remote_for_its_owner_only() {
    let Some(h) = Handheld::manual("remote API") else { return };
    h.write_on_device("gba/Golden Sun.sav", b"over the API");
    let token = |user: &str| {
        let code = h.server.pairing_code(user);
        let client = savesync_client::Client::new(&h.server.url(), None).unwrap();
        h.runtime.block_on(client.pair(&code, "phone", "test")).unwrap().token
    };
    let post = |token: &str| {
        h.runtime.block_on(async {
            reqwest::Client::new()
                .post(format!("{}/api/v1/remotes/{REMOTE}/sync", h.server.url()))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        })
    };
    let stranger = post(&token("someone-else"));
    assert_eq!(stranger.status(), 404, "another user's remote does not exist for them");
    assert!(h.view.head("handheld/gba/Golden Sun.sav").is_none());
    assert_eq!(post("not-a-token").status(), 401);

    let owner = token(USER);
    let answer = post(&owner);
    assert_eq!(answer.status(), 200);
    let report: serde_json::Value = h.runtime.block_on(answer.json()).unwrap();
    assert_eq!(report["uploaded"], 1, "{report}");
    assert!(h.view.has("handheld/gba/Golden Sun.sav", b"over the API"));
    let listed: serde_json::Value = h.runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{}/api/v1/remotes", h.server.url()))
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(listed["remotes"][0]["name"], REMOTE, "{listed}");
    assert!(listed["remotes"][0]["last_ok"].is_string(), "{listed}");
}

/// The "Done when" scenario: a handheld that runs only sshd and a FUSE mount of the same
/// user, synced by the server's scheduler every second, both ways, conflicts included.
#[test]
fn an_ssh_handheld_and_a_mount_sync_both_ways_with_conflicts() {
    if !require_fuse() {
        return;
    }
    let Some(mut h) = Handheld::start("remote with a mount", Duration::from_millis(100)) else {
        return;
    };
    let mut desktop = Device::pair(&h.server, USER, "desktop");
    desktop.mount();
    h.add(1);

    h.write_on_device("gba/Golden Sun.sav", b"handheld v1");
    wait_for_bytes(&desktop.path("handheld/gba/Golden Sun.sav"), b"handheld v1", DEADLINE);

    std::fs::create_dir_all(desktop.path("handheld/snes")).unwrap();
    std::fs::write(desktop.path("handheld/snes/Zelda.srm"), b"desktop zelda").unwrap();
    wait_until(DEADLINE, "the mount's save on the handheld", || {
        (h.read_on_device("snes/Zelda.srm").as_deref() == Some(&b"desktop zelda"[..])).then_some(())
    });

    // Several intervals pass with nothing to do: each run succeeds and moves nothing.
    let mut seen = std::collections::BTreeSet::new();
    wait_until(DEADLINE, "three scheduled runs", || {
        seen.insert(h.status().last_ok?);
        (seen.len() >= 3).then_some(())
    });

    // The handheld falls asleep; both sides change meanwhile.
    h.sshd.stop();
    wait_until(DEADLINE, "the unreachable handheld in the status", || {
        h.status().last_error.filter(|e| e.contains("unreachable")).map(drop)
    });
    std::fs::write(desktop.path("handheld/gba/Golden Sun.sav"), b"desktop v2").unwrap();
    wait_until(DEADLINE, "the desktop's v2 on the server", || {
        h.view.has("handheld/gba/Golden Sun.sav", b"desktop v2").then_some(())
    });
    h.write_on_device("gba/Golden Sun.sav", b"handheld v2");
    h.sshd.restart();

    wait_until(DEADLINE, "the conflict copy on the handheld", || {
        (h.read_on_device("gba/Golden Sun.sav.conflict").as_deref() == Some(&b"desktop v2"[..]))
            .then_some(())
    });
    assert_eq!(h.read_on_device("gba/Golden Sun.sav").as_deref(), Some(&b"handheld v2"[..]));
    assert!(h.view.history_has("handheld/gba/Golden Sun.sav", b"handheld v2"));
    // The run that wrote the copy records its outcome when it ends, after the files are
    // written: wait for that, rather than read the status while the run is still going.
    wait_until(DEADLINE, "a run without error since the handheld came back", || {
        h.status().last_error.is_none().then_some(())
    });

    // Keep the handheld's version: delete the copy; the mount gets it.
    std::fs::remove_file(h.device("gba/Golden Sun.sav.conflict")).unwrap();
    wait_for_bytes(&desktop.path("handheld/gba/Golden Sun.sav"), b"handheld v2", DEADLINE);

    // A delete on the mount reaches the handheld.
    std::fs::remove_file(desktop.path("handheld/snes/Zelda.srm")).unwrap();
    wait_until(DEADLINE, "the delete on the handheld", || {
        h.read_on_device("snes/Zelda.srm").is_none().then_some(())
    });
    desktop.unmount();
}
