//! The changes feed across replicas: two server processes' worth of `App`s on one Postgres
//! database (a throwaway cluster, `savesync_testenv::postgres`) and one data directory. A
//! commit through replica 1 wakes a long-poll and an event stream held by replica 2 (the
//! feed bus, `LISTEN/NOTIFY`), also after the bus's `LISTEN` connections were killed.

use futures::StreamExt;
use savesync_client::{Client, RetryPolicy};
use savesync_core::wire::SaveMeta;
use savesync_core::{Rev, SavePath};
use savesync_server::{App, Config, launch};
use sqlx::Connection;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Upper bound for anything a test waits for.
const DEADLINE: Duration = Duration::from_secs(10);
/// What "crosses replicas at once" means here.
const CROSSING: Duration = Duration::from_secs(1);

struct Replica {
    app: App,
    base_url: String,
    _stop: oneshot::Sender<()>,
}

impl Replica {
    async fn start(data_dir: &std::path::Path, database_url: &str) -> Replica {
        let mut config = Config::with_data_dir(data_dir);
        config.database_url = Some(database_url.to_owned());
        let app = App::connect(config).await.expect("connect app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("local addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(launch(app.clone(), listener, async move {
            let _ = stopped.await;
        }));
        Replica { app, base_url, _stop: stop }
    }

    fn client(&self, token: &str) -> Client {
        Client::new(&self.base_url, Some(token.to_owned()))
            .expect("client")
            .with_retry(RetryPolicy::none())
            .with_timeout(Duration::from_secs(60))
    }
}

/// Two replicas on a fresh database, and one device's token (code minted on replica 1,
/// redeemed on replica 2).
async fn two_replicas() -> Option<(tempfile::TempDir, String, Replica, Replica, String)> {
    let Some(url) = savesync_testenv::postgres::fresh_database() else {
        eprintln!("SKIPPED: {}", savesync_testenv::postgres::MISSING);
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let one = Replica::start(dir.path(), &url).await;
    let two = Replica::start(dir.path(), &url).await;
    // Minted by replica 1, redeemed on replica 2: both key codes with the data dir's
    // pairing.key.
    let code = one.app.pairing_code("alice").await.unwrap();
    let anonymous = Client::new(&two.base_url, None).unwrap().with_retry(RetryPolicy::none());
    let paired = anonymous.pair(&code.code, "deck", "test").await.unwrap();
    Some((dir, url, one, two, paired.token))
}

async fn put(client: &Client, path: &str, base: Rev, bytes: &[u8]) -> SaveMeta {
    let path = SavePath::parse(path).unwrap();
    client.upload(&path, base, bytes.to_vec().into()).await.expect("upload")
}

/// Backends of the feed bus currently `LISTEN`ing on the database.
async fn listeners(url: &str) -> Vec<i32> {
    let mut db = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = 'savesync-feed-bus' AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&mut db)
    .await
    .unwrap()
}

/// Poll `check` until it holds or the deadline passes.
async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_on_one_replica_wakes_a_long_poll_on_the_other() {
    let Some((_dir, url, one, two, token)) = two_replicas().await else { return };
    wait_for("both replicas to LISTEN", || async { listeners(&url).await.len() == 2 }).await;
    let (writer, poller) = (one.client(&token), two.client(&token));
    let cursor = poller.list(None, false).await.unwrap().cursor;
    let poll = tokio::spawn(async move {
        let page = poller.changes(cursor, Duration::from_secs(30), None).await;
        (page, Instant::now())
    });
    // Let the poll reach replica 2: a round trip to it, no sleep.
    two.client(&token).health().await.unwrap();
    let head = put(&writer, "gba/emerald.sav", Rev::NONE, b"through replica 1").await;
    let committed = Instant::now();
    let (page, woke) = tokio::time::timeout(DEADLINE, poll).await.expect("long-poll woke").unwrap();
    assert_eq!(page.unwrap().changes, vec![head]);
    let latency = woke.saturating_duration_since(committed);
    eprintln!("long-poll on replica 2 woke {latency:?} after the commit on replica 1");
    assert!(latency < CROSSING, "woke {latency:?} after the commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_keep_crossing_after_the_listen_connections_are_killed() {
    let Some((_dir, url, one, two, token)) = two_replicas().await else { return };
    wait_for("both replicas to LISTEN", || async { listeners(&url).await.len() == 2 }).await;
    let writer = one.client(&token);
    let mut events = Box::pin(two.client(&token).events().await.unwrap());
    let first = tokio::time::timeout(DEADLINE, events.next()).await.unwrap().unwrap().unwrap();

    let mut base = Rev::NONE;
    for round in 0..3 {
        // A commit crosses to replica 2's event stream within a second.
        let head = put(&writer, "gba/emerald.sav", base, format!("round {round}").as_bytes()).await;
        let committed = Instant::now();
        let event = tokio::time::timeout(DEADLINE, events.next()).await.expect("cursor event");
        let latency = committed.elapsed();
        assert_eq!(event.unwrap().unwrap().cursor, head.seq);
        eprintln!("round {round}: event on replica 2 {latency:?} after the commit on replica 1");
        assert!(latency < CROSSING, "round {round}: announced after {latency:?}");
        base = head.rev;

        // Kill every LISTEN connection of the bus, as a failover or an idle reaper would.
        let before = listeners(&url).await;
        assert_eq!(before.len(), 2, "{before:?}");
        let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
        for pid in &before {
            let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                .bind(pid)
                .fetch_one(&mut db)
                .await
                .unwrap();
            assert!(killed, "could not terminate backend {pid}");
        }
        // A commit while replica 2 may not be listening yet: it must still arrive (the
        // reconnect catches up from the database), then the bus is back.
        let missed = put(&writer, "gba/emerald.sav", base, format!("gap {round}").as_bytes()).await;
        let event = tokio::time::timeout(DEADLINE, events.next()).await.expect("caught up");
        assert_eq!(event.unwrap().unwrap().cursor, missed.seq);
        assert!(missed.seq > first.cursor);
        base = missed.rev;
        wait_for("the bus to LISTEN again", || async {
            let now = listeners(&url).await;
            now.len() == 2 && now.iter().all(|pid| !before.contains(pid))
        })
        .await;
    }
}
