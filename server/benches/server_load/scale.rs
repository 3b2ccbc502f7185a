//! The scale run (`cargo bench -p savesync-server --bench server_load -- --scale [USERS]
//! [SAVES_PER_USER]`, default 1,000 x 1,000 = 1,000,000 saves): a Postgres database seeded
//! straight through the metadata tables (`TableAccess`, as an import does) with USERS
//! users of SAVES_PER_USER saves each, one of them holding 10,000; then two real
//! `savesync-server serve` processes on it. Figures: the seeding rate, negotiate p50/p99
//! for the 10,000-save device, a commit on one replica reaching the other's event stream,
//! and each replica process's resident memory after the load.

use crate::{Client, RetryPolicy, feed_latency, ms, percentile};
use savesync_core::wire::ManifestEntry;
use savesync_core::{ContentHash, Rev, SavePath, Version};
use savesync_server::meta::tables::Cell;
use savesync_server::{App, Config};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const BIG_DEVICE_SAVES: u64 = 10_000;
const NEGOTIATE_RUNS: usize = 20;
const PAGE: usize = 2_000;

/// A `serve` process, killed when dropped.
struct Replica {
    child: Child,
    url: String,
}

impl Replica {
    async fn start(dir: &std::path::Path, database_url: &str) -> anyhow::Result<Replica> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let url = format!("http://127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_savesync-server"))
            .arg("serve")
            .env("SAVESYNC_DATA_DIR", dir)
            .env("SAVESYNC_DATABASE_URL", database_url)
            .env("SAVESYNC_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .spawn()?;
        let replica = Replica { child, url };
        let deadline = Instant::now() + Duration::from_secs(30);
        let probe = Client::new(&replica.url, None)?.with_retry(RetryPolicy::none());
        while probe.health().await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "{} did not come up", replica.url);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(replica)
    }

    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

/// Seed `users` users (user 1 with 10,000 saves, the rest with `per_user`); returns the
/// 10,000 heads of user 1 as an in-sync manifest.
async fn seed(app: &App, users: u64, per_user: u64) -> anyhow::Result<Vec<ManifestEntry>> {
    let tables = app.meta().tables();
    let now = 1_800_000_000i64;
    let hash = ContentHash::of(b"seeded save");
    let hex = hash.to_hex();
    let cols = |names: &[&str]| names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let user_cols = cols(&["id", "name", "seq", "created_at"]);
    let save_cols = cols(&[
        "id",
        "user_id",
        "path",
        "rev",
        "seq",
        "hash",
        "size",
        "deleted",
        "committed_at",
        "device_id",
        "fold",
    ]);
    let version_cols = cols(&[
        "id",
        "user_id",
        "path",
        "kind",
        "rev",
        "seq",
        "hash",
        "size",
        "device_id",
        "created_at",
    ]);
    let count = |u: u64| if u == 1 { BIG_DEVICE_SAVES } else { per_user };
    let user_rows: Vec<Vec<Cell>> = (1..=users)
        .map(|u| {
            vec![
                Cell::Int(u as i64),
                text(format!("u{u}")),
                Cell::Int(count(u) as i64),
                Cell::Int(now),
            ]
        })
        .collect();
    for page in user_rows.chunks(PAGE) {
        tables.insert_rows("users", &user_cols, &page.to_vec()).await?;
    }
    let started = Instant::now();
    let (mut id, mut saves, mut versions) = (0i64, Vec::new(), Vec::new());
    let mut manifest = Vec::new();
    let mut total = 0u64;
    for u in 1..=users {
        for j in 0..count(u) {
            id += 1;
            let path = format!("lib/{:03}/s{j:05}.sav", j % 100);
            if u == 1 {
                manifest.push(ManifestEntry {
                    path: SavePath::parse(&path)?,
                    local: Some(hash),
                    base: Some(Version { rev: Rev(1), hash: Some(hash) }),
                });
            }
            let seq = Cell::Int(j as i64 + 1);
            saves.push(vec![
                Cell::Int(id),
                Cell::Int(u as i64),
                text(&path),
                Cell::Int(1),
                seq.clone(),
                text(&hex),
                Cell::Int(11),
                Cell::Int(0),
                Cell::Int(now),
                Cell::Null,
                text(savesync_core::fold_key(&path)),
            ]);
            versions.push(vec![
                Cell::Int(id),
                Cell::Int(u as i64),
                text(&path),
                text("commit"),
                Cell::Int(1),
                seq,
                text(&hex),
                Cell::Int(11),
                Cell::Null,
                Cell::Int(now),
            ]);
            if saves.len() == PAGE {
                tables.insert_rows("saves", &save_cols, &saves).await?;
                tables.insert_rows("versions", &version_cols, &versions).await?;
                total += saves.len() as u64;
                saves.clear();
                versions.clear();
                if total.is_multiple_of(100_000) {
                    eprintln!("  seeded {total} saves");
                }
            }
        }
    }
    if !saves.is_empty() {
        tables.insert_rows("saves", &save_cols, &saves).await?;
        tables.insert_rows("versions", &version_cols, &versions).await?;
        total += saves.len() as u64;
    }
    tables.finish_import().await?;
    let took = started.elapsed();
    println!(
        "seeded {users} users, {total} saves (and as many versions) in {:.1} s ({:.0} saves/s)",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64()
    );
    Ok(manifest)
}

pub async fn run(users: u64, per_user: u64) -> anyhow::Result<()> {
    let Some(url) = savesync_testenv::postgres::fresh_database() else {
        println!("scale run skipped: {}", savesync_testenv::postgres::MISSING);
        return Ok(());
    };
    let scratch = tempfile::tempdir()?;
    let mut config = Config::with_data_dir(scratch.path());
    config.set_database_url(url.clone())?;
    let app = App::connect(config).await?;
    println!("\n== scale run on postgres: {users} users x {per_user} saves");
    let manifest = seed(&app, users, per_user).await?;

    let one = Replica::start(scratch.path(), &url).await?;
    let two = Replica::start(scratch.path(), &url).await?;
    let mut clients = Vec::new();
    for (i, replica) in [&one, &two].into_iter().enumerate() {
        let code = app.pairing_code("u1").await?;
        let paired =
            Client::new(&replica.url, None)?.pair(&code.code, &format!("big{i}"), "bench").await?;
        clients.push(
            Client::new(&replica.url, Some(paired.token))?
                .with_retry(RetryPolicy::none())
                .with_timeout(Duration::from_secs(60)),
        );
    }
    let mut latencies = Vec::with_capacity(NEGOTIATE_RUNS);
    for _ in 0..NEGOTIATE_RUNS {
        let started = Instant::now();
        let plan = clients[0].negotiate(manifest.clone()).await?;
        latencies.push(started.elapsed());
        anyhow::ensure!(plan.actions.is_empty(), "the seeded device is in sync");
    }
    latencies.sort_unstable();
    println!(
        "negotiate, 10,000-save device among {} saves: p50 {:.1} ms, p99 {:.1} ms over {NEGOTIATE_RUNS}",
        (users - 1) * per_user + BIG_DEVICE_SAVES,
        ms(percentile(&latencies, 50)),
        ms(percentile(&latencies, 99)),
    );
    feed_latency(&clients[0], &clients[1]).await?;
    println!(
        "memory: replica 1 {:.1} MiB RSS, replica 2 {:.1} MiB RSS",
        one.rss_mib(),
        two.rss_mib()
    );
    Ok(())
}
