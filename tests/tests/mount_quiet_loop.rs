//! The device's sync loop is quiet when nothing happens: an idle, online mount keeps one
//! event stream open (the server's keep-alives count as signs of life) and reads no save
//! bytes; an offline mount probes the server cheaply instead of re-hashing its library, and
//! finds the server again without re-hashing unchanged saves. Intervals are shortened
//! (server keep-alive, device silence limit, offline backoff) and each check spans several
//! of them.

use savesync_tests::{
    Device, RemoteView, SoloDevice, TestServer, poll_until, require_fuse, save_bytes, wait_until,
};
use std::time::Duration;

const USER: &str = "quinn";
/// Server keep-alive interval in these tests.
const KEEP_ALIVE: Duration = Duration::from_millis(200);
/// Device silence limit in these tests: five keep-alives.
const SILENCE_MS: &str = "1000";
/// Offline backoff cap in these tests.
const BACKOFF_MAX_MS: &str = "500";
const SYNC_DEADLINE: Duration = Duration::from_secs(60);

/// `/proc/PID/io` of the mount daemon: (rchar, read_bytes).
fn proc_io(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("read /proc/PID/io");
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} missing from /proc/{pid}/io"))
    };
    (field("rchar:"), field("read_bytes:"))
}

/// Sum of the metric lines starting with `name` that contain every one of `labels`.
fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
        .filter(|l| labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn metrics(view: &RemoteView) -> String {
    view.block_on(view.client().metrics()).expect("GET /metrics")
}

/// `save_bytes_read` once the status row was written after now (the daemon rewrites it
/// within moments of a change, and every few seconds anyway), so every read made before
/// this call is counted.
fn settled_bytes_read(dev: &Device) -> u64 {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as i64;
    wait_until(Duration::from_secs(20), "a fresh status row", || {
        let st = dev.status_json();
        (st["status_updated_ms"].as_i64()? > now).then(|| st["save_bytes_read"].as_u64())?
    })
}

fn online(dev: &Device) -> bool {
    dev.status_json()["online"] == serde_json::json!(true)
}

/// Write `n` saves of `len` bytes and wait until all reached the server and the queue
/// drained.
fn write_saves(dev: &Device, view: &RemoteView, n: u64, len: usize) -> Vec<String> {
    let paths: Vec<String> = (0..n).map(|i| format!("lib{}/save-{i}.srm", i % 10)).collect();
    for d in 0..10.min(n) {
        std::fs::create_dir_all(dev.path(&format!("lib{d}"))).unwrap();
    }
    for (i, p) in paths.iter().enumerate() {
        std::fs::write(dev.path(p), save_bytes(9000 + i as u64, len)).unwrap();
    }
    wait_until(SYNC_DEADLINE, "every save on the server", || {
        (view.try_saves()?.len() as u64 == n).then_some(())
    });
    wait_until(SYNC_DEADLINE, "the queue to drain", || {
        (dev.status_json()["pending"] == serde_json::json!(0)).then_some(())
    });
    paths
}

#[test]
fn an_idle_online_mount_keeps_one_event_stream_and_reads_no_save_bytes() {
    if !require_fuse() {
        return;
    }
    let server = TestServer::start_with_config(|c| c.sse_keep_alive = KEEP_ALIVE);
    let view = RemoteView::new(&server, USER);
    let mut a = Device::pair(&server, USER, "idle-a");
    a.mount_with_args(&["--event-silence-ms", SILENCE_MS]);
    write_saves(&a, &view, 16, 64 * 1024);
    wait_until(SYNC_DEADLINE, "the mount online", || online(&a).then_some(()));
    wait_until(SYNC_DEADLINE, "one event stream", || {
        (metric(&metrics(&view), "savesync_sse_clients", &[]) == 1.0).then_some(())
    });
    let pid = a.mount_pid().expect("mounted");
    let streams_opened = |m: &str| metric(m, "savesync_http_requests_total", &["events"]);
    let opened_before = streams_opened(&metrics(&view));
    let read_before = settled_bytes_read(&a);
    assert!(read_before >= 16 * 64 * 1024, "each save was read to upload it: {read_before}");
    let io_before = proc_io(pid);

    // Idle for six silence limits (thirty keep-alive intervals), watching the streams.
    let mut samples = 0u32;
    let idle = poll_until(Duration::from_secs(6), || {
        let m = metrics(&view);
        assert_eq!(metric(&m, "savesync_sse_clients", &[]), 1.0, "exactly one event stream");
        assert_eq!(streams_opened(&m), opened_before, "no reconnect while idle");
        samples += 1;
        None::<()>
    });
    assert!(idle.is_none() && samples > 10, "the idle period was watched ({samples} samples)");

    assert!(online(&a), "still online after six silence limits");
    let io_after = proc_io(pid);
    assert_eq!(settled_bytes_read(&a), read_before, "the engine read no save bytes while idle");
    // rchar also counts SSE bytes and SQLite page reads; one re-hash alone is 1 MiB.
    assert!(
        io_after.0 - io_before.0 < 512 * 1024,
        "the daemon read {} bytes (rchar) while idle",
        io_after.0 - io_before.0
    );
    assert!(io_after.1 - io_before.1 < 64 * 1024, "read_bytes from storage while idle");
    let log = std::fs::read_to_string(a.log_path()).unwrap();
    assert!(!log.contains("server connection lost"), "{}", a.log_tail());
    assert!(!log.contains("went silent"), "{}", a.log_tail());
}

#[test]
fn an_offline_mount_reads_no_save_bytes_and_comes_back_without_rehashing() {
    if !require_fuse() {
        return;
    }
    // 1,000 saves of 1 KiB (small to keep the test fast; the figure that matters is that
    // nothing is read at all while offline, and nothing unchanged after).
    let mut server = TestServer::start_blocking();
    let view = RemoteView::new(&server, USER);
    let mut a = Device::pair(&server, USER, "offline-a");
    a.mount_with_args(&["--offline-backoff-max-ms", BACKOFF_MAX_MS]);
    write_saves(&a, &view, 1000, 1024);
    let pid = a.mount_pid().expect("mounted");
    let read_before = settled_bytes_read(&a);
    assert!(read_before >= 1000 * 1024, "each save was read to upload it: {read_before}");

    server.stop_blocking();
    wait_until(SYNC_DEADLINE, "the mount offline", || (!online(&a)).then_some(()));
    let io_before = proc_io(pid);
    let read_offline = settled_bytes_read(&a);
    // Ten backoff caps with the server down.
    let down = poll_until(Duration::from_secs(5), || {
        assert!(!online(&a), "offline while the server is down");
        None::<()>
    });
    assert!(down.is_none());
    let io_after = proc_io(pid);
    assert_eq!(settled_bytes_read(&a), read_offline, "the engine read no save bytes offline");
    assert!(
        io_after.0 - io_before.0 < 256 * 1024,
        "the daemon read {} bytes (rchar) while offline; the library is 1,000 KiB",
        io_after.0 - io_before.0
    );
    assert!(io_after.1 - io_before.1 < 64 * 1024, "read_bytes from storage while offline");

    server.restart_blocking();
    // Bounded: one backoff cap plus the reconnect.
    wait_until(Duration::from_secs(10), "online again", || online(&a).then_some(()));
    // Online is reported once the probe answers; the negotiation follows it.
    wait_until(SYNC_DEADLINE, "renegotiated after return", || {
        let log = std::fs::read_to_string(a.log_path()).unwrap();
        (log.matches("negotiated with the server").count() >= 2).then_some(())
    });
    assert_eq!(settled_bytes_read(&a), read_before, "no unchanged save was hashed again");
}

#[test]
fn last_error_clears_once_the_server_is_back() {
    let Some(SoloDevice { mut server, view, a }) = SoloDevice::start(USER, "error-a") else {
        return;
    };
    write_saves(&a, &view, 1, 100);
    assert!(a.status_json()["last_error"].is_null(), "no error while healthy");
    server.stop_blocking();
    let err = wait_until(SYNC_DEADLINE, "last_error while the server is down", || {
        a.status_json()["last_error"].as_str().map(str::to_owned)
    });
    println!("last_error while down: {err}");
    server.restart_blocking();
    wait_until(SYNC_DEADLINE, "last_error cleared once the server is back", || {
        let st = a.status_json();
        (st["online"] == serde_json::json!(true) && st["last_error"].is_null()).then_some(())
    });
    // Healthy again means uploads work too.
    std::fs::write(a.path("lib0/after.srm"), b"after").unwrap();
    wait_until(SYNC_DEADLINE, "an upload after the outage", || {
        view.has("lib0/after.srm", b"after").then_some(())
    });
    assert!(a.status_json()["last_error"].is_null(), "still no error after the upload");
}
