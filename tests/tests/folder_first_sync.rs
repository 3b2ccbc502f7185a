//! A large, already-populated emulator save folder synced for the first time: 2,000
//! files, of which some equal the server's copies, some differ, some the server lacks,
//! and the server has more the folder lacks. `--dry-run` prints the plan with the right
//! counts and changes nothing; the real first sync uploads what the server lacks,
//! downloads what the folder lacks, and turns every difference into a conflict (the
//! folder's file kept, the server's head kept, the other version beside it as
//! `NAME.conflict`): nothing is overwritten. Prints how long the first sync took.

use bytes::Bytes;
use savesync_core::{ContentHash, Rev, SavePath};
use savesync_tests::{FolderDevice, RemoteView, TestServer, poll_until, save_bytes};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const USER: &str = "lib";
const SAME: usize = 700;
const DIFFERENT: usize = 500;
const LOCAL_ONLY: usize = 800;
const SERVER_ONLY: usize = 400;
const DEADLINE: Duration = Duration::from_secs(300);

fn rel(kind: &str, i: usize) -> String {
    format!("{kind}/game-{i:04}.srm")
}

/// Upload many saves at once through the observer client.
fn seed_server(view: &RemoteView, saves: &[(String, Vec<u8>)]) {
    view.block_on(async {
        let uploads = saves.iter().map(|(p, b)| {
            let path = SavePath::parse(p).unwrap();
            let bytes = Bytes::from(b.clone());
            async move { view.client().upload(&path, Rev::NONE, bytes).await }
        });
        let mut stream = futures::stream::iter(uploads).buffer_unordered(16);
        use futures::StreamExt;
        while let Some(r) = stream.next().await {
            r.expect("seed an upload");
        }
    });
}

fn count(text: &str, label: &str) -> usize {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(label).map(str::trim))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count for {label:?} in:\n{text}"))
}

#[test]
fn a_populated_folder_first_sync_uploads_downloads_and_makes_conflicts_never_overwrites() {
    let server = TestServer::start_blocking();
    let view = RemoteView::new(&server, USER);
    let mut b = FolderDevice::pair(&server, USER, "old-handheld");
    let mut server_side = Vec::new();
    let mut local_side = Vec::new();
    for i in 0..SAME {
        let bytes = save_bytes(i as u64, 1024);
        server_side.push((rel("same", i), bytes.clone()));
        local_side.push((rel("same", i), bytes));
    }
    for i in 0..DIFFERENT {
        server_side.push((rel("differ", i), save_bytes(10_000 + i as u64, 1024)));
        local_side.push((rel("differ", i), save_bytes(20_000 + i as u64, 1024)));
    }
    for i in 0..LOCAL_ONLY {
        local_side.push((rel("local", i), save_bytes(30_000 + i as u64, 1024)));
    }
    for i in 0..SERVER_ONLY {
        server_side.push((rel("server", i), save_bytes(40_000 + i as u64, 1024)));
    }
    seed_server(&view, &server_side);
    for (p, bytes) in &local_side {
        let file = b.path(p);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, bytes).unwrap();
    }
    let data_dir = b.device().data_home().join("savesync").join("default");
    let db_before = data_dir.join("state.db").exists();

    // The dry run: the plan, with nothing changed.
    let out = b.run_cli(&["sync", b.folder().to_str().unwrap(), "--dry-run"]);
    assert!(out.status.success(), "--dry-run failed: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(count(&text, "upload"), LOCAL_ONLY, "{text}");
    assert_eq!(count(&text, "download"), SERVER_ONLY, "{text}");
    assert_eq!(count(&text, "conflict"), DIFFERENT, "{text}");
    assert_eq!(count(&text, "same"), SAME, "{text}");
    assert!(text.contains(&format!("conflict          {}\n", rel("differ", 7))), "{text}");
    assert!(text.contains(&format!("download          {}\n", rel("server", 3))), "{text}");
    assert_eq!(data_dir.join("state.db").exists(), db_before, "--dry-run created no state DB");
    assert!(!data_dir.join("daemon.lock").exists(), "--dry-run took no lock");
    assert!(!b.path("server").exists(), "--dry-run downloaded nothing");
    assert!(!b.path(&format!("{}.conflict", rel("differ", 0))).exists());
    assert_eq!(view.saves().len(), SAME + DIFFERENT + SERVER_ONLY, "--dry-run uploaded nothing");

    // The real first sync.
    let start = Instant::now();
    b.start();
    let mut want: BTreeMap<String, ContentHash> =
        server_side.iter().map(|(p, b)| (p.clone(), ContentHash::of(b))).collect();
    for i in 0..LOCAL_ONLY {
        let (p, bytes) = &local_side[SAME + DIFFERENT + i];
        want.insert(p.clone(), ContentHash::of(bytes));
    }
    let copies_done =
        || (0..DIFFERENT).all(|i| b.path(&format!("{}.conflict", rel("differ", i))).exists());
    let downloads_done = || (0..SERVER_ONLY).all(|i| b.path(&rel("server", i)).exists());
    let done = poll_until(DEADLINE, || {
        (downloads_done() && copies_done() && view.try_saves()? == want).then_some(())
    });
    let elapsed = start.elapsed();
    assert!(done.is_some(), "the first sync did not finish within {DEADLINE:?}");
    println!(
        "first sync of a {}-file folder ({} on the server): {elapsed:?}",
        local_side.len(),
        server_side.len()
    );
    // Never overwritten: every local file still has its own bytes.
    for (p, bytes) in &local_side {
        assert_eq!(&std::fs::read(b.path(p)).unwrap(), bytes, "{p} was overwritten");
    }
    // Every difference is a conflict with the server's bytes beside the local file.
    for i in 0..DIFFERENT {
        let copy = std::fs::read(b.path(&format!("{}.conflict", rel("differ", i)))).unwrap();
        assert_eq!(copy, server_side[SAME + i].1, "conflict copy of {}", rel("differ", i));
    }
    for i in 0..SERVER_ONLY {
        let (p, bytes) = &server_side[SAME + DIFFERENT + i];
        assert_eq!(&std::fs::read(b.path(p)).unwrap(), bytes, "{p} downloaded");
    }
    assert_eq!(b.status_json()["conflicts"].as_u64(), Some(DIFFERENT as u64));
    b.stop();
}
