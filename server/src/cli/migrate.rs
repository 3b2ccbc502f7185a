//! `savesync-server migrate`: bring the configured metadata database's schema up to this
//! binary's version and report it. On Postgres, run it before starting upgraded replicas;
//! `serve` also migrates at start (sqlx serialises concurrent runs), so a single server
//! needs no separate step. On SQLite the file is migrated whenever it is opened.

use super::DataDirArg;
use crate::config::Config;
use crate::meta::database_url::{Backend, backend, redacted};
use crate::meta::postgres::{PgMetaStore, PgSettings, latest_migration};
use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    data: DataDirArg,
    /// Postgres URL to migrate instead of the configured metadata store
    /// (postgres://USER:PASSWORD@HOST/DB).
    #[arg(long, env = "SAVESYNC_DATABASE_URL", value_name = "URL", hide_env_values = true)]
    database_url: Option<String>,
}

pub fn run(mut config: Config, args: &MigrateArgs) -> anyhow::Result<()> {
    args.data.apply(&mut config);
    if let Some(url) = &args.database_url {
        config.set_database_url(url.clone())?;
    }
    match backend(config.database_url.as_deref()).map_err(anyhow::Error::msg)? {
        Backend::Sqlite => {
            crate::data_dir::prepare(&config.data_dir, &config.db_path())?;
            let db = config.db_path();
            crate::meta::sqlite::SqliteMeta::open(&db)
                .with_context(|| format!("migrating {}", db.display()))?;
            let version: i64 =
                rusqlite::Connection::open(&db)?
                    .pragma_query_value(None, "user_version", |r| r.get(0))?;
            println!("sqlite {}: schema version {version} (up to date)", db.display());
        }
        Backend::Postgres(url) => {
            let shown = redacted(url);
            let settings = PgSettings { max_connections: 2 };
            let version = futures::executor::block_on(async {
                let store = PgMetaStore::connect(url, settings).await?;
                store.migrate().await
            })
            .with_context(|| format!("migrating {shown}"))?;
            let applied = version.applied.unwrap_or(0);
            println!(
                "postgres {shown}: schema version {applied} (this binary's latest: {})",
                latest_migration()
            );
        }
    }
    Ok(())
}
