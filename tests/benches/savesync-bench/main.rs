//! savesync benchmark (not a test): every file workload runs in the same run on a plain
//! local directory, on bindfs (a FUSE passthrough: the floor for any FUSE filesystem), on
//! rclone mount (`--vfs-cache-mode full` over `rclone serve webdav` on loopback) and on a
//! real savesync mount, and prints absolute times and savesync's ratio to the row's
//! reference; then the figures that only savesync has (time until the server holds the
//! saves, device A to device B, propagation, peak memory, negotiate, mount start with many
//! saves). A peer that is not installed gets a "not installed" line and an empty column.
//! The table it prints is what docs/performance.md holds.
//!
//! Run: `cargo bench -p savesync-tests --bench savesync-bench` (as root, FUSE available).
//! Smaller runs: `... -- --saves 200 --big-mib 16 --rounds 20 --many 2000 --start-saves 10000`.
//! Only the first workloads: `... -- --up-to 2` (workloads 1 and 2; each of 1-8 builds on
//! the ones before it, so a prefix is what can run alone). Workloads 9 (negotiate) and 10
//! (mount start with `--start-saves N` saves, default 100,000; 0 skips it) stand alone:
//! `... -- --only 9`. After deleting the server-stopped saves the bench waits
//! `--settle-secs` (default 60; 0 skips it) before the next workload: see `settle`.
//!
//! The server is the harness's in-process `TestServer`, the mounts are real `savesync`
//! processes (`Device`), both built in the bench (release) profile. The server's own peak
//! memory is measured on a separate `savesync-server serve` process fed through the HTTP
//! client, because an in-process server shares this process's memory.

mod cpu;
mod external_server;
mod measure;
mod negotiate;
mod peers;
mod report;
mod seed;
mod settle;
mod start;
mod workloads;

use measure::{fmt_duration, fmt_mib, peak_rss_bytes, percentile, timed};
use peers::{Bindfs, RcloneMount, Webdav};
use report::{BINDFS, PLAIN, RCLONE, Report, SAVESYNC, Target};
use savesync_core::{ContentHash, Rev, SavePath};
use savesync_tests::{Device, RemoteView, TestServer, require_fuse};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use workloads::{
    expected_hashes, read_saves, save_bytes, stat_all, write_big, write_one, write_saves,
};

const SAVE_LEN: usize = 64 * 1024;
/// Size of each of the many small saves of the memory workload.
const SMALL_SAVE_LEN: usize = 1024;
/// Deadline for the server to hold everything a workload wrote.
const SERVER_DEADLINE: Duration = Duration::from_secs(300);
/// Deadline for one propagation round.
const PROPAGATION_DEADLINE: Duration = Duration::from_secs(30);
/// Saves of the negotiate workload's device, and how many negotiate calls are timed.
const NEGOTIATE_SAVES: usize = 10_000;
const NEGOTIATE_RUNS: usize = 50;

