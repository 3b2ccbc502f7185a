//! A program run from the mount is protected like on a local file system: while it runs,
//! opening its file to write or to truncate fails with ETXTBSY, the program keeps running,
//! and its bytes stay whole.
//!
//! The kernel refuses O_WRONLY and O_RDWR itself. An O_RDONLY|O_TRUNC open reaches the
//! mount first (atomic_o_trunc), and the kernel drops the file's size and page cache as
//! soon as the mount says yes, so the mount must say no: before it did, a program in the
//! middle of its execve died with SIGSEGV about once in seven tries (pjdfstest's
//! `open::etxtbsy` case, which opens the file the moment `spawn` returns).

use savesync_tests::{SoloDevice, poll_until};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

const USER: &str = "ada";
/// Rounds of "spawn, then at once open with O_TRUNC": the race pjdfstest hit.
const RACE_ROUNDS: usize = 30;
const EXEC_DEADLINE: Duration = Duration::from_secs(10);

fn open_with(path: &Path, flags: i32, write: bool) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().read(!write).write(write).custom_flags(flags).open(path)
}

fn assert_text_busy(what: &str, result: std::io::Result<std::fs::File>) {
    let err = result.map(drop).expect_err(what);
    assert_eq!(err.raw_os_error(), Some(libc::ETXTBSY), "{what}: {err}");
}

/// Wait until `child` runs `program` (its execve is done), failing if it died instead.
fn wait_until_running(child: &mut Child, program: &Path) {
    let exe = format!("/proc/{}/exe", child.id());
    let running = poll_until(EXEC_DEADLINE, || {
        if let Some(status) = child.try_wait().expect("poll the program") {
            panic!("the program run from the mount died: {status}");
        }
        std::fs::read_link(&exe).is_ok_and(|target| target == program).then_some(())
    });
    assert!(running.is_some(), "{} never ran within {EXEC_DEADLINE:?}", program.display());
}

fn nix_truncate(path: &Path) -> std::io::Result<std::fs::File> {
    nix::unistd::truncate(path, 0).map_err(std::io::Error::from)?;
    unreachable!("truncate(2) of a running program succeeded")
}

fn stop(mut child: Child) {
    let status = child.try_wait().expect("poll the program");
    assert!(status.is_none(), "the program run from the mount died: {status:?}");
    child.kill().expect("kill the program");
    child.wait().expect("reap the program");
}

#[test]
fn a_running_program_cannot_be_opened_to_write_or_truncate_and_keeps_running() {
    let Some(t) = SoloDevice::start(USER, "exec") else { return };
    let original = std::fs::read("/bin/sleep").expect("read /bin/sleep");
    std::fs::create_dir(t.a.path("tools")).unwrap();
    let program = t.a.path("tools/sleep");
    std::fs::write(&program, &original).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut child = Command::new(&program).arg("30").spawn().expect("run sleep from the mount");
    wait_until_running(&mut child, &program);
    assert_text_busy("O_WRONLY", open_with(&program, 0, true));
    assert_text_busy("O_RDONLY|O_TRUNC", open_with(&program, libc::O_TRUNC, false));
    assert_text_busy("truncate(2)", nix_truncate(&program));
    stop(child);
    assert_eq!(std::fs::read(&program).unwrap(), original, "the program's bytes are whole");

    // Now it is not running: truncating it is allowed again.
    drop(open_with(&program, libc::O_TRUNC, true).expect("O_TRUNC once nothing runs it"));
    assert_eq!(std::fs::metadata(&program).unwrap().len(), 0);
}

#[test]
fn an_o_trunc_open_the_moment_spawn_returns_never_kills_the_program() {
    let Some(t) = SoloDevice::start(USER, "exec-race") else { return };
    let original = std::fs::read("/bin/sleep").expect("read /bin/sleep");
    std::fs::create_dir(t.a.path("race")).unwrap();
    for round in 0..RACE_ROUNDS {
        // A new file each round, written and closed just before it runs, as pjdfstest does.
        let program = t.a.path(&format!("race/sleep-{round}"));
        std::fs::write(&program, &original).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut child = Command::new(&program).arg("30").spawn().expect("run from the mount");
        let opened = open_with(&program, libc::O_TRUNC, false);
        assert_text_busy(&format!("round {round}: O_RDONLY|O_TRUNC"), opened);
        wait_until_running(&mut child, &program);
        stop(child);
        assert_eq!(std::fs::read(&program).unwrap(), original, "round {round}: bytes whole");
        std::fs::remove_file(&program).unwrap();
    }
}
