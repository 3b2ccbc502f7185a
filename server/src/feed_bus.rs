//! [`FeedBus`]: carries "user U's cursor reached seq S" between server processes that share
//! one Postgres database, so a commit on one replica wakes the long-polls and event
//! streams held by every other replica.
//!
//! Only with Postgres (`database_url`); a SQLite install is one process and its
//! [`crate::feed::Feed`] alone does the job. Each replica:
//! - sends: after a commit, [`FeedBus::send`] queues (user, seq) (at most one entry per
//!   user, the highest seq) and a task sends the queue with `pg_notify` on [`CHANNEL`],
//!   retrying with backoff while the database is unreachable;
//! - listens: a task holds a `LISTEN` connection ([`sqlx::postgres::PgListener`]) and
//!   forwards every notification into the local `Feed`. When that connection is lost it
//!   reconnects with backoff and then re-reads the cursor of every user watched here, so
//!   a notification missed while disconnected costs latency, never data.
//!
//! Both tasks use a small pool of their own, opened from `database_url`, apart from the
//! metadata store's. Notifications are hints: watchers re-read the database, and
//! `Feed::publish` only ever moves a cursor forward.

use crate::app::App;
use crate::meta::UserId;
use backon::{ExponentialBuilder, Retryable};
use savesync_core::Seq;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The Postgres notification channel.
pub const CHANNEL: &str = "savesync_feed";

/// The bus's connections show up under this name in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "savesync-feed-bus";

/// Connections of the bus's own pool: the `LISTEN` connection and the sender's.
const POOL_CONNECTIONS: u32 = 2;

/// Backoff between reconnection (and resend) attempts: from 50 ms, doubling, to 5 s.
fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
}

/// A notification's payload: `"<user>:<seq>"`.
#[must_use]
pub fn encode(user: UserId, seq: Seq) -> String {
    format!("{user}:{}", seq.0)
}

/// Parse a payload; `None` for anything that is not exactly `"<user>:<seq>"` with a
/// positive user id (the channel is open to every client of the database).
#[must_use]
pub fn decode(payload: &str) -> Option<(UserId, Seq)> {
    let (user, seq) = payload.split_once(':')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(user) || !digits(seq) {
        return None;
    }
    let user: UserId = user.parse().ok().filter(|u| *u > 0)?;
    Some((user, Seq(seq.parse().ok()?)))
}

/// The outgoing side: cursor advances waiting to be sent to the other replicas.
#[derive(Debug, Default)]
pub struct FeedBus {
    /// Highest unsent seq per user: bounded by the number of users, however fast they
    /// commit.
    pending: Mutex<HashMap<UserId, Seq>>,
    wake: Notify,
}

impl FeedBus {
    /// Queue "`user`'s cursor reached `seq`" for the other replicas. Never blocks.
    pub fn send(&self, user: UserId, seq: Seq) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = pending.entry(user).or_insert(seq);
        *entry = (*entry).max(seq);
        drop(pending);
        self.wake.notify_one();
    }

    fn take(&self) -> HashMap<UserId, Seq> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Open the bus's pool on `url` (lazily: a database that is down at start is retried in
/// the background), hand `app` its [`FeedBus`], and run the listener and the sender until
/// `shutdown`. Errors only on a URL the driver cannot parse.
pub fn start(
    app: &App,
    url: &str,
    shutdown: &CancellationToken,
) -> Result<Vec<JoinHandle<()>>, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?.application_name(APPLICATION_NAME);
    let pool = PgPoolOptions::new()
        .max_connections(POOL_CONNECTIONS)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(options);
    let Some(bus) = app.attach_feed_bus() else {
        tracing::warn!("the feed bus is already running for this app");
        return Ok(Vec::new());
    };
    Ok(vec![
        tokio::spawn(listen(app.clone(), pool.clone(), shutdown.clone())),
        tokio::spawn(send(bus, pool, shutdown.clone())),
    ])
}

