//! The storage backends the load benchmark runs on (SQLite or Postgres metadata, blobs in
//! a directory or an S3-compatible bucket), each set up on throwaway loopback
//! services (`savesync-testenv`). A backend whose service is not installed is skipped with
//! a printed line; the rest are measured.

use savesync_server::Config;
use std::path::Path;

/// Where metadata and blobs live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    SqliteDir,
    PostgresDir,
    PostgresS3,
}

impl Backend {
    pub const ALL: [Backend; 3] = [Backend::SqliteDir, Backend::PostgresDir, Backend::PostgresS3];

    pub fn name(self) -> &'static str {
        match self {
            Backend::SqliteDir => "sqlite+dir",
            Backend::PostgresDir => "postgres+dir",
            Backend::PostgresS3 => "postgres+s3",
        }
    }

    /// Whether several server processes can share this backend.
    pub fn shared(self) -> bool {
        self != Backend::SqliteDir
    }

    /// A config for a fresh install under `dir`, or why this backend is unavailable.
    pub fn config(self, dir: &Path) -> Result<Config, String> {
        let mut config = Config::with_data_dir(dir);
        match self {
            Backend::SqliteDir => {}
            Backend::PostgresDir | Backend::PostgresS3 => {
                let url = savesync_testenv::postgres::fresh_database()
                    .ok_or(savesync_testenv::postgres::MISSING)?;
                config.set_database_url(url).map_err(|e| e.to_string())?;
            }
        }
        if self == Backend::PostgresS3 {
            use savesync_testenv::s3;
            let bucket = s3::bucket().ok_or("moto_server is not installed")?;
            config.blob_url = Some(bucket.url("savesync"));
            config.s3 = savesync_server::blob::S3Settings {
                endpoint: Some(bucket.endpoint.clone()),
                region: Some(s3::REGION.to_owned()),
                access_key_id: Some(s3::ACCESS_KEY_ID.to_owned()),
                secret_access_key: Some(s3::SECRET_ACCESS_KEY.to_owned()),
                allow_http: false,
            };
        }
        Ok(config)
    }
}
