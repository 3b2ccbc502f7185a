//! How real emulators and desktop tools write saves, through one mount, and what the server
//! must end with: exactly the saves, with the final bytes, and never a temp name.

use savesync_fs::state::StateDb;
use savesync_tests::{
    Device, RemoteView, SoloDevice, TestServer, poll_until, require_fuse, save_bytes,
    wait_for_bytes, wait_until,
};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::Duration;

const USER: &str = "bob";
const UPLOAD_DEADLINE: Duration = Duration::from_secs(10);

/// Wait until the server's live saves are exactly `expected` (path -> bytes).
fn wait_for_server_saves(view: &RemoteView, expected: &[(&str, &[u8])]) {
    let want: BTreeMap<String, _> = expected
        .iter()
        .map(|(p, b)| ((*p).to_owned(), savesync_core::ContentHash::of(b)))
        .collect();
    let mut last = None;
    let reached = poll_until(UPLOAD_DEADLINE, || {
        let saves = view.try_saves()?;
        let done = saves == want;
        last = Some(saves);
        done.then_some(())
    });
    if reached.is_none() {
        let describe = |m: &BTreeMap<String, savesync_core::ContentHash>| {
            m.iter().map(|(p, h)| format!("{p}={}", &h.to_hex()[..12])).collect::<Vec<_>>()
        };
        panic!(
            "server saves never became exactly {:?} within {UPLOAD_DEADLINE:?}; last: {:?}",
            describe(&want),
            last.as_ref().map(describe)
        );
    }
}

#[test]
fn retroarch_sram_written_in_place_with_pwrite_and_fsync_is_uploaded_before_close() {
    let Some(t) = SoloDevice::start(USER, "retro-handheld") else { return };
    std::fs::create_dir_all(t.a.path("snes")).unwrap();
    let path = t.a.path("snes/Zelda.srm");
    let mut sram = vec![0u8; 32 * 1024];
    std::fs::write(&path, &sram).unwrap();
    wait_for_server_saves(&t.view, &[("snes/Zelda.srm", &sram)]);

    // RetroArch's SRAM autosave: open without truncating, write changed ranges, fsync.
    let file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let patch_a = save_bytes(30, 64);
    let patch_b = save_bytes(31, 300);
    file.write_all_at(&patch_a, 0x100).unwrap();
    file.write_all_at(&patch_b, 0x7000).unwrap();
    file.sync_all().unwrap();
    sram[0x100..0x100 + 64].copy_from_slice(&patch_a);
    sram[0x7000..0x7000 + 300].copy_from_slice(&patch_b);
    // The handle is still open: fsync alone must be enough to upload.
    wait_for_server_saves(&t.view, &[("snes/Zelda.srm", &sram)]);

    let patch_c = save_bytes(32, 16);
    file.write_all_at(&patch_c, 0x10).unwrap();
    file.sync_all().unwrap();
    drop(file);
    sram[0x10..0x10 + 16].copy_from_slice(&patch_c);
    wait_for_server_saves(&t.view, &[("snes/Zelda.srm", &sram)]);
    assert_eq!(std::fs::read(&path).unwrap(), sram, "the mount reads back the patched SRAM");
}

#[test]
fn save_state_written_to_a_tmp_file_and_renamed_over_uploads_only_the_state() {
    let Some(t) = SoloDevice::start(USER, "retro-handheld") else { return };
    std::fs::create_dir_all(t.a.path("snes")).unwrap();
    let state = t.a.path("snes/Zelda.state");
    let v1 = save_bytes(40, 100_000);
    std::fs::write(&state, &v1).unwrap();
    wait_for_server_saves(&t.view, &[("snes/Zelda.state", &v1)]);

    let v2 = save_bytes(41, 120_000);
    let tmp = t.a.path("snes/Zelda.state.tmp");
    let mut f = std::fs::File::create(&tmp).unwrap();
    f.write_all(&v2).unwrap();
    f.sync_all().unwrap();
    drop(f);
    std::fs::rename(&tmp, &state).unwrap();
    assert!(!tmp.exists(), "the temp name is gone after the rename");
    wait_for_server_saves(&t.view, &[("snes/Zelda.state", &v2)]);
    assert_eq!(std::fs::read(&state).unwrap(), v2);
    assert!(t.view.history_has("snes/Zelda.state", &v1), "the replaced state is in history");
}

#[test]
fn gio_save_through_a_goutputstream_temp_and_rename_over_replaces_the_save() {
    let Some(t) = SoloDevice::start(USER, "retro-handheld") else { return };
    std::fs::create_dir_all(t.a.path("psx/memcards")).unwrap();
    let card = t.a.path("psx/memcards/card1.mcd");
    let v1 = save_bytes(50, 128 * 1024);
    std::fs::write(&card, &v1).unwrap();
    wait_for_server_saves(&t.view, &[("psx/memcards/card1.mcd", &v1)]);

    // GIO (file managers, GNOME apps) writes `.goutputstream-XXXXXX` then renames over.
    let v2 = save_bytes(51, 128 * 1024);
    let tmp = t.a.path("psx/memcards/.goutputstream-7QK2XZ");
    std::fs::write(&tmp, &v2).unwrap();
    std::fs::rename(&tmp, &card).unwrap();
    wait_for_server_saves(&t.view, &[("psx/memcards/card1.mcd", &v2)]);
    assert_eq!(std::fs::read(&card).unwrap(), v2);
}

