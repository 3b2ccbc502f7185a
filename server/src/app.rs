//! [`App`]: the server's shared state (config, metadata store, blob store, feed, metrics)
//! and the operations that are not tied to one HTTP request: opening the stores, issuing
//! pairing codes (keyed hashes, minting rate), revocation signals, garbage-collecting blobs.

use crate::blob::{BlobStore, FsBlobStore};
use crate::config::Config;
use crate::feed::Feed;
use crate::meta::{DeviceId, MetaError, MetaStore, Retention, UserId};
use crate::metrics::Metrics;
use crate::revocation::Revocations;
use crate::secrets::{PairingKey, PairingSecret};
use crate::timestamps::{now_unix, rfc3339};
use anyhow::Context;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use savesync_core::wire::PairingCode;
use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// Cheap to clone: everything lives behind one `Arc`.
#[derive(Clone, Debug)]
pub struct App {
    inner: Arc<AppInner>,
}

#[derive(Debug)]
struct AppInner {
    config: Config,
    meta: Arc<dyn MetaStore>,
    blobs: Arc<dyn BlobStore>,
    feed: Feed,
    metrics: Metrics,
    /// Uploads hold it shared from "blob made visible" to "version committed"; garbage
    /// collection holds it exclusively. So GC never sees a blob that is stored but not yet
    /// referenced, and never deletes one an upload is about to reference by dedupe.
    gc_lock: RwLock<()>,
    /// When each device's `last_seen_at` was last written (see `due_for_last_seen`).
    last_seen_written: Mutex<HashMap<DeviceId, Instant>>,
    /// Keys the stored hashes of pairing codes.
    pairing_key: PairingKey,
    /// How fast each device may mint pairing codes (`None`: unlimited).
    mint_limiter: Option<DefaultKeyedRateLimiter<DeviceId>>,
    /// Ends the streams and long-polls of revoked devices.
    revocations: Revocations,
    /// Carries cursor advances to other replicas (`crate::feed_bus`; Postgres only).
    feed_bus: std::sync::OnceLock<Arc<crate::feed_bus::FeedBus>>,
}

/// The shortest revocation re-check interval honoured (a zero interval would spin).
const MIN_REVOCATION_CHECK: Duration = Duration::from_millis(10);

/// `last_seen_at` is informational: write it at most this often per device, so reads do
/// not each cost a write transaction.
const LAST_SEEN_EVERY: Duration = Duration::from_secs(60);

impl App {
    /// Create the data directory (`0700`), open the metadata store (SQLite `0600`, or
    /// Postgres when `database_url` is set; running migrations), the blob directory and the
    /// pairing key (created on first start). Blocking: for the metadata-only admin commands
    /// (`pair`, `devices`, `users`, `login-link`) and tests. It always opens the blob
    /// directory, so anything that reads or writes blobs (`serve`, `remotes`, `export`,
    /// `import`) uses [`App::connect`], which opens the bucket when `blob_url` is set.
    pub fn open(config: Config) -> anyhow::Result<App> {
        // Safe to block on: SQLite opens inline, and Postgres runs on its own runtime.
        let meta = futures::executor::block_on(crate::meta::open_from_config(&config))?;
        let blobs = FsBlobStore::open(config.blob_dir())
            .with_context(|| format!("opening blob store {}", config.blob_dir().display()))?;
        let key = crate::data_dir::pairing_key(&config.data_dir)?;
        Ok(App::assemble(config, meta, Arc::new(blobs), key))
    }

    /// Open the stores the config names (`crate::meta::open_from_config`,
    /// `crate::blob::open_from_config`) and the pairing key of the data directory.
    ///
    /// On Postgres the pairing key is still the data directory's file, so `pair` and
    /// `serve` on one host agree; replicas on several hosts must share that file.
    pub async fn connect(config: Config) -> anyhow::Result<App> {
        let meta = crate::meta::open_from_config(&config).await?;
        let blobs = crate::blob::open_from_config(&config).await?;
        let key = crate::data_dir::pairing_key(&config.data_dir)?;
        Ok(App::assemble(config, meta, blobs, key))
    }

    /// Assemble an app over any store implementations (Postgres, S3, fault injection). The
    /// pairing key is random and in memory only: codes die with the process.
    pub fn with_stores(config: Config, meta: Arc<dyn MetaStore>, blobs: Arc<dyn BlobStore>) -> App {
        App::assemble(config, meta, blobs, PairingKey::generate())
    }

