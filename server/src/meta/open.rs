//! [`open_from_config`]: the metadata store the config names: the SQLite file in the data
//! directory by default, or Postgres when `database_url` is set (migrated to this binary's
//! schema on the way; several processes starting at once are safe, see
//! [`PgMetaStore::migrate`]).

use super::MetaStore;
use super::database_url::{Backend, backend, redacted};
use super::postgres::{PgMetaStore, PgSettings};
use super::sqlite::SqliteMeta;
use crate::config::Config;
use anyhow::Context;
use std::sync::Arc;

/// Open the configured metadata store. The data directory is prepared either way: it
/// holds the pairing key (and the blobs, unless they live in a bucket).
pub async fn open_from_config(config: &Config) -> anyhow::Result<Arc<dyn MetaStore>> {
    match backend(config.database_url.as_deref()).map_err(anyhow::Error::msg)? {
        Backend::Sqlite => {
            crate::data_dir::prepare(&config.data_dir, &config.db_path())?;
            let meta = SqliteMeta::open(config.db_path())
                .with_context(|| format!("opening database {}", config.db_path().display()))?;
            Ok(Arc::new(meta))
        }
        Backend::Postgres(url) => {
            crate::data_dir::prepare_dir(&config.data_dir)?;
            let meta = PgMetaStore::open(url, pg_settings(config))
                .await
                .with_context(|| format!("opening database {}", redacted(url)))?;
            tracing::info!(database = %redacted(url), "metadata in Postgres");
            Ok(Arc::new(meta))
        }
    }
}

/// The pool settings from the config.
#[must_use]
pub fn pg_settings(config: &Config) -> PgSettings {
    PgSettings { max_connections: config.database_max_connections }
}
