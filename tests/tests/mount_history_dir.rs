//! The read-only `.history/` directory at the root of a real mount, against a real server:
//! a save's versions listed as files (names, sizes, mtimes), an old version read back and
//! `cp`-ed over the live save (a restore the other device and the server see), hidden from
//! the root's listing unless `--show-history`, every write inside it refused, nothing of it
//! ever reaching the server, no history call made by a mount that never opens it, and a
//! clear, bounded failure while the server is down.

use savesync_core::wire::VersionKind;
use savesync_core::{ContentHash, Rev, SavePath};
use savesync_tests::{
    Device, DevicePair, RemoteView, TestServer, dir_names, require_fuse, save_bytes,
    wait_for_bytes, wait_until,
};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

const USER: &str = "hist-dir";
const SAVE: &str = "snes/Chrono Trigger.srm";
const DEADLINE: Duration = Duration::from_secs(15);

/// History requests the server has answered (any device, any status), from `/metrics`.
fn history_requests(view: &RemoteView) -> u64 {
    let text = view.block_on(view.client().metrics()).expect("server metrics");
    text.lines()
        .filter(|l| l.starts_with("savesync_http_requests_total{route=\"/api/v1/saves/history\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Every path below `dir`, walked like rsync or an emulator's scan would.
fn walk(dir: &Path, out: &mut BTreeSet<String>, root: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        out.insert(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        if entry.file_type().unwrap().is_dir() {
            walk(&path, out, root);
        }
    }
}

/// The file name `.history` gives a commit: its UTC time with dashes, device, `r<rev>`, ext.
fn commit_file(created_at: &str, device: &str, rev: u64) -> String {
    let t = time::OffsetDateTime::parse(created_at, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}-{:02}-{:02} {device} r{rev}.srm",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn unix_time(created_at: &str) -> SystemTime {
    let t = time::OffsetDateTime::parse(created_at, &time::format_description::well_known::Rfc3339)
        .unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_secs(t.unix_timestamp() as u64)
}

fn errno<T: std::fmt::Debug>(r: std::io::Result<T>, what: &str) -> i32 {
    match r {
        Ok(v) => panic!("{what} should fail, got {v:?}"),
        Err(e) => e.raw_os_error().unwrap_or_else(|| panic!("{what}: {e} has no errno")),
    }
}

#[test]
fn versions_are_listed_read_and_copied_back_and_history_stays_out_of_sync() {
    let Some(DevicePair { a, b, view, server: _server }) =
        DevicePair::start_named(USER, "deck", "desktop")
    else {
        return;
    };
    std::fs::create_dir_all(a.path("snes")).unwrap();
    std::fs::create_dir_all(a.path("gba")).unwrap();
    let versions = [save_bytes(1, 4096), save_bytes(2, 5000), save_bytes(3, 6000)];
    for v in &versions {
        std::fs::write(a.path(SAVE), v).unwrap();
        wait_until(DEADLINE, "the version reaches the server", || view.has(SAVE, v).then_some(()));
    }
    let other = save_bytes(4, 100);
    std::fs::write(a.path("gba/Zelda.sav"), &other).unwrap();
    wait_until(DEADLINE, "gba save on the server", || {
        view.has("gba/Zelda.sav", &other).then_some(())
    });
    wait_for_bytes(&b.path(SAVE), &versions[2], DEADLINE);
    wait_for_bytes(&b.path("gba/Zelda.sav"), &other, DEADLINE);

    // Hidden from the root's listing: a walk of either mount (rsync, an emulator's scan)
    // sees the library only, and no history request was made by anyone.
    for dev in [&a, &b] {
        assert!(!dir_names(dev.mountpoint()).unwrap().contains(".history"));
        let mut seen = BTreeSet::new();
        walk(dev.mountpoint(), &mut seen, dev.mountpoint());
        let want: BTreeSet<String> =
            ["gba", "gba/Zelda.sav", "snes", SAVE].into_iter().map(str::to_owned).collect();
        assert_eq!(seen, want, "{}: a walk sees only the library", dev.name());
    }
    assert_eq!(history_requests(&view), 0, "mounts that never open .history ask nothing");

    // Reachable by name; library directories list without asking the server.
    let hist = a.path(".history");
    assert!(std::fs::metadata(&hist).unwrap().is_dir());
    assert_eq!(dir_names(&hist).unwrap(), ["gba", "snes"].map(str::to_owned).into());
    assert_eq!(dir_names(&hist.join("snes")).unwrap(), [SAVE[5..].to_owned()].into());
    assert!(std::fs::metadata(hist.join(SAVE)).unwrap().is_dir(), "a save is a directory");
    assert_eq!(history_requests(&view), 0, "listing library directories is free");

    // The save's directory: one file per version, named, sized and dated as the server says.
    let save_dir = hist.join(SAVE);
    let listed = dir_names(&save_dir).unwrap();
    assert_eq!(history_requests(&view), 1, "listing a save's versions asks the server once");
    let server_history = view.history(SAVE).versions;
    assert_eq!(server_history.len(), 3);
    let expected: BTreeSet<String> =
        server_history.iter().map(|v| commit_file(&v.created_at, "deck", v.rev.0)).collect();
    assert_eq!(listed, expected);
    for (v, bytes) in server_history.iter().rev().zip(&versions) {
        let meta =
            std::fs::metadata(save_dir.join(commit_file(&v.created_at, "deck", v.rev.0))).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.len(), bytes.len() as u64, "size of r{}", v.rev);
        assert_eq!(meta.modified().unwrap(), unix_time(&v.created_at), "mtime of r{}", v.rev);
        assert!(meta.permissions().readonly(), "r{} is read-only", v.rev);
    }

    // Reading an old version gives its bytes; the live save is untouched.
    let oldest = server_history.last().unwrap();
    let oldest_file = save_dir.join(commit_file(&oldest.created_at, "deck", oldest.rev.0));
    assert!(std::fs::read(&oldest_file).unwrap() == versions[0], "r1's bytes exactly");
    assert!(std::fs::read(a.path(SAVE)).unwrap() == versions[2]);

    // Writes inside `.history` are refused with EROFS; the name is taken at the root.
    let erofs =
        |r: std::io::Result<()>, what: &str| assert_eq!(errno(r, what), libc::EROFS, "{what}");
    erofs(std::fs::write(save_dir.join("new.srm"), b"x"), "create in a save's directory");
    erofs(std::fs::write(hist.join("snes/new.srm"), b"x"), "create in a library directory");
    erofs(
        std::fs::OpenOptions::new().write(true).open(&oldest_file).map(drop),
        "open a version for writing",
    );
    erofs(std::fs::remove_file(&oldest_file), "unlink a version");
    erofs(std::fs::rename(&oldest_file, save_dir.join("renamed.srm")), "rename a version");
    erofs(std::fs::rename(&oldest_file, a.path("snes/moved.srm")), "move a version out");
    erofs(std::fs::rename(a.path("gba/Zelda.sav"), hist.join("gba/x.sav")), "move a save in");
    erofs(std::fs::create_dir(hist.join("snes/new")), "mkdir inside");
    erofs(std::fs::remove_dir(hist.join("gba")), "rmdir inside");
    erofs(
        std::fs::set_permissions(&oldest_file, std::os::unix::fs::PermissionsExt::from_mode(0o644)),
        "chmod a version",
    );
    erofs(std::fs::remove_dir(&hist), "rmdir .history");
    assert_eq!(errno(std::fs::create_dir(&hist), "mkdir .history"), libc::EEXIST);
    assert_eq!(errno(std::fs::rename(a.path("gba"), &hist), "rename onto .history"), libc::EEXIST);
    assert!(std::fs::read(&oldest_file).unwrap() == versions[0], "still there, unchanged");

    // The file-manager restore: copy the old version over the live save.
    let status = std::process::Command::new("cp").arg(&oldest_file).arg(a.path(SAVE)).status();
    assert!(status.unwrap().success(), "cp an old version over the live save");
    wait_until(DEADLINE, "the restored bytes are the head", || {
        view.has(SAVE, &versions[0]).then_some(())
    });
    wait_for_bytes(&b.path(SAVE), &versions[0], DEADLINE);
    // The restore is a new commit on top. (`cp` truncates by path before it opens, so
    // with the harness's 20 ms debounce an empty version may be committed in between.)
    let after = view.history(SAVE).versions;
    assert!(after.len() >= 4, "{after:?}");
    assert_eq!(after[0].hash, Some(ContentHash::of(&versions[0])), "the head is r1's bytes");
    // The listing catches up once its short cache expires.
    let want = after.iter().filter(|v| v.hash.is_some()).count();
    wait_until(DEADLINE, "the restore listed in .history", || {
        (dir_names(&save_dir).ok()?.len() == want).then_some(())
    });

    // A conflict version (a stale-base upload) is listed by its history id.
    let stale = save_bytes(5, 777);
    let path = SavePath::parse(SAVE).unwrap();
    let refused = view.block_on(view.client().upload(&path, Rev(1), stale.clone().into()));
    assert!(refused.is_err_and(|e| e.is_conflict()));
    let conflict =
        view.history(SAVE).versions.into_iter().find(|v| v.kind == VersionKind::Conflict);
    let conflict = conflict.expect("a conflict version on the server");
    let suffix = format!(" e2e-observer c{}.srm", conflict.version_id);
    let name = wait_until(DEADLINE, "the conflict version in .history", || {
        dir_names(&save_dir).ok()?.into_iter().find(|n| n.ends_with(&suffix))
    });
    assert_eq!(std::fs::metadata(save_dir.join(&name)).unwrap().len(), 777);
    assert!(std::fs::read(save_dir.join(&name)).unwrap() == stale, "its own bytes, not r1's");

    // Nothing under `.history` ever reached the server or the queue.
    let saves: Vec<String> = view.saves().keys().cloned().collect();
    assert_eq!(saves, ["gba/Zelda.sav", SAVE], "only the library's saves are on the server");
    assert!(view.head(".history").is_none());
    let status = a.status_json();
    assert_eq!(status["pending"], 0, "nothing queued: {status}");
}

#[test]
fn shown_with_the_flag_fails_fast_offline_and_wins_over_a_save_named_like_it() {
    if !require_fuse() {
        return;
    }
    let mut server = TestServer::start_blocking();
    let view = RemoteView::new(&server, USER);
    let mut a = Device::pair(&server, USER, "deck");
    a.mount_with_args(&["--show-history"]);
    std::fs::create_dir_all(a.path("snes")).unwrap();
    let (one, two) = (save_bytes(11, 300), save_bytes(12, 400));
    std::fs::write(a.path("snes/A.srm"), &one).unwrap();
    std::fs::write(a.path("snes/B.srm"), &two).unwrap();
    for (p, v) in [("snes/A.srm", &one), ("snes/B.srm", &two)] {
        wait_until(DEADLINE, "saves on the server", || view.has(p, v).then_some(()));
    }
    assert!(dir_names(a.mountpoint()).unwrap().contains(".history"), "listed with the flag");
    assert_eq!(dir_names(&a.path(".history/snes/A.srm")).unwrap().len(), 1);

    // Another device's save under `.history/` stays on the server; this mount's virtual
    // directory wins and never shows it.
    let evil = SavePath::parse(".history/evil.srm").unwrap();
    view.block_on(view.client().upload(&evil, Rev::NONE, b"not a version".to_vec().into()))
        .expect("the server takes any valid save path");
    let marker = save_bytes(13, 50);
    view.block_on(view.client().upload(
        &SavePath::parse("marker.sav").unwrap(),
        Rev::NONE,
        marker.clone().into(),
    ))
    .unwrap();
    wait_for_bytes(&a.path("marker.sav"), &marker, DEADLINE);
    assert_eq!(
        errno(std::fs::metadata(a.path(".history/evil.srm")), "the other device's .history save"),
        libc::ENOENT
    );
    let want: BTreeSet<String> = ["marker.sav", "snes"].map(str::to_owned).into();
    assert_eq!(dir_names(&a.path(".history")).unwrap(), want, "no evil.srm, no .history");
    let names = dir_names(a.mountpoint()).unwrap();
    assert_eq!(names.iter().filter(|n| *n == ".history").count(), 1, "{names:?}");
    assert!(view.has(".history/evil.srm", b"not a version"), "the server keeps it");

    // Offline: the library directories still list (no network), a save's versions fail
    // with ENETUNREACH quickly, and the outage is logged once.
    server.stop_blocking();
    assert_eq!(dir_names(&a.path(".history/snes")).unwrap().len(), 2);
    for _ in 0..2 {
        let started = Instant::now();
        let err = std::fs::read_dir(a.path(".history/snes/B.srm")).map(drop);
        assert_eq!(errno(err, "listing versions offline"), libc::ENETUNREACH);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(12), "bounded: {took:?}");
        eprintln!("listing versions with the server down failed in {took:?}");
    }
    let log = std::fs::read_to_string(a.log_path()).unwrap();
    assert_eq!(log.matches(".history: the server is unreachable").count(), 1, "logged once");

    server.restart_blocking();
    wait_until(DEADLINE, "versions list again once the server is back", || {
        (dir_names(&a.path(".history/snes/B.srm")).ok()?.len() == 1).then_some(())
    });
    a.unmount();
}