/// Workload sizes; the defaults are the issue's.
struct Params {
    saves: usize,
    big_mib: usize,
    rounds: usize,
    many: usize,
    /// Last workload to run (1-10).
    up_to: usize,
    /// Run only this stand-alone workload (9 or 10).
    only: Option<usize>,
    /// Saves in the state DB for the mount-start workload (0: skip it).
    start_saves: usize,
    /// Pause after the bench deletes saves, before the next timed workload (`settle`).
    settle: Duration,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test --all-targets` also runs harness-less benches; only `cargo bench` passes
    // `--bench`. Without it, do nothing rather than run minutes of benchmark as a "test".
    if !args.iter().any(|a| a == "--bench") {
        println!("savesync-bench: run with `cargo bench -p savesync-tests --bench savesync-bench`");
        return;
    }
    quiet_mount_logs();
    let params = parse_params(&args);
    if !require_fuse() {
        return;
    }
    print_machine();
    let mut report = Report::default();
    run(&params, &mut report);
    println!();
    report.print_markdown();
}

/// The harness mounts with debug logging unless `SAVESYNC_E2E_LOG` says otherwise; logging
/// every FUSE request would be measured as part of the mount.
#[allow(unsafe_code)] // set_var is unsafe in edition 2024 because of other threads.
fn quiet_mount_logs() {
    if std::env::var_os("SAVESYNC_E2E_LOG").is_none() {
        // SAFETY: called first thing in main, before this process starts any thread.
        unsafe { std::env::set_var("SAVESYNC_E2E_LOG", "warn") };
    }
}

fn parse_params(args: &[String]) -> Params {
    let value = |flag: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{flag} wants a number")))
    };
    Params {
        saves: value("--saves", 1000),
        big_mib: value("--big-mib", 64),
        rounds: value("--rounds", 100),
        many: value("--many", 10_000),
        up_to: value("--up-to", 10),
        only: args.iter().any(|a| a == "--only").then(|| value("--only", 0)),
        start_saves: value("--start-saves", 100_000),
        settle: Duration::from_secs(value("--settle-secs", 60) as u64),
    }
}

fn print_machine() {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    eprintln!("savesync-bench on {cpus} CPUs, Linux {}", kernel.trim());
}

/// The peers that are installed, mounted for the whole run; dropping them unmounts.
struct Peers {
    bindfs: Option<Bindfs>,
    webdav: Option<Webdav>,
    rclone: Option<RcloneMount>,
}

impl Peers {
    fn start() -> Peers {
        let bindfs = peers::installed("bindfs").then(Bindfs::mount);
        let webdav = peers::installed("rclone").then(Webdav::start);
        let rclone = webdav.as_ref().map(RcloneMount::mount);
        Peers { bindfs, webdav, rclone }
    }

    /// Root of each column's filesystem: plain dir, bindfs, rclone, savesync.
    fn roots(&self, plain: &Path, device: &Device) -> [Option<PathBuf>; 4] {
        [
            Some(plain.to_owned()),
            self.bindfs.as_ref().map(|b| b.root().to_owned()),
            self.rclone.as_ref().map(|r| r.root().to_owned()),
            Some(device.mountpoint().to_owned()),
        ]
    }
}

/// Runs `f` on `rel` under each root that exists, in `order`; the result per column.
fn on_each(
    roots: &[Option<PathBuf>; 4],
    order: &[usize],
    rel: &str,
    mut f: impl FnMut(usize, &Path) -> Duration,
) -> [Option<Duration>; 4] {
    let mut out = [None; 4];
    for &column in order {
        if let Some(root) = &roots[column] {
            out[column] = Some(f(column, &root.join(rel)));
        }
    }
    out
}

fn run(p: &Params, report: &mut Report) {
    let mut server = TestServer::start_blocking();
    if let Some(only) = p.only {
        match only {
            9 => negotiate_figures(&server, report),
            10 => start_figures(&server, p, report),
            _ => panic!("--only takes 9 or 10 (the workloads that stand alone)"),
        }
        return;
    }
    let plain =
        tempfile::Builder::new().prefix("savesync-bench-plain-").tempdir().expect("plain dir");
    let mut peers = Peers::start();
    let remote = RemoteView::new(&server, "bench");
    let mut a = Device::pair(&server, "bench", "bench-a");
    a.mount();
    let roots = peers.roots(plain.path(), &a);
    let all = [PLAIN, BINDFS, RCLONE, SAVESYNC];

    // 1. write + fsync + close N x 64 KiB. savesync first, and until the server holds them
    // all; then the others, and until rclone's webdav dir holds them all.
    eprintln!("1. write {} x {} KiB (fsync + close each)", p.saves, SAVE_LEN / 1024);
    let expected = expected_hashes("w", p.saves, SAVE_LEN);
    let mut first_writes = [None; 4];
    let mut server_times_1 = None;
    let mut cpu_1 = None;
    let writes = on_each(&roots, &[SAVESYNC, PLAIN, BINDFS, RCLONE], "w", |column, dir| {
        let cpu_start = (column == SAVESYNC).then(|| cpu::mark(a.mount_pid()));
        let (started, took) = write_saves(dir, p.saves, SAVE_LEN);
        first_writes[column] = Some(started);
        if column == SAVESYNC {
            server_times_1 = Some(wait_for_server(&remote, &expected, started));
            cpu_1 = cpu_start.map(|start| cpu::since(&start, a.mount_pid()));
        }
        took
    });
    report.times(
        &format!("write+fsync+close {} x 64 KiB", p.saves),
        writes,
        Some(BINDFS),
        Some(Target::Ratio(1.2)),
    );
    let rclone_served = peers.webdav.as_ref().zip(first_writes[RCLONE]).map(|(w, started)| {
        workloads::wait_for_bytes(&w.served().join("w"), p.saves, SAVE_LEN, SERVER_DEADLINE)
            .map(|done| done - started)
    });
    on_server_row(
        report,
        &format!("all {} saves on the server, from the first write", p.saves),
        rclone_served,
        server_times_1.expect("savesync wrote"),
        writes[SAVESYNC].expect("savesync wrote"),
    );
    report.text(
        "CPU per save, from the first write until the server holds them all",
        [None, None, None, Some(cpu::per_save(&cpu_1.expect("savesync wrote"), p.saves))],
        "-",
        "",
    );

    // 1b. The same writes with the server stopped: the mount's own write path, with no
    // uploads (the engine's and the in-process server's) sharing the CPUs with the writer;
    // bindfs again right after, as the reference. Then the time the mount takes to catch
    // up once the server is back (it notices within its 1 s harness probe backoff).
    eprintln!("1b. the same writes with the server stopped, then the catch-up");
    server.stop_blocking();
    let mut cpu_1b = None;
    let offline = on_each(&roots, &[SAVESYNC, BINDFS], "wo", |column, dir| {
        // Each column starts with nothing of the other's left to write back, which would
        // slow its fsyncs.
        nix::unistd::sync();
        let cpu_start = (column == SAVESYNC).then(|| cpu::mark(a.mount_pid()));
        let took = write_saves(dir, p.saves, SAVE_LEN).1;
        if let Some(start) = cpu_start {
            // The server is stopped: only the daemon's side is a figure.
            cpu_1b = Some(cpu::CpuSpent { server: None, ..cpu::since(&start, a.mount_pid()) });
        }
        took
    });
    report.times(
        &format!("write+fsync+close {} x 64 KiB, server stopped (nothing uploads)", p.saves),
        offline,
        Some(BINDFS),
        None,
    );
    report.text(
        "CPU per save of those server-stopped writes",
        [None, None, None, Some(cpu::per_save(&cpu_1b.expect("savesync wrote"), p.saves))],
        "-",
        "",
    );
    let cpu_start = cpu::mark(a.mount_pid());
    let restarted = Instant::now();
    server.restart_blocking();
    let caught_up = wait_for_server(&remote, &expected_hashes("wo", p.saves, SAVE_LEN), restarted);
    let cpu_catch_up = cpu::since(&cpu_start, a.mount_pid());
    report.times(
        &format!("those {} saves on the server, from the server's restart", p.saves),
        [None, None, None, Some(caught_up)],
        None,
        None,
    );
    // The queue drained with nothing else running: the upload side's own cost per save.
    report.text(
        "CPU per save of that catch-up",
        [None, None, None, Some(cpu::per_save(&cpu_catch_up, p.saves))],
        "-",
        "",
    );
    // Deleted again, so the later workloads (a fresh device above all) see only "w".
    for column in [SAVESYNC, BINDFS] {
        if let Some(root) = &roots[column] {
            std::fs::remove_dir_all(root.join("wo")).expect("remove the server-stopped writes");
        }
    }
    wait_until_gone(&remote, "wo/");

    if p.up_to < 2 {
        return;
    }
    settle::settle(p.settle, &format!("deleting {} saves", 2 * p.saves));
    // 2. read back warm (cached) and cold (after remount, cache on disk).
    eprintln!("2. read back warm and cold");
    let warm = on_each(&roots, &all, "w", |_, dir| read_saves(dir, p.saves, SAVE_LEN));
    report.times(
        &format!("read {} saves, warm", p.saves),
        warm,
        Some(BINDFS),
        Some(Target::Ratio(0.5)),
    );
    a.unmount();
    let (_, remount) = timed(|| a.mount());
    let mount_cold = read_saves(&a.path("w"), p.saves, SAVE_LEN);
    report.times(
        &format!("read {} saves, cold (savesync after remount; plain: page cache)", p.saves),
        [warm[PLAIN], None, None, Some(mount_cold)],
        Some(PLAIN),
        None,
    );
    report.times(
        "remount (until the kernel lists the mount)",
        [None, None, None, Some(remount)],
        None,
        None,
    );
    // After kill -9 every cached save is checked by hash, while the mount already serves.
    a.kill9();
    let started = Instant::now();
    a.mount();
    let serving = started.elapsed();
    let waited = a.run_cli(&["status", "--wait", "--timeout", "300"]);
    assert!(waited.status.success(), "status --wait after kill -9: {waited:?}");
    let checked = started.elapsed();
    report.times(
        &format!("restart after kill -9, {} saves cached: until the kernel lists it", p.saves),
        [None, None, None, Some(serving)],
        None,
        None,
    );
    report.times(
        "the same restart: until its check of the cache ended (status --wait)",
        [None, None, None, Some(checked)],
        None,
        None,
    );

    if p.up_to < 3 {
        return;
    }
    // 3. a fresh device mounting, listing and reading everything; rclone: a fresh mount of
    // the same webdav remote with an empty cache dir.
    eprintln!("3. fresh device reads all {}", p.saves);
    let mut b = Device::pair(&server, "bench", "bench-b");
    let fresh_start = Instant::now();
    b.mount();
    // The mount serves at once and learns the server's saves in the background, so the
    // folder fills up shortly after mounting: wait for it, as a user's file manager would.
    let listed = wait_for_entries(&b.path("w"), p.saves);
    let fresh_read = read_saves(&b.path("w"), p.saves, SAVE_LEN);
    let fresh_total = fresh_start.elapsed();
    let rclone_fresh = peers.webdav.as_ref().map(|webdav| {
        let started = Instant::now();
        let fresh = RcloneMount::mount(webdav);
        wait_for_entries(&fresh.root().join("w"), p.saves);
        read_saves(&fresh.root().join("w"), p.saves, SAVE_LEN);
        started.elapsed()
    });
    report.times(
        &format!("fresh device: mount, list, read {} saves", p.saves),
        [None, None, rclone_fresh, Some(fresh_total)],
        Some(RCLONE),
        Some(Target::WithinAndFaster(Duration::from_millis(500), 20.0)),
    );
    report.times(
        "fresh device: from mount to all saves listed",
        [None, None, None, Some(listed)],
        None,
        None,
    );
    report.times("fresh device: reading them", [None, None, None, Some(fresh_read)], None, None);

    if p.up_to < 4 {
        return;
    }
    // 4. stat every entry of the folder.
    eprintln!("4. stat every entry");
    let mut counts = Vec::new();
    let stats = on_each(&roots, &all, "w", |_, dir| {
        let (n, took) = stat_all(dir);
        counts.push(n);
        took
    });
    assert!(counts.iter().all(|&n| n == p.saves), "every peer lists every save: {counts:?}");
    report.times(&format!("readdir + stat {} entries", p.saves), stats, Some(BINDFS), None);

    if p.up_to < 5 {
        return;
    }
    // 5. N x 64 KiB written on A while B is mounted: until B reads them all.
    eprintln!("5. {} x 64 KiB written on A, read on B", p.saves);
    let _ = peers::installed("syncthing");
    let b_dir = b.path("ab");
    let count = p.saves;
    let reader = std::thread::spawn(move || {
        workloads::wait_for_bytes(&b_dir, count, SAVE_LEN, SERVER_DEADLINE)
    });
    let (a_started, a_write) = write_saves(&a.path("ab"), p.saves, SAVE_LEN);
    let b_done = reader.join().expect("reader on B").expect("B read every save in time");
    report.times(
        &format!(
            "{} x 64 KiB written on A (took {}), all read on B",
            p.saves,
            fmt_duration(a_write)
        ),
        [None, None, None, Some(b_done - a_started)],
        None,
        Some(Target::Within(Duration::from_millis(1250))),
    );

    if p.up_to < 6 {
        return;
    }
    // 6. one big save state, then until it is on the server (rclone left out: its upload
    // would run in the background of the next workloads).
    eprintln!("6. one {} MiB save", p.big_mib);
    let big = save_bytes(424_242, p.big_mib * 1024 * 1024);
    let mut big_started = None;
    let big_writes = on_each(&roots, &[PLAIN, BINDFS, SAVESYNC], "big.state", |column, path| {
        if column == SAVESYNC {
            big_started = Some(Instant::now());
        }
        write_big(path, &big)
    });
    report.times(
        &format!("write+fsync+close one {} MiB save", p.big_mib),
        big_writes,
        Some(BINDFS),
        None,
    );
    let big_expected = BTreeMap::from([("big.state".to_owned(), ContentHash::of(&big))]);
    let big_on_server =
        wait_for_server(&remote, &big_expected, big_started.expect("savesync wrote"));
    report.times(
        &format!("{} MiB save on the server, from the start of the write", p.big_mib),
        [None, None, None, Some(big_on_server)],
        None,
        None,
    );
    drop(big);

    if p.up_to < 7 {
        return;
    }
    // 7. propagation A -> B.
    eprintln!("7. propagation A -> B x {}", p.rounds);
    let samples = propagation(&a, &b, p.rounds);
    report.times(
        &format!("propagation A -> B, p50 of {}", samples.len()),
        [None, None, None, Some(percentile(&samples, 50))],
        None,
        Some(Target::Within(Duration::from_millis(50))),
    );
    report.times(
        &format!("propagation A -> B, p99 of {}", samples.len()),
        [None, None, None, Some(percentile(&samples, 99))],
        None,
        Some(Target::Within(Duration::from_millis(150))),
    );
    b.unmount();

    if p.up_to < 8 {
        return;
    }
    // 8. many small saves, then peak memory.
    eprintln!("8. {} small saves and peak memory", p.many);
    let many_expected = expected_hashes("many", p.many, SMALL_SAVE_LEN);
    let mut many_on_server = None;
    let mut cpu_8 = None;
    let many = on_each(&roots, &[SAVESYNC, PLAIN, BINDFS, RCLONE], "many", |column, dir| {
        let cpu_start = (column == SAVESYNC).then(|| cpu::mark(a.mount_pid()));
        let (started, took) = write_saves(dir, p.many, SMALL_SAVE_LEN);
        if column == SAVESYNC {
            many_on_server = Some(wait_for_server(&remote, &many_expected, started));
            cpu_8 = cpu_start.map(|start| cpu::since(&start, a.mount_pid()));
        }
        took
    });
    report.times(
        &format!("write+fsync+close {} x 1 KiB", p.many),
        many,
        Some(BINDFS),
        Some(Target::Ratio(1.2)),
    );
    on_server_row(
        report,
        &format!("all {} small saves on the server, from the first write", p.many),
        None,
        many_on_server.expect("savesync wrote"),
        many[SAVESYNC].expect("savesync wrote"),
    );
    report.text(
        "CPU per small save, from the first write until the server holds them all",
        [None, None, None, Some(cpu::per_save(&cpu_8.expect("savesync wrote"), p.many))],
        "-",
        "",
    );
    // rclone's uploads of the small saves would run behind the rest: stop it here.
    peers.rclone = None;
    peers.webdav = None;
    let run_peak = peak_rss_bytes(a.mount_pid().expect("device A is mounted")).expect("VmHWM");
    report.text(
        &format!(
            "peak RSS of the mount daemon over workloads 1-8 (incl. uploading the {} MiB save)",
            p.big_mib
        ),
        [None, None, None, Some(fmt_mib(run_peak))],
        "-",
        "",
    );
    // A fresh daemon process, so the peak reflects holding and serving the saves rather
    // than an earlier upload of the big save.
    a.unmount();
    a.mount();
    let total = p.many + 2 * p.saves + 2;
    let _ = stat_all(&a.path("many"));
    let _ = read_saves(&a.path("many"), p.many, SMALL_SAVE_LEN);
    let _ = stat_all(&a.path("w"));
    let _ = read_saves(&a.path("w"), p.saves, SAVE_LEN);
    let serving_peak = peak_rss_bytes(a.mount_pid().expect("device A is mounted")).expect("VmHWM");
    report.text(
        &format!("peak RSS of the mount daemon with {total} saves (start, stat and read all)"),
        [None, None, None, Some(fmt_mib(serving_peak))],
        "-",
        "< 30 MiB",
    );
    a.unmount();
    drop(peers);
    let server_rss = server_peak_rss(p.many);
    report.text(
        &format!("peak RSS of savesync-server (upload, list, download {} saves)", p.many),
        [None, None, None, Some(fmt_mib(server_rss))],
        "-",
        "",
    );

    if p.up_to < 9 {
        return;
    }
    negotiate_figures(&server, report);
    if p.up_to < 10 {
        return;
    }
    start_figures(&server, p, report);
}

/// "All saves on the server" row: rclone's time until its webdav dir holds them (None:
/// not measured), savesync's, and savesync's ratio to its own write time.
fn on_server_row(
    report: &mut Report,
    workload: &str,
    rclone: Option<Option<Duration>>,
    savesync: Duration,
    savesync_write: Duration,
) {
    let rclone = rclone
        .map(|r| r.map_or_else(|| format!("> {}", fmt_duration(SERVER_DEADLINE)), fmt_duration));
    let x = report::ratio(savesync, savesync_write);
    report.text(
        workload,
        [None, None, rclone, Some(fmt_duration(savesync))],
        &format!("{x:.2}x its write"),
        &report::verdict("≤ 1.3x the write time", Some(x <= 1.3)),
    );
}

/// 9. negotiate with a 10,000-save manifest.
fn negotiate_figures(server: &TestServer, report: &mut Report) {
    eprintln!("9. negotiate, {NEGOTIATE_SAVES}-save manifest, x {NEGOTIATE_RUNS}");
    let samples = negotiate::negotiate_latencies(server, NEGOTIATE_SAVES, NEGOTIATE_RUNS);
    report.times(
        &format!(
            "server negotiate, {NEGOTIATE_SAVES}-save manifest in sync, p50 of {NEGOTIATE_RUNS}"
        ),
        [None, None, None, Some(percentile(&samples, 50))],
        None,
        Some(Target::Within(Duration::from_millis(15))),
    );
    report.times(
        &format!(
            "server negotiate, {NEGOTIATE_SAVES}-save manifest in sync, p99 of {NEGOTIATE_RUNS}"
        ),
        [None, None, None, Some(percentile(&samples, 99))],
        None,
        None,
    );
}

/// 10. mount start with `--start-saves` saves in the state DB.
fn start_figures(server: &TestServer, p: &Params, report: &mut Report) {
    if p.start_saves == 0 {
        eprintln!("10. mount start: skipped (--start-saves 0)");
        return;
    }
    eprintln!("10. mount start with {} saves in the state DB", p.start_saves);
    let f = start::mount_start(server, p.start_saves);
    report.times(
        &format!(
            "mount start with {} saves: spawn until the kernel lists the mount",
            p.start_saves
        ),
        [None, None, None, Some(f.mounted)],
        None,
        Some(Target::Within(Duration::from_secs(1))),
    );
    report.times(
        &format!("mount start with {} saves: spawn until the folder lists", p.start_saves),
        [None, None, None, Some(f.listed)],
        None,
        Some(Target::Within(Duration::from_secs(1))),
    );
    report.text(
        &format!("mount start with {} saves: RSS when the folder lists", p.start_saves),
        [None, None, None, Some(fmt_mib(f.rss))],
        "-",
        "",
    );
    let mib = f.settled as f64 / (1024.0 * 1024.0);
    report.text(
        &format!(
            "mount start with {} saves: most RSS over {} s after its first negotiation (peak)",
            p.start_saves,
            start::IDLE_WINDOW.as_secs()
        ),
        [None, None, None, Some(format!("{} ({})", fmt_mib(f.settled), fmt_mib(f.peak)))],
        "-",
        &report::verdict("≤ 40 MiB", Some(mib <= 40.0)),
    );
}

/// Time from `since` until the server holds every `expected` save with its bytes.
fn wait_for_server(
    remote: &RemoteView,
    expected: &BTreeMap<String, ContentHash>,
    since: Instant,
) -> Duration {
    loop {
        let complete = remote
            .try_saves()
            .is_some_and(|saves| expected.iter().all(|(path, hash)| saves.get(path) == Some(hash)));
        if complete {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < SERVER_DEADLINE,
            "the server did not get all saves in {SERVER_DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the server lists no live save under `prefix`.
fn wait_until_gone(remote: &RemoteView, prefix: &str) {
    let since = Instant::now();
    while remote.try_saves().is_none_or(|saves| saves.keys().any(|p| p.starts_with(prefix))) {
        assert!(
            since.elapsed() < SERVER_DEADLINE,
            "the server still lists saves under {prefix} after {SERVER_DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Time until `dir` lists at least `count` entries.
fn wait_for_entries(dir: &Path, count: usize) -> Duration {
    let start = Instant::now();
    loop {
        let n = std::fs::read_dir(dir).map_or(0, Iterator::count);
        if n >= count {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < SERVER_DEADLINE,
            "{} listed {n} of {count} entries after {SERVER_DEADLINE:?}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `rounds` times: close a new version on A, then poll B until it reads those bytes.
fn propagation(a: &Device, b: &Device, rounds: usize) -> Vec<Duration> {
    let rel = "prop/Chrono Trigger.srm";
    std::fs::create_dir_all(a.path("prop")).expect("mkdir prop on A");
    let mut samples = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let bytes = save_bytes(1_000_000 + round, 8 * 1024);
        write_one(&a.path(rel), &bytes);
        let closed = Instant::now();
        loop {
            if std::fs::read(b.path(rel)).is_ok_and(|got| got == bytes) {
                samples.push(closed.elapsed());
                break;
            }
            assert!(
                closed.elapsed() < PROPAGATION_DEADLINE,
                "round {round}: B did not read A's new bytes within {PROPAGATION_DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    samples
}

/// Peak RSS of a separate server process that receives `many` small uploads, lists them
/// and serves each once.
fn server_peak_rss(many: usize) -> u64 {
    let server = external_server::ExternalServer::start();
    let runtime = savesync_tests::runtime();
    let code = server.pairing_code("bench");
    let client = runtime.block_on(async {
        let anonymous = savesync_client::Client::new(&server.url, None).expect("client");
        let paired = anonymous.pair(&code, "bench-rss", "bench").await.expect("pair");
        savesync_client::Client::new(&server.url, Some(paired.token)).expect("client with token")
    });
    runtime.block_on(async {
        use futures::StreamExt;
        let paths: Vec<SavePath> = (0..many)
            .map(|i| SavePath::parse(&format!("many/{}", workloads::save_name(i))).expect("path"))
            .collect();
        futures::stream::iter(paths.iter().enumerate())
            .for_each_concurrent(8, |(i, path)| {
                let client = client.clone();
                async move {
                    let bytes = bytes::Bytes::from(save_bytes(i, SMALL_SAVE_LEN));
                    client.upload(path, Rev::NONE, bytes).await.expect("upload");
                }
            })
            .await;
        let list = client.list(None, false).await.expect("list");
        assert_eq!(list.saves.len(), many, "the server lists every upload");
        futures::stream::iter(paths.iter())
            .for_each_concurrent(8, |path| {
                let client = client.clone();
                async move {
                    client.download(path, None).await.expect("download");
                }
            })
            .await;
    });
    peak_rss_bytes(server.pid()).expect("VmHWM of the server")
}
