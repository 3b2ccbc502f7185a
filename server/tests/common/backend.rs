//! The storage backends the server suite runs on ([`Leg`]), how a test server's config
//! points at one, and the [`backend_matrix!`] macro that runs a file's tests on each.
//!
//! A leg whose service is missing (no `moto_server`, no Postgres) skips its tests with a
//! visible `SKIPPED:` line, except under `CI=true`, where the service helpers panic.

use savesync_server::Config;

/// One storage combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// The embedded default: SQLite file + blob directory.
    SqliteDir,
    /// A fresh Postgres database (a throwaway cluster on loopback) + blob directory.
    PostgresDir,
    /// A fresh Postgres database + a fresh bucket.
    PostgresS3,
}

impl Leg {
    /// Whether this leg's services can run here (starting them on first use).
    pub fn available(self) -> bool {
        match self {
            Leg::SqliteDir => true,
            Leg::PostgresDir => savesync_testenv::postgres::cluster().is_some(),
            Leg::PostgresS3 => {
                savesync_testenv::postgres::cluster().is_some()
                    && savesync_testenv::s3::shared().is_some()
            }
        }
    }

    /// Point `config` at fresh storage of this leg (a fresh bucket; the data dir is fresh
    /// already). Returns the S3 view for `blob_files`, if any.
    pub fn configure(self, config: &mut Config) -> Option<super::s3_view::S3View> {
        match self {
            Leg::SqliteDir => None,
            Leg::PostgresDir => {
                use_fresh_database(config);
                None
            }
            Leg::PostgresS3 => {
                use_fresh_database(config);
                Some(use_fresh_bucket(config))
            }
        }
    }
}

fn use_fresh_database(config: &mut Config) {
    let url = savesync_testenv::postgres::fresh_database().expect("Postgres leg without Postgres");
    config.database_url = Some(url);
}

fn use_fresh_bucket(config: &mut Config) -> super::s3_view::S3View {
    use savesync_testenv::s3;
    let bucket = s3::bucket().expect("S3 leg without moto_server");
    let prefix = "savesync";
    config.blob_url = Some(bucket.url(prefix));
    config.s3 = savesync_server::blob::S3Settings {
        endpoint: Some(bucket.endpoint.clone()),
        region: Some(s3::REGION.to_owned()),
        access_key_id: Some(s3::ACCESS_KEY_ID.to_owned()),
        secret_access_key: Some(s3::SECRET_ACCESS_KEY.to_owned()),
        allow_http: false,
    };
    super::s3_view::S3View::new(&bucket, prefix)
}

tokio::task_local! {
    /// The leg of the [`backend_matrix!`] test being run.
    static CURRENT: Leg;
}

/// Run `test` with [`TestServer::start`](super::TestServer::start) and `start_with`
/// building servers on `leg`.
pub async fn on_leg(leg: Leg, test: impl Future<Output = ()>) {
    CURRENT.scope(leg, test).await;
}

/// The leg of the running matrix test; `SqliteDir` outside [`backend_matrix!`] (and in
/// tasks it spawns).
pub fn current() -> Leg {
    CURRENT.try_with(|leg| *leg).unwrap_or(Leg::SqliteDir)
}

/// Run the tests in it once per backend: one module per leg (`sqlite_dir`, `postgres_dir`,
/// `postgres_s3`) with `use super::*;`, whose tests run inside [`on_leg`], so `TestServer::start`
/// and `start_with` in unchanged test bodies build servers on that leg. Helpers may stay
/// inside or outside. A test preceded by `#[sqlite_dir_only]` is emitted in the
/// `sqlite_dir` module only (it is about the SQLite file or the blob directory).
#[macro_export]
macro_rules! backend_matrix {
    ($($items:tt)*) => {
        $crate::__backend_leg!(sqlite_dir, SqliteDir, yes, $($items)*);
        $crate::__backend_leg!(postgres_dir, PostgresDir, no, $($items)*);
        $crate::__backend_leg!(postgres_s3, PostgresS3, no, $($items)*);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __backend_leg {
    ($module:ident, $leg:ident, $dir:ident, $($items:tt)*) => {
        mod $module {
            #![allow(unused_imports, dead_code)]
            use super::*;

            const LEG: $crate::common::Leg = $crate::common::Leg::$leg;

            $crate::__backend_items!($dir [] $($items)*);
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __backend_items {
    ($dir:ident [$($out:tt)*]) => { $($out)* };
    // A directory-only test: kept on the sqlite_dir leg, dropped on the others.
    (yes [$($out:tt)*] #[sqlite_dir_only] $($rest:tt)*) => {
        $crate::__backend_items!(yes [$($out)*] $($rest)*);
    };
    (no [$($out:tt)*] #[sqlite_dir_only] $item:item $($rest:tt)*) => {
        $crate::__backend_items!(no [$($out)*] $($rest)*);
    };
    // A test: skipped (visibly) when the leg's services are missing, else run on the leg.
    // (Doc comments may come first; other attributes go after `#[tokio::test]`.)
    ($dir:ident [$($out:tt)*]
        $(#[doc = $doc:literal])* #[tokio::test $($args:tt)*] $(#[$meta:meta])*
        async fn $name:ident() $body:block $($rest:tt)*) => {
        $crate::__backend_items!($dir [$($out)*
            $(#[doc = $doc])* #[tokio::test $($args)*] $(#[$meta])*
            async fn $name() {
                if !LEG.available() {
                    eprintln!("SKIPPED: {} on {:?}", stringify!($name), LEG);
                    return;
                }
                $crate::common::on_leg(LEG, async move $body).await;
            }
        ] $($rest)*);
    };
    ($dir:ident [$($out:tt)*] $item:item $($rest:tt)*) => {
        $crate::__backend_items!($dir [$($out)* $item] $($rest)*);
    };
}
