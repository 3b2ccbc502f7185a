//! Symlinks, FIFOs, unix sockets and hard links through a real mount: they behave like a
//! local file system's, survive a remount, and never reach the server (they are local-only
//! entries, like temp names). Hard links are refused on saves (regular files).

use savesync_tests::{SoloDevice, poll_until, save_bytes};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::time::Duration;

const USER: &str = "grace";
const UPLOAD_DEADLINE: Duration = Duration::from_secs(10);

#[test]
fn symlinks_fifos_sockets_and_their_hard_links_work_and_never_reach_the_server() {
    let Some(SoloDevice { server: _server, view, mut a }) = SoloDevice::start(USER, "sp") else {
        return;
    };
    std::fs::create_dir_all(a.path("snes")).unwrap();
    std::fs::write(a.path("snes/game.srm"), b"real save").unwrap();

    std::os::unix::fs::symlink("game.srm", a.path("snes/latest")).unwrap();
    assert_eq!(std::fs::read(a.path("snes/latest")).unwrap(), b"real save", "followed");
    assert_eq!(std::fs::read_link(a.path("snes/latest")).unwrap().to_str(), Some("game.srm"));
    nix::unistd::mkfifo(&a.path("snes/pipe"), nix::sys::stat::Mode::from_bits_truncate(0o600))
        .unwrap();
    let listener = std::os::unix::net::UnixListener::bind(a.path("snes/sock")).unwrap();
    drop(listener);
    std::fs::hard_link(a.path("snes/pipe"), a.path("snes/pipe2")).unwrap();
    assert_eq!(std::fs::metadata(a.path("snes/pipe")).unwrap().nlink(), 2);
    let refused = std::fs::hard_link(a.path("snes/game.srm"), a.path("snes/copy.srm"));
    assert_eq!(refused.unwrap_err().raw_os_error(), Some(libc::EPERM), "no hard links of saves");

    // A FIFO carries data through the kernel, as on any file system.
    let reader = {
        let path = a.path("snes/pipe2");
        std::thread::spawn(move || std::fs::read(path).unwrap())
    };
    std::fs::write(a.path("snes/pipe"), b"through the pipe").unwrap();
    assert_eq!(reader.join().unwrap(), b"through the pipe");

    // Uploads run concurrently: the real save first, then a barrier written after the
    // special files, so the uploader has had its chance to (wrongly) send them.
    let ok = poll_until(UPLOAD_DEADLINE, || view.has("snes/game.srm", b"real save").then_some(()));
    assert!(ok.is_some(), "the real save reached the server");
    let sentinel = save_bytes(7, 64);
    std::fs::write(a.path("sentinel.sav"), &sentinel).unwrap();
    let ok = poll_until(UPLOAD_DEADLINE, || view.has("sentinel.sav", &sentinel).then_some(()));
    assert!(ok.is_some(), "the sentinel save reached the server");
    let saves: Vec<String> = view.saves().keys().cloned().collect();
    assert_eq!(saves, ["sentinel.sav", "snes/game.srm"], "only the real saves are on the server");

    a.unmount();
    a.mount();
    let link = std::fs::symlink_metadata(a.path("snes/latest")).unwrap();
    assert!(link.file_type().is_symlink(), "the symlink survived the remount");
    assert_eq!(std::fs::read_link(a.path("snes/latest")).unwrap().to_str(), Some("game.srm"));
    let pipe = std::fs::symlink_metadata(a.path("snes/pipe")).unwrap();
    assert!(pipe.file_type().is_fifo());
    assert_eq!(pipe.nlink(), 2);
    assert!(std::fs::symlink_metadata(a.path("snes/sock")).unwrap().file_type().is_socket());

    for name in ["snes/latest", "snes/pipe", "snes/pipe2", "snes/sock"] {
        std::fs::remove_file(a.path(name)).unwrap();
    }
    let sentinel = save_bytes(8, 64);
    std::fs::write(a.path("sentinel.sav"), &sentinel).unwrap();
    let ok = poll_until(UPLOAD_DEADLINE, || view.has("sentinel.sav", &sentinel).then_some(()));
    assert!(ok.is_some(), "the second sentinel reached the server");
    let saves: Vec<String> = view.saves().keys().cloned().collect();
    assert_eq!(saves, ["sentinel.sav", "snes/game.srm"], "removing them touched no save");
    a.unmount();
}
