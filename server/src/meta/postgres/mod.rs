//! [`PgMetaStore`]: the metadata store on Postgres (sqlx), for installs that run several
//! server processes on one database. Same contract and semantics as the SQLite store
//! (`super::sqlite`); the files here mirror its split, statement for statement where the
//! dialects agree.
//!
//! Concurrency: every write is one transaction. A commit first locks its user's row
//! (`SELECT ... FOR UPDATE`), so commits of one user are serialised across every process
//! on the database: the head read, the rev check and the write are one atomic step, and
//! each user's `seq` is handed out in commit order (the changes feed never skips a commit
//! that lands late). Pairing codes and login links are used up by one conditional
//! `UPDATE ... RETURNING`, so two processes redeeming the same code give one winner.
//!
//! Driver: the pool lives on a small runtime of its own ([`driver`]), so the store answers
//! from any caller: a tokio worker, a current-thread test runtime that is blocked on
//! something else, or the admin CLI's plain `block_on`.

mod accounts;
mod activity;
mod commit;
mod conflict_versions;
mod dav;
mod driver;
mod errors;
mod names;
mod quota;
mod remotes;
mod rows;
mod saves;
mod store;
mod tables;
mod web;

use super::MetaError;
use driver::Driver;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The migrations of `server/migrations/postgres`, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a caller waits for a free pooled connection before `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection settings beyond the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgSettings {
    /// Most connections this process opens to the database.
    pub max_connections: u32,
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings { max_connections: 16 }
    }
}

/// The Postgres metadata store. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct PgMetaStore {
    pool: PgPool,
    driver: Arc<Driver>,
}

/// The schema version the database is at after [`PgMetaStore::migrate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaVersion {
    /// The newest migration applied to the database.
    pub applied: Option<i64>,
    /// The newest migration this binary knows.
    pub latest: i64,
}

impl PgMetaStore {
    /// Connect to `url` (`postgres://user:password@host:port/db`, or with `?host=/dir` for
    /// a unix socket). Does not touch the schema: call [`PgMetaStore::migrate`].
    pub async fn connect(url: &str, settings: PgSettings) -> Result<PgMetaStore, MetaError> {
        let options = PgConnectOptions::from_str(url).map_err(errors::classify)?;
        let driver = Arc::new(Driver::start()?);
        let pool = driver
            .spawn(async move {
                PgPoolOptions::new()
                    .max_connections(settings.max_connections.max(1))
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(errors::classify)
            })
            .await?;
        Ok(PgMetaStore { pool, driver })
    }

    /// [`PgMetaStore::connect`], then bring the schema up to date.
    pub async fn open(url: &str, settings: PgSettings) -> Result<PgMetaStore, MetaError> {
        let store = PgMetaStore::connect(url, settings).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Apply the migrations the database lacks (several processes may do this at once:
    /// sqlx serialises them on an advisory lock) and report the version reached.
    pub async fn migrate(&self) -> Result<SchemaVersion, MetaError> {
        self.run(|pool| async move {
            MIGRATOR.run(&pool).await?;
            let applied: Option<i64> =
                sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                    .fetch_one(&pool)
                    .await?;
            Ok(SchemaVersion { applied, latest: latest_migration() })
        })
        .await
    }

    /// Run `f` with the pool on the store's own runtime (see the module docs).
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, MetaError>
    where
        T: Send + 'static,
        F: FnOnce(PgPool) -> Fut,
        Fut: Future<Output = Result<T, MetaError>> + Send + 'static,
    {
        self.driver.spawn(f(self.pool.clone())).await
    }
}

/// The newest migration version embedded in this binary.
#[must_use]
pub fn latest_migration() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// A connection from the pool, for reads that need no transaction.
async fn conn(pool: &PgPool) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, MetaError> {
    pool.acquire().await.map_err(errors::classify)
}

/// A read-write transaction (READ COMMITTED; writes take the row locks they need). It
/// rolls back when dropped without [`finish`].
async fn begin(pool: &PgPool) -> Result<Tx, MetaError> {
    pool.begin().await.map_err(errors::classify)
}

/// A read-only snapshot (REPEATABLE READ): several queries that must agree, such as the
/// heads and the cursor of a listing.
async fn begin_snapshot(pool: &PgPool) -> Result<Tx, MetaError> {
    pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(errors::classify)
}

/// Commit `tx`.
async fn finish(tx: Tx) -> Result<(), MetaError> {
    tx.commit().await.map_err(errors::classify)
}

type Tx = sqlx::Transaction<'static, sqlx::Postgres>;
