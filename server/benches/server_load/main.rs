//! Server load benchmark (a benchmark, not a test): a real server on loopback driven by
//! the real client, printing figures rather than asserting them.
//!
//! Run with `cargo bench -p savesync-server --bench server_load` (release build). On each
//! backend (`backends.rs`: SQLite + blob dir, Postgres + blob dir, Postgres + S3 on moto; a
//! backend whose service is not installed is skipped with a line saying so) it measures:
//! 1. negotiate with a 10,000-save manifest, after uploading 10,000 tiny saves (p50/max
//!    latency over a few runs, for a device in sync and for a fresh device);
//! 2. 1,000 uploads of 64 KiB by 8 concurrent clients (total time, uploads/s, MiB/s,
//!    p50/p99 latency);
//! 3. on backends several processes can share: the same uploads through two replicas (two
//!    servers on one database, clients alternating), and the latency of a commit on one
//!    replica reaching a long-poll on the other.
//!
//! Once: the same 1,000 x 64 KiB written with fsync to a plain local directory by 8
//! workers, and the ratio of (2) to it. Every loop is bounded.
//!
//! `-- --backend NAME` (repeatable: `sqlite+dir`, `postgres+dir`, `postgres+s3`) measures
//! only the named backends.

mod backends;
mod scale;

use backends::Backend;
use bytes::Bytes;
use futures::StreamExt;
use savesync_client::{Client, RetryPolicy};
use savesync_core::wire::ManifestEntry;
use savesync_core::{Rev, SavePath};
use savesync_server::{App, Config, launch};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

const TINY_SAVES: usize = 10_000;
const NEGOTIATE_RUNS: usize = 5;
const UPLOADS: usize = 1_000;
const UPLOAD_BYTES: usize = 64 * 1024;
const CLIENTS: usize = 8;
const FEED_SAMPLES: usize = 20;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // `cargo bench` passes `--bench`; `-- --scale [USERS] [SAVES_PER_USER]` picks the scale
    // run (`scale.rs`) instead of the per-backend figures.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.first().map(String::as_str) == Some("--scale") {
        let number = |i: usize, default: u64| -> anyhow::Result<u64> {
            args.get(i).map_or(Ok(default), |a| {
                a.parse().map_err(|e| anyhow::anyhow!("--scale {a:?}: {e}"))
            })
        };
        let (users, per_user) = (number(1, 1_000)?, number(2, 1_000)?);
        anyhow::ensure!(users >= 2, "--scale needs at least 2 users");
        return runtime.block_on(scale::run(users, per_user));
    }
    let only = backend_filter(&args)?;
    runtime.block_on(run(&only))
}

/// The backends named by `--backend NAME` arguments (all of them when none is named).
fn backend_filter(args: &[String]) -> anyhow::Result<Vec<Backend>> {
    let mut only = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        anyhow::ensure!(arg == "--backend", "unknown argument {arg:?}");
        let name = args.next().ok_or_else(|| anyhow::anyhow!("--backend needs a name"))?;
        let backend = Backend::ALL
            .into_iter()
            .find(|b| b.name() == name)
            .ok_or_else(|| anyhow::anyhow!("no backend named {name:?}"))?;
        only.push(backend);
    }
    Ok(if only.is_empty() { Backend::ALL.to_vec() } else { only })
}

/// One server on loopback until dropped.
struct Server {
    app: App,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    async fn start(config: Config) -> anyhow::Result<Server> {
        let app = App::connect(config).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(launch(app.clone(), listener, async move {
            let _ = stopped.await;
        }));
        Ok(Server { app, url, stop: Some(stop) })
    }

