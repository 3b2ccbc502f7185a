//! How emulators write saves, in a synced folder: temp + rename, rewrite in place,
//! truncate then write, a file held open for writing (not uploaded until closed). The
//! server must end with exactly the final bytes and never a temp name.

use savesync_tests::{
    FOLDER_DEBOUNCE_MS, FolderDevice, RemoteView, TestServer, poll_until, save_bytes, wait_until,
    write_via_rename,
};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::time::Duration;

const USER: &str = "emu";
const DEADLINE: Duration = Duration::from_secs(20);

fn expect_server(view: &RemoteView, want: &[(&str, &[u8])]) {
    let want: BTreeMap<String, _> =
        want.iter().map(|(p, b)| ((*p).to_owned(), savesync_core::ContentHash::of(b))).collect();
    wait_until(DEADLINE, &format!("the server to hold exactly {:?}", want.keys()), || {
        (view.try_saves()? == want).then_some(())
    });
}

fn start() -> (TestServer, RemoteView, FolderDevice) {
    let server = TestServer::start_blocking();
    let view = RemoteView::new(&server, USER);
    let mut b = FolderDevice::pair(&server, USER, "retro-handheld");
    b.start();
    (server, view, b)
}

#[test]
fn temp_rename_in_place_and_truncate_writes_upload_the_final_bytes_only() {
    let (_server, view, b) = start();
    std::fs::create_dir_all(b.path("snes")).unwrap();

    // Save state: written to a temp file and renamed over (RetroArch, most cores).
    let s1 = save_bytes(10, 100_000);
    write_via_rename(&b.path("snes/Zelda.state"), &s1);
    expect_server(&view, &[("snes/Zelda.state", &s1)]);
    let s2 = save_bytes(11, 120_000);
    write_via_rename(&b.path("snes/Zelda.state"), &s2);
    expect_server(&view, &[("snes/Zelda.state", &s2)]);

    // SRAM rewritten in place: open without truncating, patch ranges, close.
    let mut sram = vec![0u8; 32 * 1024];
    std::fs::write(b.path("snes/Zelda.srm"), &sram).unwrap();
    expect_server(&view, &[("snes/Zelda.state", &s2), ("snes/Zelda.srm", &sram)]);
    let f = OpenOptions::new().read(true).write(true).open(b.path("snes/Zelda.srm")).unwrap();
    let patch = save_bytes(12, 300);
    f.write_all_at(&patch, 0x7000).unwrap();
    drop(f);
    sram[0x7000..0x7000 + 300].copy_from_slice(&patch);
    expect_server(&view, &[("snes/Zelda.state", &s2), ("snes/Zelda.srm", &sram)]);

    // Truncate, then write a shorter file in several writes.
    let short = save_bytes(13, 10_000);
    let mut f =
        OpenOptions::new().write(true).truncate(true).open(b.path("snes/Zelda.srm")).unwrap();
    for chunk in short.chunks(1000) {
        f.write_all(chunk).unwrap();
    }
    drop(f);
    expect_server(&view, &[("snes/Zelda.state", &s2), ("snes/Zelda.srm", &short)]);

    // Many rewrites in a row end with the last bytes.
    let mut last = Vec::new();
    for i in 0..20 {
        last = save_bytes(20 + i, 2048);
        std::fs::write(b.path("snes/Zelda.srm"), &last).unwrap();
    }
    expect_server(&view, &[("snes/Zelda.state", &s2), ("snes/Zelda.srm", &last)]);
    let names: Vec<String> = view.saves().into_keys().collect();
    assert!(
        names.iter().all(|n| !n.ends_with(".tmp")),
        "no temp name reached the server: {names:?}"
    );
}

#[test]
fn a_save_held_open_for_writing_is_uploaded_only_once_closed() {
    let (_server, view, b) = start();
    let path = b.path("memcard.mcd");
    let mut f = std::fs::File::create(&path).unwrap();
    let v1 = save_bytes(30, 8192);
    f.write_all(&v1).unwrap();
    f.flush().unwrap();
    // Many debounce intervals pass with the file quiet but open for writing: nothing goes.
    let quiet = Duration::from_millis(u64::from(FOLDER_DEBOUNCE_MS) * 20);
    let early = poll_until(quiet, || view.try_saves().filter(|s| !s.is_empty()));
    assert!(early.is_none(), "a save open for writing was uploaded: {early:?}");
    // More writes while open, then close: the final bytes go.
    let v2 = save_bytes(31, 8192);
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(&v2).unwrap();
    drop(f);
    expect_server(&view, &[("memcard.mcd", &v2)]);
}
