//! Server configuration: embedded defaults, an optional TOML file, then `SAVESYNC_*`
//! environment overrides (in that order; later wins). Durations are whole seconds in the
//! file and the environment so a human can write them without a unit parser; a key or
//! variable ending in `_ms`, `_days` or `_hours` is in that unit instead.

use anyhow::Context;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long old versions are kept. A version survives while it is among the newest
/// `keep_versions` of its save OR younger than `keep_days`; the head is never pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    pub keep_versions: u32,
    pub keep_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { keep_versions: 10, keep_days: 30 }
    }
}

/// Everything the server needs to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Holds `savesync.db` and `blobs/`.
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// How devices reach this server (shown in the pair command and QR code). Defaults to
    /// `http://<listen>`.
    pub public_url: Option<String>,
    /// Largest accepted upload body.
    pub max_body_bytes: u64,
    /// Largest accepted JSON body (a 10,000-entry manifest is about 2 MB).
    pub max_json_bytes: u64,
    pub pairing_ttl: Duration,
    /// Upper bound for `wait_ms` on the changes long-poll.
    pub long_poll_max: Duration,
    /// Deadline for producing a response. Uploads instead get this as the longest pause
    /// between two body chunks, so a big upload on a slow link still completes; SSE and
    /// long-poll are exempt.
    pub request_timeout: Duration,
    /// How often unreferenced blobs are collected.
    pub gc_interval: Duration,
    pub retention: RetentionConfig,
    /// Take the client address from the last `X-Forwarded-For` entry (set by a reverse
    /// proxy in front of the server) instead of the TCP peer. Only for the pairing rate
    /// limit; enable it only when every request comes through that proxy, or clients can
    /// claim any address.
    pub trust_forwarded_for: bool,
    /// Wrong pairing codes the server takes (from anyone) while a code is live before that
    /// code stops working: caps the odds of guessing any one code at this many tries in
    /// 31^8, however many addresses the guesses come from.
    pub pairing_max_wrong_guesses: u32,
    /// Pairing codes a device may mint at once through the API...
    pub pairing_mint_burst: u32,
    /// ...and then one more per this interval (zero: unlimited).
    pub pairing_mint_interval: Duration,
    /// Refuse `POST /pairing-codes` and `POST /devices/{id}/revoke` (`403 admin_only`):
    /// only the admin CLI on the server mints codes and revokes devices.
    pub admin_cli_only: bool,
    /// How often open event streams and long-polls re-read their device's revoked flag, to
    /// notice a revocation by the CLI (another process). API revocations act at once.
    pub revocation_check_interval: Duration,
    /// Most `conflict` versions kept per save: beyond it the oldest are thinned out (the
    /// first and the newest always stay), so stale uploads cannot fill the disk.
    pub max_conflict_versions_per_save: u32,
    /// How often an idle event stream sends a keep-alive comment, so devices (and proxies)
    /// can tell a quiet stream from a dead one. Milliseconds in the file and environment.
    pub sse_keep_alive: Duration,
    /// Bytes of version content a user may store (heads, history and conflict versions;
    /// content stored twice counts once). 0 means no limit.
    pub user_quota_bytes: u64,
    /// Most version rows (heads, history, conflict versions) a user may have, so a client
    /// storing empty or repeated content under endless paths is bounded too. 0 = no limit.
    pub user_max_versions: u64,
    /// Most entries a negotiate manifest may have.
    pub max_manifest_entries: u64,
    /// Most open event streams per device; opening one more closes the oldest.
    pub max_streams_per_device: usize,
    /// Most open client connections; further ones are answered 503 and closed.
    pub max_connections: usize,
    /// How long completed sync sessions are kept (days in the file and environment).
    pub session_keep: Duration,
    /// How long a sync session that was never completed is kept (hours in the file and
    /// environment).
    pub open_session_keep: Duration,
    /// The web dashboard's sign-in settings (`SAVESYNC_WEB_*`; see `crate::web::settings`).
    pub web: crate::web::WebSettings,
    /// How often `serve` looks for SSH remotes that are due (`remotes`; each remote has
    /// its own `--every`). Milliseconds in the file and environment (`remote_check_ms`).
    pub remote_check_interval: Duration,
    /// Most SSH remotes synced at once by `serve`.
    pub remote_concurrency: usize,
    /// `postgres://USER:PASSWORD@HOST/DB`: keep the metadata in Postgres instead of the
    /// SQLite file `db_path()` (`SAVESYNC_DATABASE_URL`; see `crate::meta::open_from_config`).
    /// Holds a password: never log it, show `crate::meta::database_url::redacted` instead.
    pub database_url: Option<String>,
    /// Most connections one server process opens to Postgres
    /// (`SAVESYNC_DATABASE_MAX_CONNECTIONS`).
    pub database_max_connections: u32,
    /// Garbage collection deletes an unreferenced blob (and `serve` a staging leftover at
    /// start) only once it is this old: another replica on the same store may be between
    /// publishing it and committing the version that references it. Must exceed the
    /// longest publish-to-commit step (a database round trip) by a wide margin.
    pub gc_grace: Duration,
    /// `s3://bucket/prefix`: keep blobs in an S3-compatible bucket instead of `blob_dir()`
    /// (`SAVESYNC_BLOB_URL`; see `crate::blob::open_from_config`).
    pub blob_url: Option<String>,
    /// Endpoint, region and credentials for `blob_url` (`[s3]`, `SAVESYNC_S3_*`, `AWS_*`).
    pub s3: crate::blob::S3Settings,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