    /// `n` paired clients of `user`, the i-th talking to `servers[i % len]`.
    async fn clients(servers: &[&Server], user: &str, n: usize) -> anyhow::Result<Vec<Client>> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let server = servers[i % servers.len()];
            let code = server.app.pairing_code(user).await?;
            let paired = Client::new(&server.url, None)?
                .pair(&code.code, &format!("dev{i}"), "bench")
                .await?;
            out.push(
                Client::new(&server.url, Some(paired.token))?
                    .with_retry(RetryPolicy::none())
                    .with_timeout(Duration::from_secs(60)),
            );
        }
        Ok(out)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn run(backends: &[Backend]) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let local_time = local_fsync_baseline(&scratch.path().join("plain-dir")).await?;
    for &backend in backends {
        let dir = scratch.path().join(backend.name());
        let config = match backend.config(&dir) {
            Ok(config) => config,
            Err(why) => {
                println!("\n== {}: skipped ({why})", backend.name());
                continue;
            }
        };
        println!("\n== {}", backend.name());
        let server = Server::start(config.clone()).await?;
        let clients = Server::clients(&[&server], "bench", CLIENTS).await?;
        negotiate_benchmark(&clients).await?;
        let one = upload_benchmark(&clients, "one server").await?;
        println!(
            "ratio: uploads take {:.2}x the time of plain fsynced local writes",
            one.as_secs_f64() / local_time.as_secs_f64()
        );
        if backend.shared() {
            let second = Server::start(config).await?;
            let both = Server::clients(&[&server, &second], "replicas", CLIENTS).await?;
            let two = upload_benchmark(&both, "two replicas").await?;
            println!(
                "ratio: two replicas take {:.2}x the time of one",
                two.as_secs_f64() / one.as_secs_f64()
            );
            feed_latency(&both[0], &both[1]).await?;
        }
    }
    Ok(())
}

/// A commit through `writer` (one replica) reaching the event stream of `reader` (the
/// other): the server-sent cursor announcement, as a device's feed follower sees it.
async fn feed_latency(writer: &Client, reader: &Client) -> anyhow::Result<()> {
    let path = SavePath::parse("bench/feed/ping.sav")?;
    let mut events = Box::pin(reader.events().await?);
    // The first event is the current cursor: the stream is connected from here on.
    let mut seen = events.next().await.ok_or_else(|| anyhow::anyhow!("no first event"))??.cursor;
    let mut rev = Rev::NONE;
    let mut latencies = Vec::with_capacity(FEED_SAMPLES);
    for i in 0..FEED_SAMPLES {
        let started = Instant::now();
        let head = writer.upload(&path, rev, Bytes::from(format!("ping {i}"))).await?;
        rev = head.rev;
        loop {
            let next = tokio::time::timeout(Duration::from_secs(30), events.next())
                .await
                .map_err(|_| anyhow::anyhow!("no announcement within 30 s"))?
                .ok_or_else(|| anyhow::anyhow!("the event stream ended"))??;
            seen = seen.max(next.cursor);
            if seen >= head.seq {
                break;
            }
        }
        latencies.push(started.elapsed());
    }
    latencies.sort_unstable();
    println!(
        "feed across replicas: upload on one -> announced on the other's event stream: \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {FEED_SAMPLES}",
        ms(percentile(&latencies, 50)),
        ms(percentile(&latencies, 99)),
        ms(latencies.last().copied().unwrap_or_default())
    );
    Ok(())
}