#[test]
fn truncate_then_write_leaves_exactly_the_new_shorter_bytes() {
    let Some(t) = SoloDevice::start(USER, "retro-handheld") else { return };
    let path = t.a.path("gb.sav");
    std::fs::write(&path, save_bytes(60, 8192)).unwrap();
    wait_for_server_saves(&t.view, &[("gb.sav", &save_bytes(60, 8192))]);

    // O_TRUNC on open, then a shorter write.
    let v2 = save_bytes(61, 100);
    let mut f = OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
    f.write_all(&v2).unwrap();
    drop(f);
    wait_for_server_saves(&t.view, &[("gb.sav", &v2)]);

    // ftruncate(0) on an open handle, then pwrite at 0.
    let v3 = save_bytes(62, 50);
    let f = OpenOptions::new().read(true).write(true).open(&path).unwrap();
    f.set_len(0).unwrap();
    f.write_all_at(&v3, 0).unwrap();
    drop(f);
    wait_for_server_saves(&t.view, &[("gb.sav", &v3)]);
    assert_eq!(std::fs::read(&path).unwrap(), v3);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 50);
}

#[test]
fn o_append_writes_add_to_the_end_of_the_save() {
    let Some(t) = SoloDevice::start(USER, "retro-handheld") else { return };
    let path = t.a.path("journal.log.sav");
    std::fs::write(&path, b"line 1\n").unwrap();
    for line in [&b"line 2\n"[..], b"line 3\n"] {
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(line).unwrap();
    }
    let expected = b"line 1\nline 2\nline 3\n";
    wait_for_server_saves(&t.view, &[("journal.log.sav", expected)]);
    wait_for_bytes(&path, expected, UPLOAD_DEADLINE);
}

#[test]
fn temp_and_desktop_metadata_names_never_reach_the_server() {
    let Some(t) = SoloDevice::start(USER, "retro-handheld") else { return };
    std::fs::create_dir_all(t.a.path("n64")).unwrap();
    for name in ["n64/Mario.eep.tmp", "n64/.DS_Store", "n64/Thumbs.db", "n64/._Mario.eep"] {
        std::fs::write(t.a.path(name), b"local only").unwrap();
    }
    let save = save_bytes(70, 512);
    std::fs::write(t.a.path("n64/Mario.eep"), &save).unwrap();
    // The real save reaching the server shows the uploader ran past the temp files.
    wait_for_server_saves(&t.view, &[("n64/Mario.eep", &save)]);
    for name in ["n64/Mario.eep.tmp", "n64/.DS_Store", "n64/Thumbs.db", "n64/._Mario.eep"] {
        assert_eq!(std::fs::read(t.a.path(name)).unwrap(), b"local only", "{name} stays readable");
    }
}

#[test]
fn rapid_rewrites_of_one_save_end_with_the_last_version_on_the_server() {
    let Some(t) = SoloDevice::start(USER, "retro-handheld") else { return };
    let path = t.a.path("quicksave.sav");
    let versions: Vec<Vec<u8>> = (0..25).map(|i| save_bytes(80 + i, 16 * 1024)).collect();
    for v in &versions {
        std::fs::write(&path, v).unwrap();
    }
    let last = versions.last().unwrap();
    wait_for_server_saves(&t.view, &[("quicksave.sav", last)]);
    assert_eq!(&std::fs::read(&path).unwrap(), last);
}

#[test]
fn open_with_o_trunc_then_write_is_one_change_never_an_empty_save_queued_alone() {
    if !require_fuse() {
        return;
    }
    let server = TestServer::start_blocking();
    let view = RemoteView::new(&server, USER);
    let mut a = Device::pair(&server, USER, "cp-handheld");
    // A debounce longer than the test: what is queued stays visible in `status`.
    a.mount_with_args(&["--debounce-ms", "600000"]);
    let pending = |a: &Device| a.status_json()["pending"].as_u64();
    let path = a.path("Zelda.srm");
    let old = save_bytes(40, 4096);
    std::fs::write(&path, &old).unwrap();
    wait_until(UPLOAD_DEADLINE, "the first save queued", || (pending(&a) == Some(1)).then_some(()));
    // Flush the queue: remount with a short debounce, then back to the long one.
    a.unmount();
    a.mount_with_args(&["--debounce-ms", "10"]);
    wait_for_server_saves(&view, &[("Zelda.srm", &old)]);
    wait_until(UPLOAD_DEADLINE, "an empty queue", || (pending(&a) == Some(0)).then_some(()));
    a.unmount();
    a.mount_with_args(&["--debounce-ms", "600000"]);
    wait_until(UPLOAD_DEADLINE, "online", || (a.status_json()["online"] == true).then_some(()));
    assert_eq!(pending(&a), Some(0), "nothing queued before the copy");

    // `cp new Zelda.srm`: open(O_WRONLY|O_TRUNC), then write, then close.
    let mut file = OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
    // While the handle is open, the truncate alone queued nothing: no empty version can
    // reach the server before the bytes that follow it. (Read from the state DB in this
    // process: running `savesync status` would fork, and the child's exec closing its
    // copy of the fd is a FLUSH of this handle.)
    let db = a.data_home().join("savesync").join("default").join("state.db");
    let queued = StateDb::open_existing(&db).unwrap().pending_count().unwrap();
    assert_eq!(queued, 0, "open(O_TRUNC) queued an empty save on its own");
    let new = save_bytes(41, 2048);
    file.write_all(&new).unwrap();
    drop(file);
    wait_until(UPLOAD_DEADLINE, "the close queued the save", || {
        (pending(&a) == Some(1)).then_some(())
    });
    assert_eq!(std::fs::read(&path).unwrap(), new);
    a.unmount();
    a.mount_with_args(&["--debounce-ms", "10"]);
    wait_for_server_saves(&view, &[("Zelda.srm", &new)]);
    let history = view.history("Zelda.srm");
    assert!(
        history.versions.iter().all(|v| v.size > 0),
        "no empty version was ever committed: {history:?}"
    );
}