    fn assemble(
        config: Config,
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        pairing_key: PairingKey,
    ) -> App {
        let burst = NonZeroU32::new(config.pairing_mint_burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let mint_limiter = Quota::with_period(config.pairing_mint_interval)
            .map(|quota| RateLimiter::keyed(quota.allow_burst(burst)));
        App {
            inner: Arc::new(AppInner {
                config,
                meta,
                blobs,
                feed: Feed::default(),
                metrics: Metrics::default(),
                gc_lock: RwLock::new(()),
                last_seen_written: Mutex::new(HashMap::new()),
                pairing_key,
                mint_limiter,
                revocations: Revocations::default(),
                feed_bus: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Creates the user if missing; returns a one-time code valid for `config.pairing_ttl`.
    pub async fn pairing_code(&self, user: &str) -> anyhow::Result<PairingCode> {
        let user = user.trim();
        anyhow::ensure!(!user.is_empty(), "user name must not be empty");
        let now = now_unix();
        let user_id = self.inner.meta.ensure_user(user, now).await?;
        Ok(self.pairing_code_for(user_id, None, now).await?)
    }

    /// [`App::pairing_code`] for synchronous callers (the `pair` CLI, test harnesses): runs
    /// it to completion on a scoped thread of its own, outside any async runtime.
    pub fn issue_pairing_code(&self, user: &str) -> anyhow::Result<PairingCode> {
        std::thread::scope(|s| {
            s.spawn(|| futures::executor::block_on(self.pairing_code(user)))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// A code for `user`, optionally on behalf of an already paired device.
    pub(crate) async fn pairing_code_for(
        &self,
        user: UserId,
        by_device: Option<DeviceId>,
        now: i64,
    ) -> Result<PairingCode, MetaError> {
        let secret = PairingSecret::generate();
        let ttl = i64::try_from(self.inner.config.pairing_ttl.as_secs()).unwrap_or(i64::MAX);
        let expires_at = now.saturating_add(ttl);
        let hash = secret.hash(&self.inner.pairing_key);
        self.inner.meta.add_pairing_code(user, &hash, expires_at, by_device, now).await?;
        Ok(PairingCode { code: secret.reveal().to_owned(), expires_at: rfc3339(expires_at) })
    }

    /// The stored form of a typed pairing code.
    pub(crate) fn pairing_code_hash(&self, typed: &str) -> String {
        self.inner.pairing_key.hash_code(typed)
    }

    /// Count one code minted by `device`, or say how long it must wait
    /// (`pairing_mint_burst` at once, then one per `pairing_mint_interval`).
    pub(crate) fn admit_mint(&self, device: DeviceId) -> Result<(), Duration> {
        let Some(limiter) = &self.inner.mint_limiter else { return Ok(()) };
        limiter
            .check_key(&device)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Tell this process's streams and long-polls of `device` that it was revoked.
    pub(crate) fn signal_revoked(&self, device: DeviceId) {
        self.inner.revocations.revoke(device);
    }

    /// Resolves once `device` is revoked: at once when revoked through this server's API,
    /// within `revocation_check_interval` when revoked by the CLI (another process).
    pub(crate) fn until_revoked(
        &self,
        device: DeviceId,
    ) -> impl Future<Output = ()> + Send + use<> {
        let app = self.clone();
        async move {
            let token = app.inner.revocations.token(device);
            let every = app.inner.config.revocation_check_interval.max(MIN_REVOCATION_CHECK);
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = token.cancelled() => return,
                    _ = ticks.tick() => {
                        match app.meta().device_revoked(device).await {
                            Ok(true) => {
                                app.signal_revoked(device);
                                return;
                            }
                            Ok(false) => {}
                            Err(e) => tracing::debug!(error = %e, "revocation re-check failed"),
                        }
                    }
                }
            }
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The metadata store.
    pub fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.inner.meta
    }

    pub(crate) fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.inner.blobs
    }

    pub(crate) fn feed(&self) -> &Feed {
        &self.inner.feed
    }

    /// Announce that `user`'s cursor reached `seq`: to this process's watchers at once,
    /// and through the feed bus (if running) to every other replica's.
    pub(crate) fn announce(&self, user: UserId, seq: savesync_core::Seq) {
        self.inner.feed.publish(user, seq);
        if let Some(bus) = self.inner.feed_bus.get() {
            bus.send(user, seq);
        }
    }

    /// Give this app its feed bus; `None` if it already has one.
    pub(crate) fn attach_feed_bus(&self) -> Option<Arc<crate::feed_bus::FeedBus>> {
        let bus = Arc::new(crate::feed_bus::FeedBus::default());
        self.inner.feed_bus.set(bus.clone()).ok()?;
        Some(bus)
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn gc_lock(&self) -> &RwLock<()> {
        &self.inner.gc_lock
    }

    /// True (and remembered) when `device`'s `last_seen_at` should be written now.
    pub(crate) fn due_for_last_seen(&self, device: DeviceId) -> bool {
        let mut written =
            self.inner.last_seen_written.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match written.get(&device) {
            Some(last) if now.duration_since(*last) < LAST_SEEN_EVERY => false,
            _ => {
                written.insert(device, now);
                true
            }
        }
    }

    /// Retention in the store's terms.
    pub(crate) fn retention(&self) -> Retention {
        let c = &self.inner.config;
        let r = c.retention;
        Retention {
            keep_versions: r.keep_versions,
            keep_seconds: i64::from(r.keep_days) * 86_400,
            max_conflict_versions: c.max_conflict_versions_per_save,
        }
    }
}
