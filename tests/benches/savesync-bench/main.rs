//! savesync benchmark (not a test): every file workload runs on a plain local directory and
//! on a real savesync mount in the same run, and prints absolute times and the ratio, then
//! the figures that only the mount has (time until the server holds the saves, propagation
//! between two devices, peak memory). The table it prints is what docs/performance.md holds.
//!
//! Run: `cargo bench -p savesync-tests --bench savesync-bench` (as root, FUSE available).
//! Smaller runs: `... -- --saves 200 --big-mib 16 --rounds 20 --many 2000`.
//! Only the first workloads: `... -- --up-to 2` (workloads 1 and 2; each builds on the
//! ones before it, so a prefix is what can run alone).
//!
//! The server is the harness's in-process `TestServer`, the mounts are real `savesync`
//! processes (`Device`), both built in the bench (release) profile. The server's own peak
//! memory is measured on a separate `savesync-server serve` process fed through the HTTP
//! client, because an in-process server shares this process's memory.

mod external_server;
mod measure;
mod report;
mod workloads;

use measure::{fmt_duration, fmt_mib, peak_rss_bytes, percentile, timed};
use report::Report;
use savesync_core::{ContentHash, Rev, SavePath};
use savesync_tests::{Device, RemoteView, TestServer, require_fuse};
use std::collections::BTreeMap;
use std::path::Path;
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

/// Workload sizes; the defaults are the issue's.
struct Params {
    saves: usize,
    big_mib: usize,
    rounds: usize,
    many: usize,
    /// Last workload to run (1-7).
    up_to: usize,
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
        up_to: value("--up-to", 7),
    }
}

fn print_machine() {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    eprintln!("savesync-bench on {cpus} CPUs, Linux {}", kernel.trim());
}