/// A `LISTEN`ing connection.
async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Forward notifications into the local feed; reconnect with backoff when the connection
/// is lost, then catch up every watched user from the database.
async fn listen(app: App, pool: PgPool, shutdown: CancellationToken) {
    loop {
        let connect = (|| subscribe(&pool)).retry(backoff()).notify(|e, after| {
            tracing::warn!(error = %e, retry_in = ?after, "feed bus: cannot LISTEN");
        });
        let mut listener = tokio::select! {
            () = shutdown.cancelled() => return,
            connected = connect => match connected {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(error = %e, "feed bus: giving up a connection attempt");
                    continue;
                }
            },
        };
        tracing::debug!("feed bus: listening on {CHANNEL}");
        catch_up(&app).await;
        loop {
            let received = tokio::select! {
                () = shutdown.cancelled() => return,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notification)) => match decode(notification.payload()) {
                    Some((user, seq)) => app.feed().publish(user, seq),
                    None => tracing::debug!("feed bus: ignored a malformed notification"),
                },
                Ok(None) => {
                    tracing::warn!("feed bus: lost the LISTEN connection; reconnecting");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "feed bus: LISTEN failed; reconnecting");
                    break;
                }
            }
        }
    }
}

/// After (re)connecting: notifications sent meanwhile are gone, so re-read the cursor of
/// every user watched on this replica (waking their watchers if it moved). A user whose
/// cursor cannot be read has its watchers woken anyway; they re-read the database.
async fn catch_up(app: &App) {
    for user in app.feed().watched_users() {
        match app.meta().current_seq(user).await {
            Ok(seq) => app.feed().publish(user, seq),
            Err(e) => {
                tracing::debug!(error = %e, "feed bus: cannot re-read a cursor; waking its watchers");
                app.feed().wake(user);
            }
        }
    }
}

/// Send queued cursor advances with `pg_notify`, one statement per batch, retrying with
/// backoff while the database is unreachable.
async fn send(bus: std::sync::Arc<FeedBus>, pool: PgPool, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = bus.wake.notified() => {}
        }
        let batch = bus.take();
        if batch.is_empty() {
            continue;
        }
        let payloads: Vec<String> = batch.iter().map(|(user, seq)| encode(*user, *seq)).collect();
        let notify = || async {
            sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
                .bind(CHANNEL)
                .bind(&payloads)
                .execute(&pool)
                .await
        };
        let sent = notify.retry(backoff()).notify(|e, after| {
            tracing::warn!(error = %e, retry_in = ?after, "feed bus: cannot NOTIFY");
        });
        tokio::select! {
            () = shutdown.cancelled() => return,
            result = sent => if let Err(e) = result {
                tracing::warn!(error = %e, "feed bus: dropped cursor notifications");
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_anything_else_is_refused() {
        assert_eq!(encode(7, Seq(42)), "7:42");
        assert_eq!(decode("7:42"), Some((7, Seq(42))));
        assert_eq!(decode(&encode(i64::MAX, Seq(u64::MAX))), Some((i64::MAX, Seq(u64::MAX))));
        for bad in [
            "",
            ":",
            "7:",
            ":42",
            "7",
            "7:42:1",
            "-7:42",
            "0:42",
            "7:-1",
            " 7:42",
            "7:42 ",
            "+7:42",
            "a:1",
            "7:1e3",
            "99999999999999999999:1",
            "1:99999999999999999999999",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_queue_keeps_one_entry_per_user_with_the_highest_seq() {
        let bus = FeedBus::default();
        bus.send(1, Seq(5));
        bus.send(1, Seq(3));
        bus.send(2, Seq(1));
        bus.send(1, Seq(9));
        let mut batch: Vec<_> = bus.take().into_iter().collect();
        batch.sort();
        assert_eq!(batch, vec![(1, Seq(9)), (2, Seq(1))]);
        assert!(bus.take().is_empty());
    }
}