const HOUR_SECS: u64 = 60 * 60;
const DAY_SECS: u64 = 24 * HOUR_SECS;

impl Config {
    /// All defaults, data under `dir` (`dir/savesync.db`, `dir/blobs/ab/cd/<sha256>`).
    pub fn with_data_dir(dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: dir.into(),
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 7878))),
            public_url: None,
            max_body_bytes: 512 * 1024 * 1024,
            max_json_bytes: 64 * 1024 * 1024,
            pairing_ttl: Duration::from_secs(10 * 60),
            long_poll_max: Duration::from_secs(60),
            request_timeout: Duration::from_secs(120),
            gc_interval: Duration::from_secs(60 * 60),
            retention: RetentionConfig::default(),
            trust_forwarded_for: false,
            pairing_max_wrong_guesses: 10_000,
            pairing_mint_burst: 5,
            pairing_mint_interval: Duration::from_secs(60),
            admin_cli_only: false,
            revocation_check_interval: Duration::from_secs(15),
            max_conflict_versions_per_save: 100,
            sse_keep_alive: Duration::from_secs(15),
            user_quota_bytes: 10 * 1024 * 1024 * 1024,
            user_max_versions: 1_000_000,
            max_manifest_entries: 100_000,
            max_streams_per_device: 4,
            max_connections: 512,
            session_keep: Duration::from_secs(30 * DAY_SECS),
            open_session_keep: Duration::from_secs(HOUR_SECS * 24),
            web: crate::web::WebSettings::default(),
            remote_check_interval: Duration::from_secs(5),
            remote_concurrency: 2,
            database_url: None,
            database_max_connections: 16,
            gc_grace: Duration::from_secs(HOUR_SECS),
            blob_url: None,
            s3: crate::blob::S3Settings::default(),
        }
    }

    /// Defaults, then the TOML file at `path` (if any), then `SAVESYNC_*` variables.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let mut config = Config::with_data_dir("savesync-data");
        if let Some(path) = path {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            let file: ConfigFile = toml::from_str(&text)
                .with_context(|| format!("parsing config file {}", path.display()))?;
            file.apply(&mut config)?;
        }
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    /// The URL devices use, for the pair command and QR code.
    #[must_use]
    pub fn device_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// Where the SQLite file lives.
    #[must_use]
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("savesync.db")
    }

    /// Root of the content-addressed blob store.
    #[must_use]
    pub fn blob_dir(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }

    /// Apply every `SAVESYNC_*` override that `lookup` knows. Split out so tests can feed a
    /// map instead of mutating the process environment.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        if let Some(v) = get("SAVESYNC_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("SAVESYNC_LISTEN") {
            self.listen = parse_env("SAVESYNC_LISTEN", &v)?;
        }
        if let Some(v) = get("SAVESYNC_PUBLIC_URL") {
            self.public_url = Some(v);
        }
        if let Some(v) = get("SAVESYNC_MAX_BODY_BYTES") {
            self.max_body_bytes = parse_env("SAVESYNC_MAX_BODY_BYTES", &v)?;
        }
        if let Some(v) = get("SAVESYNC_MAX_JSON_BYTES") {
            self.max_json_bytes = parse_env("SAVESYNC_MAX_JSON_BYTES", &v)?;
        }
        if let Some(v) = get("SAVESYNC_PAIRING_TTL_SECS") {
            self.pairing_ttl = Duration::from_secs(parse_env("SAVESYNC_PAIRING_TTL_SECS", &v)?);
        }
        if let Some(v) = get("SAVESYNC_LONG_POLL_MAX_SECS") {
            self.long_poll_max = Duration::from_secs(parse_env("SAVESYNC_LONG_POLL_MAX_SECS", &v)?);
        }
        if let Some(v) = get("SAVESYNC_REQUEST_TIMEOUT_SECS") {
            self.request_timeout =
                Duration::from_secs(parse_env("SAVESYNC_REQUEST_TIMEOUT_SECS", &v)?);
        }
        if let Some(v) = get("SAVESYNC_GC_INTERVAL_SECS") {
            self.gc_interval = Duration::from_secs(parse_env("SAVESYNC_GC_INTERVAL_SECS", &v)?);
        }
        if let Some(v) = get("SAVESYNC_KEEP_VERSIONS") {
            self.retention.keep_versions = parse_env("SAVESYNC_KEEP_VERSIONS", &v)?;
        }
        if let Some(v) = get("SAVESYNC_KEEP_DAYS") {
            self.retention.keep_days = parse_env("SAVESYNC_KEEP_DAYS", &v)?;
        }
        if let Some(v) = get("SAVESYNC_TRUST_FORWARDED_FOR") {
            self.trust_forwarded_for = parse_env("SAVESYNC_TRUST_FORWARDED_FOR", &v)?;
        }
        if let Some(v) = get("SAVESYNC_PAIRING_MAX_WRONG_GUESSES") {
            self.pairing_max_wrong_guesses = parse_env("SAVESYNC_PAIRING_MAX_WRONG_GUESSES", &v)?;
        }
        if let Some(v) = get("SAVESYNC_PAIRING_MINT_BURST") {
            self.pairing_mint_burst = parse_env("SAVESYNC_PAIRING_MINT_BURST", &v)?;
        }
        if let Some(v) = get("SAVESYNC_PAIRING_MINT_INTERVAL_SECS") {
            self.pairing_mint_interval =
                Duration::from_secs(parse_env("SAVESYNC_PAIRING_MINT_INTERVAL_SECS", &v)?);
        }
        if let Some(v) = get("SAVESYNC_ADMIN_CLI_ONLY") {
            self.admin_cli_only = parse_env("SAVESYNC_ADMIN_CLI_ONLY", &v)?;
        }
        if let Some(v) = get("SAVESYNC_REMOTE_CHECK_MS") {
            self.remote_check_interval =
                Duration::from_millis(parse_env("SAVESYNC_REMOTE_CHECK_MS", &v)?);
        }
        if let Some(v) = get("SAVESYNC_REMOTE_CONCURRENCY") {
            self.remote_concurrency = parse_env("SAVESYNC_REMOTE_CONCURRENCY", &v)?;
        }
        if let Some(v) = get("SAVESYNC_REVOCATION_CHECK_SECS") {
            self.revocation_check_interval =
                Duration::from_secs(parse_env("SAVESYNC_REVOCATION_CHECK_SECS", &v)?);
        }
        if let Some(v) = get("SAVESYNC_MAX_CONFLICT_VERSIONS_PER_SAVE") {
            self.max_conflict_versions_per_save =
                parse_env("SAVESYNC_MAX_CONFLICT_VERSIONS_PER_SAVE", &v)?;
        }
        if let Some(v) = get("SAVESYNC_SSE_KEEP_ALIVE_MS") {
            self.sse_keep_alive =
                Duration::from_millis(parse_env("SAVESYNC_SSE_KEEP_ALIVE_MS", &v)?);
        }
        if let Some(v) = get("SAVESYNC_USER_QUOTA_BYTES") {
            self.user_quota_bytes = parse_env("SAVESYNC_USER_QUOTA_BYTES", &v)?;
        }
        if let Some(v) = get("SAVESYNC_USER_MAX_VERSIONS") {
            self.user_max_versions = parse_env("SAVESYNC_USER_MAX_VERSIONS", &v)?;
        }
        if let Some(v) = get("SAVESYNC_MAX_MANIFEST_ENTRIES") {
            self.max_manifest_entries = parse_env("SAVESYNC_MAX_MANIFEST_ENTRIES", &v)?;
        }
        if let Some(v) = get("SAVESYNC_MAX_STREAMS_PER_DEVICE") {
            self.max_streams_per_device = parse_env("SAVESYNC_MAX_STREAMS_PER_DEVICE", &v)?;
        }
        if let Some(v) = get("SAVESYNC_MAX_CONNECTIONS") {
            self.max_connections = parse_env("SAVESYNC_MAX_CONNECTIONS", &v)?;
        }
        if let Some(v) = get("SAVESYNC_SESSION_KEEP_DAYS") {
            let days: u64 = parse_env("SAVESYNC_SESSION_KEEP_DAYS", &v)?;
            self.session_keep = Duration::from_secs(days.saturating_mul(DAY_SECS));
        }
        if let Some(v) = get("SAVESYNC_OPEN_SESSION_KEEP_HOURS") {
            let hours: u64 = parse_env("SAVESYNC_OPEN_SESSION_KEEP_HOURS", &v)?;
            self.open_session_keep = Duration::from_secs(hours.saturating_mul(HOUR_SECS));
        }
        if let Some(v) = get("SAVESYNC_GC_GRACE_SECS") {
            self.gc_grace = Duration::from_secs(parse_env("SAVESYNC_GC_GRACE_SECS", &v)?);
        }
        self.web.apply_env(&lookup)?;
        if let Some(v) = get("SAVESYNC_DATABASE_URL") {
            self.set_database_url(v)?;
        }
        if let Some(v) = get("SAVESYNC_DATABASE_MAX_CONNECTIONS") {
            self.database_max_connections = parse_env("SAVESYNC_DATABASE_MAX_CONNECTIONS", &v)?;
        }
        if let Some(v) = get("SAVESYNC_BLOB_URL") {
            self.blob_url = Some(v);
        }
        self.s3.apply_env(&lookup)?;
        Ok(())
    }
}