fn run(p: &Params, report: &mut Report) {
    let plain =
        tempfile::Builder::new().prefix("savesync-bench-plain-").tempdir().expect("plain dir");
    let server = TestServer::start_blocking();
    let remote = RemoteView::new(&server, "bench");
    let mut a = Device::pair(&server, "bench", "bench-a");
    a.mount();

    // 1. write + fsync + close N x 64 KiB; then until all are committed on the server.
    eprintln!("1. write {} x {} KiB (fsync + close each)", p.saves, SAVE_LEN / 1024);
    let plain_write = write_saves(&plain.path().join("w"), p.saves, SAVE_LEN);
    let expected = expected_hashes("w", p.saves, SAVE_LEN);
    let first_write = Instant::now();
    let mount_write = write_saves(&a.path("w"), p.saves, SAVE_LEN);
    report.compared(
        &format!("write+fsync+close {} x 64 KiB", p.saves),
        plain_write,
        mount_write,
        Some(2.0),
    );
    let all_committed = wait_for_server(&remote, &expected, first_write);
    report.absolute(
        &format!("all {} saves committed on the server, from the first write", p.saves),
        fmt_duration(all_committed),
        Some("≤ 3 s"),
    );

    if p.up_to < 2 {
        return;
    }
    // 2. read back warm (cached) and cold (after remount, cache on disk).
    eprintln!("2. read back warm and cold");
    let plain_read = read_saves(&plain.path().join("w"), p.saves, SAVE_LEN);
    let mount_warm = read_saves(&a.path("w"), p.saves, SAVE_LEN);
    report.compared(&format!("read {} saves, warm", p.saves), plain_read, mount_warm, Some(1.5));
    a.unmount();
    let (_, remount) = timed(|| a.mount());
    let mount_cold = read_saves(&a.path("w"), p.saves, SAVE_LEN);
    report.compared(
        &format!("read {} saves, cold (after remount; plain: page cache)", p.saves),
        plain_read,
        mount_cold,
        None,
    );
    report.absolute("remount (until the kernel lists the mount)", fmt_duration(remount), None);

    if p.up_to < 3 {
        return;
    }
    // 3. a fresh device mounting and reading everything (download).
    eprintln!("3. fresh device reads all {}", p.saves);
    let mut b = Device::pair(&server, "bench", "bench-b");
    let fresh_start = Instant::now();
    b.mount();
    // The mount serves at once and learns the server's saves in the background, so the
    // folder fills up shortly after mounting: wait for it, as a user's file manager would.
    let listed = wait_for_entries(&b.path("w"), p.saves);
    let fresh_read = read_saves(&b.path("w"), p.saves, SAVE_LEN);
    let fresh_total = fresh_start.elapsed();
    report.compared(
        &format!("fresh device: mount, list, read {} saves (download)", p.saves),
        plain_read,
        fresh_total,
        None,
    );
    report.absolute("fresh device: from mount to all saves listed", fmt_duration(listed), None);
    report.absolute(
        "fresh device: reading them (downloads on open)",
        fmt_duration(fresh_read),
        None,
    );

    if p.up_to < 4 {
        return;
    }
    // 4. stat every entry of the folder.
    eprintln!("4. stat every entry");
    let (plain_n, plain_stat) = stat_all(&plain.path().join("w"));
    let (mount_n, mount_stat) = stat_all(&a.path("w"));
    assert_eq!(plain_n, mount_n, "the mount lists as many entries as the plain dir");
    report.compared(&format!("readdir + stat {} entries", mount_n), plain_stat, mount_stat, None);

    if p.up_to < 5 {
        return;
    }
    // 5. one big save state, then until it is on the server.
    eprintln!("5. one {} MiB save", p.big_mib);
    let big = save_bytes(424_242, p.big_mib * 1024 * 1024);
    let plain_big = write_big(&plain.path().join("big.state"), &big);
    let big_start = Instant::now();
    let mount_big = write_big(&a.path("big.state"), &big);
    report.compared(
        &format!("write+fsync+close one {} MiB save", p.big_mib),
        plain_big,
        mount_big,
        None,
    );
    let big_expected = BTreeMap::from([("big.state".to_owned(), ContentHash::of(&big))]);
    let big_on_server = wait_for_server(&remote, &big_expected, big_start);
    report.absolute(
        &format!("{} MiB save on the server, from the start of the write", p.big_mib),
        fmt_duration(big_on_server),
        None,
    );
    drop(big);

    if p.up_to < 6 {
        return;
    }
    // 6. propagation A -> B.
    eprintln!("6. propagation A -> B x {}", p.rounds);
    let samples = propagation(&a, &b, p.rounds);
    report.absolute(
        &format!("propagation A -> B, p50 of {}", samples.len()),
        fmt_duration(percentile(&samples, 50)),
        Some("< 0.5 s"),
    );
    report.absolute(
        &format!("propagation A -> B, p99 of {}", samples.len()),
        fmt_duration(percentile(&samples, 99)),
        Some("< 1 s"),
    );
    b.unmount();

    if p.up_to < 7 {
        return;
    }
    // 7. peak RSS of the mount with many saves, and of a server holding as many.
    eprintln!("7. {} small saves and peak memory", p.many);
    let plain_many = write_saves(&plain.path().join("many"), p.many, SMALL_SAVE_LEN);
    let many_expected = expected_hashes("many", p.many, SMALL_SAVE_LEN);
    let many_start = Instant::now();
    let many_write = write_saves(&a.path("many"), p.many, SMALL_SAVE_LEN);
    report.compared(
        &format!("write+fsync+close {} x 1 KiB", p.many),
        plain_many,
        many_write,
        Some(2.0),
    );
    let many_committed = wait_for_server(&remote, &many_expected, many_start);
    report.absolute(
        &format!("all {} small saves committed on the server, from the first write", p.many),
        fmt_duration(many_committed),
        None,
    );
    let run_peak = peak_rss_bytes(a.mount_pid().expect("device A is mounted")).expect("VmHWM");
    report.absolute(
        &format!(
            "peak RSS of the mount daemon over workloads 1-7 (incl. uploading the {} MiB save)",
            p.big_mib
        ),
        fmt_mib(run_peak),
        None,
    );
    // A fresh daemon process, so the peak reflects holding and serving the saves rather
    // than an earlier upload of the big save.
    a.unmount();
    a.mount();
    let total = p.many + p.saves + 1;
    let _ = stat_all(&a.path("many"));
    let _ = read_saves(&a.path("many"), p.many, SMALL_SAVE_LEN);
    let _ = stat_all(&a.path("w"));
    let _ = read_saves(&a.path("w"), p.saves, SAVE_LEN);
    let serving_peak = peak_rss_bytes(a.mount_pid().expect("device A is mounted")).expect("VmHWM");
    report.absolute(
        &format!("peak RSS of the mount daemon with {total} saves (start, stat and read all)"),
        fmt_mib(serving_peak),
        Some("< 30 MiB"),
    );
    a.unmount();
    let server_rss = server_peak_rss(p.many);
    report.absolute(
        &format!("peak RSS of savesync-server (upload, list, download {} saves)", p.many),
        fmt_mib(server_rss),
        None,
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
