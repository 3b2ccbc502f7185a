//! Workload 10: mount start with many saves in the state DB. The saves are seeded for real
//! but cheaply: tiny saves uploaded through the HTTP client, then a device mounts and learns
//! them (it lists them without downloading), then unmounts. What is timed is the restart:
//! from spawning the mount until the kernel lists it, and until the folder lists; then the
//! daemon's RSS at that moment, and then the most it holds over a few seconds after the
//! mount's first negotiation (a manifest of every save, its largest transient allocation)
//! has completed its session on the server: the memory the mount keeps while it runs.

use crate::seed::upload_tiny;
use savesync_server::meta::UserId;
use savesync_tests::{Device, TestServer};
use std::path::Path;
use std::time::{Duration, Instant};

/// Saves per folder, as emulators keep a few folders of many saves.
const PER_FOLDER: usize = 1000;
/// Deadline for the device to learn every seeded save.
const LEARN_DEADLINE: Duration = Duration::from_secs(1800);
/// How long the idle mount's RSS is watched after its first negotiation, and how often.
pub const IDLE_WINDOW: Duration = Duration::from_secs(5);
const IDLE_SAMPLE: Duration = Duration::from_millis(250);

pub struct StartFigures {
    /// Spawn until the kernel lists the FUSE mount.
    pub mounted: Duration,
    /// Spawn until the top folder and its first sub-folder list in full.
    pub listed: Duration,
    /// VmRSS of the daemon after that.
    pub rss: u64,
    /// The highest VmRSS over [`IDLE_WINDOW`] once the first negotiation's session is
    /// complete.
    pub settled: u64,
    /// VmHWM of the daemon by then.
    pub peak: u64,
}

fn folder(i: usize) -> String {
    format!("start/g{:03}", i / PER_FOLDER)
}

pub fn mount_start(server: &TestServer, saves: usize) -> StartFigures {
    let runtime = savesync_tests::runtime();
    runtime.block_on(async {
        let client = server.client_for("start", "start-seeder").await;
        upload_tiny(&client, saves, 32, |i| format!("{}/save-{i:06}.srm", folder(i))).await;
    });
    let mut device = Device::pair(server, "start", "start-device");
    device.mount();
    let learn = Instant::now();
    let folders: Vec<String> =
        (0..saves.div_ceil(PER_FOLDER)).map(|f| folder(f * PER_FOLDER)).collect();
    loop {
        let listed: usize = folders.iter().map(|f| count(&device.path(f))).sum();
        if listed >= saves {
            break;
        }
        assert!(
            learn.elapsed() < LEARN_DEADLINE,
            "the device listed {listed} of {saves} saves after {LEARN_DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("  the device learnt {saves} saves in {:.1} s", learn.elapsed().as_secs_f64());
    device.unmount();

    let user = runtime.block_on(server.app().meta().ensure_user("start", 0)).expect("start user");
    let completed_before = runtime.block_on(completed_sessions(server, user));
    let spawned = Instant::now();
    device.mount();
    let mounted = spawned.elapsed();
    let first = device.path(&folders[0]);
    let expected_first = saves.min(PER_FOLDER);
    while count(&device.path("start")) < folders.len() || count(&first) < expected_first {
        assert!(spawned.elapsed() < LEARN_DEADLINE, "the restarted mount does not list");
        std::thread::sleep(Duration::from_millis(1));
    }
    let listed = spawned.elapsed();
    let pid = device.mount_pid().expect("mounted");
    let rss = crate::measure::rss_bytes(pid).expect("VmRSS");
    while runtime.block_on(completed_sessions(server, user)) == completed_before {
        assert!(spawned.elapsed() < LEARN_DEADLINE, "the restarted mount never negotiated");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut settled = crate::measure::rss_bytes(pid).expect("VmRSS");
    // A measuring window, not a wait for a condition: what the idle mount holds over time.
    let idle = Instant::now();
    while idle.elapsed() < IDLE_WINDOW {
        std::thread::sleep(IDLE_SAMPLE);
        settled = settled.max(crate::measure::rss_bytes(pid).expect("VmRSS"));
    }
    let peak = crate::measure::peak_rss_bytes(pid).expect("VmHWM");
    device.unmount();
    StartFigures { mounted, listed, rss, settled, peak }
}

/// Sync sessions of `user` that the device has reported complete (a read, so polling it
/// adds no writes to the server whose device is being measured).
async fn completed_sessions(server: &TestServer, user: UserId) -> usize {
    let sessions = server.app().meta().sessions(user).await.expect("list sessions");
    sessions.iter().filter(|s| s.completed.is_some()).count()
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, Iterator::count)
}