impl Config {
    /// Set `database_url`, refusing a scheme no backend speaks (the error never shows the
    /// URL, which may hold a password).
    pub fn set_database_url(&mut self, url: String) -> anyhow::Result<()> {
        crate::meta::database_url::backend(Some(&url)).map_err(anyhow::Error::msg)?;
        self.database_url = Some(url);
        Ok(())
    }
}

fn parse_env<T>(name: &str, value: &str) -> anyhow::Result<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e| anyhow::anyhow!("{name}={value:?}: {e}"))
}

/// The TOML file: every key optional, same names as the fields, durations in seconds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    public_url: Option<String>,
    max_body_bytes: Option<u64>,
    max_json_bytes: Option<u64>,
    pairing_ttl_secs: Option<u64>,
    long_poll_max_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
    gc_interval_secs: Option<u64>,
    trust_forwarded_for: Option<bool>,
    retention: Option<RetentionFile>,
    pairing_max_wrong_guesses: Option<u32>,
    pairing_mint_burst: Option<u32>,
    pairing_mint_interval_secs: Option<u64>,
    admin_cli_only: Option<bool>,
    revocation_check_secs: Option<u64>,
    max_conflict_versions_per_save: Option<u32>,
    sse_keep_alive_ms: Option<u64>,
    user_quota_bytes: Option<u64>,
    user_max_versions: Option<u64>,
    max_manifest_entries: Option<u64>,
    max_streams_per_device: Option<usize>,
    max_connections: Option<usize>,
    session_keep_days: Option<u64>,
    open_session_keep_hours: Option<u64>,
    remote_check_ms: Option<u64>,
    remote_concurrency: Option<usize>,
    database_url: Option<String>,
    database_max_connections: Option<u32>,
    gc_grace_secs: Option<u64>,
    blob_url: Option<String>,
    s3: Option<crate::blob::s3::S3File>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionFile {
    keep_versions: Option<u32>,
    keep_days: Option<u32>,
}