/// Upload 10,000 tiny saves, then time negotiate with a 10,000-entry manifest.
async fn negotiate_benchmark(clients: &[Client]) -> anyhow::Result<()> {
    let started = Instant::now();
    let heads: Vec<_> = futures::stream::iter(0..TINY_SAVES)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            async move {
                let path = SavePath::parse(&format!("bench/tiny/{i:05}.sav"))?;
                let head =
                    client.upload(&path, Rev::NONE, Bytes::from(format!("save {i}"))).await?;
                anyhow::Ok(head)
            }
        })
        .buffer_unordered(clients.len())
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let took = started.elapsed();
    println!(
        "setup: {TINY_SAVES} tiny uploads in {:.2} s ({:.0} uploads/s, {CLIENTS} clients)",
        took.as_secs_f64(),
        TINY_SAVES as f64 / took.as_secs_f64()
    );

    let in_sync: Vec<ManifestEntry> = heads
        .iter()
        .map(|h| ManifestEntry { path: h.path.clone(), local: h.hash, base: Some(h.version()) })
        .collect();
    let client = &clients[0];
    let mut latencies = Vec::with_capacity(NEGOTIATE_RUNS);
    for _ in 0..NEGOTIATE_RUNS {
        let started = Instant::now();
        let plan = client.negotiate(in_sync.clone()).await?;
        latencies.push(started.elapsed());
        anyhow::ensure!(plan.actions.is_empty(), "an in-sync manifest needs no actions");
    }
    print_latencies("negotiate, 10,000-entry manifest, device in sync", &mut latencies);

    let mut latencies = Vec::with_capacity(NEGOTIATE_RUNS);
    for _ in 0..NEGOTIATE_RUNS {
        let started = Instant::now();
        let plan = client.negotiate(Vec::new()).await?;
        latencies.push(started.elapsed());
        anyhow::ensure!(plan.actions.len() == TINY_SAVES, "a fresh device downloads every save");
    }
    print_latencies("negotiate, empty manifest -> 10,000 downloads (fresh device)", &mut latencies);
    Ok(())
}

/// 1,000 uploads of 64 KiB spread over the clients, each client sequential.
async fn upload_benchmark(clients: &[Client], label: &str) -> anyhow::Result<Duration> {
    let per_client = UPLOADS / clients.len();
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(c, client)| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let path = SavePath::parse(&format!("bench/big/c{c}/{i:04}.srm"))?;
                    let body = Bytes::from(payload(c * per_client + i));
                    let t = Instant::now();
                    client.upload(&path, Rev::NONE, body).await?;
                    latencies.push(t.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(UPLOADS);
    for task in tasks {
        latencies.extend(task.await??);
    }
    let total = started.elapsed();
    let count = latencies.len();
    let mib = (count * UPLOAD_BYTES) as f64 / (1024.0 * 1024.0);
    latencies.sort_unstable();
    println!(
        "uploads ({label}): {count} x 64 KiB by {} clients in {:.2} s: {:.0} uploads/s, \
         {:.1} MiB/s, latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        clients.len(),
        total.as_secs_f64(),
        count as f64 / total.as_secs_f64(),
        mib / total.as_secs_f64(),
        ms(percentile(&latencies, 50)),
        ms(percentile(&latencies, 99)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
    Ok(total)
}

/// The same 1,000 x 64 KiB written by 8 workers to a plain directory, each file fsynced.
async fn local_fsync_baseline(dir: &Path) -> anyhow::Result<Duration> {
    std::fs::create_dir_all(dir)?;
    let per_worker = UPLOADS / CLIENTS;
    let started = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|w| {
            let dir = dir.to_path_buf();
            tokio::task::spawn_blocking(move || {
                for i in 0..per_worker {
                    let mut file = std::fs::File::create(dir.join(format!("w{w}-{i:04}.srm")))?;
                    file.write_all(&payload(w * per_worker + i))?;
                    file.sync_all()?;
                }
                std::io::Result::Ok(())
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    let total = started.elapsed();
    let mib = (UPLOADS * UPLOAD_BYTES) as f64 / (1024.0 * 1024.0);
    println!(
        "local baseline: {UPLOADS} x 64 KiB written + fsynced by {CLIENTS} workers in {:.2} s: \
         {:.0} files/s, {:.1} MiB/s",
        total.as_secs_f64(),
        UPLOADS as f64 / total.as_secs_f64(),
        mib / total.as_secs_f64()
    );
    Ok(total)
}

/// 64 KiB that differ per upload (so the blob store cannot dedupe them), cheaply.
fn payload(n: usize) -> Vec<u8> {
    let mut state = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..UPLOAD_BYTES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn print_latencies(what: &str, latencies: &mut [Duration]) {
    latencies.sort_unstable();
    println!(
        "{what}: p50 {:.1} ms, max {:.1} ms over {} runs",
        ms(percentile(latencies, 50)),
        ms(latencies.last().copied().unwrap_or_default()),
        latencies.len()
    );
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