impl ConfigFile {
    fn apply(self, config: &mut Config) -> anyhow::Result<()> {
        if let Some(v) = self.data_dir {
            config.data_dir = v;
        }
        if let Some(v) = self.listen {
            config.listen = parse_env("listen", &v)?;
        }
        if self.public_url.is_some() {
            config.public_url = self.public_url;
        }
        let secs = Duration::from_secs;
        config.max_body_bytes = self.max_body_bytes.unwrap_or(config.max_body_bytes);
        config.max_json_bytes = self.max_json_bytes.unwrap_or(config.max_json_bytes);
        config.pairing_ttl = self.pairing_ttl_secs.map_or(config.pairing_ttl, secs);
        config.long_poll_max = self.long_poll_max_secs.map_or(config.long_poll_max, secs);
        config.request_timeout = self.request_timeout_secs.map_or(config.request_timeout, secs);
        config.gc_interval = self.gc_interval_secs.map_or(config.gc_interval, secs);
        config.trust_forwarded_for = self.trust_forwarded_for.unwrap_or(config.trust_forwarded_for);
        config.pairing_max_wrong_guesses =
            self.pairing_max_wrong_guesses.unwrap_or(config.pairing_max_wrong_guesses);
        config.pairing_mint_burst = self.pairing_mint_burst.unwrap_or(config.pairing_mint_burst);
        config.pairing_mint_interval =
            self.pairing_mint_interval_secs.map_or(config.pairing_mint_interval, secs);
        config.admin_cli_only = self.admin_cli_only.unwrap_or(config.admin_cli_only);
        config.revocation_check_interval =
            self.revocation_check_secs.map_or(config.revocation_check_interval, secs);
        config.remote_check_interval =
            self.remote_check_ms.map_or(config.remote_check_interval, Duration::from_millis);
        config.remote_concurrency = self.remote_concurrency.unwrap_or(config.remote_concurrency);
        config.max_conflict_versions_per_save =
            self.max_conflict_versions_per_save.unwrap_or(config.max_conflict_versions_per_save);
        if let Some(r) = self.retention {
            config.retention.keep_versions =
                r.keep_versions.unwrap_or(config.retention.keep_versions);
            config.retention.keep_days = r.keep_days.unwrap_or(config.retention.keep_days);
        }
        config.sse_keep_alive =
            self.sse_keep_alive_ms.map_or(config.sse_keep_alive, Duration::from_millis);
        config.user_quota_bytes = self.user_quota_bytes.unwrap_or(config.user_quota_bytes);
        config.user_max_versions = self.user_max_versions.unwrap_or(config.user_max_versions);
        config.max_manifest_entries =
            self.max_manifest_entries.unwrap_or(config.max_manifest_entries);
        config.max_streams_per_device =
            self.max_streams_per_device.unwrap_or(config.max_streams_per_device);
        config.max_connections = self.max_connections.unwrap_or(config.max_connections);
        if let Some(days) = self.session_keep_days {
            config.session_keep = secs(days.saturating_mul(DAY_SECS));
        }
        if let Some(hours) = self.open_session_keep_hours {
            config.open_session_keep = secs(hours.saturating_mul(HOUR_SECS));
        }
        if let Some(url) = self.database_url {
            config.set_database_url(url)?;
        }
        config.database_max_connections =
            self.database_max_connections.unwrap_or(config.database_max_connections);
        config.gc_grace = self.gc_grace_secs.map_or(config.gc_grace, secs);
        if self.blob_url.is_some() {
            config.blob_url = self.blob_url;
        }
        if let Some(s3) = self.s3 {
            s3.apply(&mut config.s3);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_match_the_documented_values() {
        let c = Config::with_data_dir("/d");
        assert_eq!(c.listen.to_string(), "127.0.0.1:7878");
        assert_eq!(c.max_body_bytes, 512 * 1024 * 1024);
        assert_eq!(c.pairing_ttl, Duration::from_secs(600));
        assert_eq!(c.retention, RetentionConfig { keep_versions: 10, keep_days: 30 });
        assert_eq!(c.max_conflict_versions_per_save, 100);
        assert_eq!(c.db_path(), PathBuf::from("/d/savesync.db"));
        assert_eq!(c.device_url(), "http://127.0.0.1:7878");
    }

    #[test]
    fn file_then_env_override_in_that_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(
            &file,
            "data_dir = \"/from-file\"\nlisten = \"0.0.0.0:9000\"\n[retention]\nkeep_days = 7\n",
        )
        .unwrap();
        let mut c = Config::with_data_dir("x");
        let parsed: ConfigFile = toml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        parsed.apply(&mut c).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from-file"));
        assert_eq!(c.retention.keep_days, 7);
        let env: HashMap<&str, &str> =
            [("SAVESYNC_DATA_DIR", "/from-env"), ("SAVESYNC_KEEP_VERSIONS", "3")].into();
        c.apply_env(|k| env.get(k).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from-env"));
        assert_eq!(c.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(c.retention.keep_versions, 3);
    }

    #[test]
    fn trusting_x_forwarded_for_is_off_unless_the_file_or_env_turns_it_on() {
        let mut c = Config::with_data_dir("x");
        assert!(!c.trust_forwarded_for);
        let parsed: ConfigFile = toml::from_str("trust_forwarded_for = true").unwrap();
        parsed.apply(&mut c).unwrap();
        assert!(c.trust_forwarded_for);
        c.apply_env(|k| (k == "SAVESYNC_TRUST_FORWARDED_FOR").then(|| "false".to_owned())).unwrap();
        assert!(!c.trust_forwarded_for);
    }

    #[test]
    fn pairing_and_revocation_settings_come_from_file_then_env() {
        let mut c = Config::with_data_dir("x");
        assert_eq!((c.pairing_max_wrong_guesses, c.pairing_mint_burst), (10_000, 5));
        assert!(!c.admin_cli_only);
        let parsed: ConfigFile = toml::from_str(
            "admin_cli_only = true\npairing_mint_burst = 2\npairing_mint_interval_secs = 9\n\
             pairing_max_wrong_guesses = 50\nrevocation_check_secs = 3\n",
        )
        .unwrap();
        parsed.apply(&mut c).unwrap();
        assert!(c.admin_cli_only);
        assert_eq!((c.pairing_mint_burst, c.pairing_max_wrong_guesses), (2, 50));
        assert_eq!(c.pairing_mint_interval, Duration::from_secs(9));
        assert_eq!(c.revocation_check_interval, Duration::from_secs(3));
        let env: HashMap<&str, &str> = [
            ("SAVESYNC_ADMIN_CLI_ONLY", "false"),
            ("SAVESYNC_PAIRING_MINT_INTERVAL_SECS", "0"),
            ("SAVESYNC_REVOCATION_CHECK_SECS", "1"),
        ]
        .into();
        c.apply_env(|k| env.get(k).map(|v| (*v).to_owned())).unwrap();
        assert!(!c.admin_cli_only);
        assert_eq!(c.pairing_mint_interval, Duration::ZERO);
        assert_eq!(c.revocation_check_interval, Duration::from_secs(1));
    }

    #[test]
    fn the_conflict_version_cap_comes_from_the_file_then_the_environment() {
        let mut c = Config::with_data_dir("x");
        let parsed: ConfigFile = toml::from_str("max_conflict_versions_per_save = 7").unwrap();
        parsed.apply(&mut c).unwrap();
        assert_eq!(c.max_conflict_versions_per_save, 7);
        c.apply_env(|k| (k == "SAVESYNC_MAX_CONFLICT_VERSIONS_PER_SAVE").then(|| "9".to_owned()))
            .unwrap();
        assert_eq!(c.max_conflict_versions_per_save, 9);
    }

    #[test]
    fn sse_keep_alive_defaults_to_15_s_and_takes_milliseconds_from_file_and_env() {
        let mut c = Config::with_data_dir("x");
        assert_eq!(c.sse_keep_alive, Duration::from_secs(15));
        let parsed: ConfigFile = toml::from_str("sse_keep_alive_ms = 2500").unwrap();
        parsed.apply(&mut c).unwrap();
        assert_eq!(c.sse_keep_alive, Duration::from_millis(2500));
        c.apply_env(|k| (k == "SAVESYNC_SSE_KEEP_ALIVE_MS").then(|| "100".to_owned())).unwrap();
        assert_eq!(c.sse_keep_alive, Duration::from_millis(100));
    }

    #[test]
    fn limits_have_documented_defaults_and_take_file_then_env() {
        let mut c = Config::with_data_dir("x");
        assert_eq!(c.user_quota_bytes, 10 << 30);
        assert_eq!(c.max_manifest_entries, 100_000);
        assert_eq!(c.max_streams_per_device, 4);
        assert_eq!(c.max_connections, 512);
        assert_eq!(c.session_keep, Duration::from_secs(30 * 86_400));
        assert_eq!(c.open_session_keep, Duration::from_secs(86_400));
        let parsed: ConfigFile = toml::from_str(
            "user_quota_bytes = 0\nmax_manifest_entries = 10\nmax_streams_per_device = 1\n\
             max_connections = 8\nsession_keep_days = 2\nopen_session_keep_hours = 3\n",
        )
        .unwrap();
        parsed.apply(&mut c).unwrap();
        assert_eq!(
            (c.user_quota_bytes, c.max_manifest_entries, c.max_streams_per_device),
            (0, 10, 1)
        );
        assert_eq!(c.max_connections, 8);
        assert_eq!(c.session_keep, Duration::from_secs(2 * 86_400));
        assert_eq!(c.open_session_keep, Duration::from_secs(3 * 3_600));
        let env: HashMap<&str, &str> = [
            ("SAVESYNC_USER_QUOTA_BYTES", "1000"),
            ("SAVESYNC_MAX_CONNECTIONS", "64"),
            ("SAVESYNC_OPEN_SESSION_KEEP_HOURS", "1"),
        ]
        .into();
        c.apply_env(|k| env.get(k).map(|v| (*v).to_owned())).unwrap();
        assert_eq!((c.user_quota_bytes, c.max_connections), (1000, 64));
        assert_eq!(c.open_session_keep, Duration::from_secs(3_600));
    }

    #[test]
    fn gc_grace_defaults_to_an_hour_and_takes_file_then_env() {
        let mut c = Config::with_data_dir("x");
        assert_eq!(c.gc_grace, Duration::from_secs(3600));
        let parsed: ConfigFile = toml::from_str("gc_grace_secs = 600").unwrap();
        parsed.apply(&mut c).unwrap();
        assert_eq!(c.gc_grace, Duration::from_secs(600));
        c.apply_env(|k| (k == "SAVESYNC_GC_GRACE_SECS").then(|| "5".to_owned())).unwrap();
        assert_eq!(c.gc_grace, Duration::from_secs(5));
    }

    #[test]
    fn malformed_env_value_is_an_error_naming_the_variable() {
        let mut c = Config::with_data_dir("x");
        let err = c
            .apply_env(|k| (k == "SAVESYNC_LISTEN").then(|| "not-an-addr".to_owned()))
            .unwrap_err();
        assert!(err.to_string().contains("SAVESYNC_LISTEN"));
    }

    #[test]
    fn database_url_comes_from_file_then_env_and_unknown_schemes_are_refused() {
        let mut c = Config::with_data_dir("x");
        assert_eq!((c.database_url.as_deref(), c.database_max_connections), (None, 16));
        let parsed: ConfigFile = toml::from_str(
            "database_url = \"postgres://a:pw@db/one\"\ndatabase_max_connections = 4\n",
        )
        .unwrap();
        parsed.apply(&mut c).unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://a:pw@db/one"));
        assert_eq!(c.database_max_connections, 4);
        c.apply_env(|k| (k == "SAVESYNC_DATABASE_URL").then(|| "postgresql://db/two".to_owned()))
            .unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgresql://db/two"));
        let bad: ConfigFile = toml::from_str("database_url = \"mysql://u:hunter2@db/x\"").unwrap();
        let err = bad.apply(&mut c).unwrap_err().to_string();
        assert!(err.contains("unsupported scheme \"mysql\""), "{err}");
        assert!(!err.contains("hunter2"), "the password leaked: {err}");
        let err = c
            .apply_env(|k| (k == "SAVESYNC_DATABASE_URL").then(|| "redis://db".to_owned()))
            .unwrap_err();
        assert!(err.to_string().contains("redis"), "{err}");
    }
}
