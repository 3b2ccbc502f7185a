//! `savesync sync DIR`: the synced-folder daemon.
//!
//! Like `mount`: without `--foreground` it re-executes itself detached (own session, log
//! in `data_dir/savesync.log`), waits until the daemon reports itself running, and exits
//! 0. In the foreground it holds the profile's `daemon.lock` (so a profile is mounted or
//! synced to a folder, never both, and `resolve` cannot change its state underneath),
//! starts watching the folder, catches up with everything that changed while it was not
//! running (rescan), starts the engine, keeps the status row fresh, and on Ctrl-C /
//! SIGTERM stops watching, gives queued uploads a moment, and exits 0. Everything is in
//! the state DB and the folder itself, so a kill -9 loses nothing: the next start's
//! rescan finds every local change.
//!
//! A profile's state belongs to one folder (kv `folder_root`); syncing it to another
//! folder, or a profile that was mounted, is refused: its records would read as "every
//! save was deleted here".

use crate::cli::SyncArgs;
use crate::clock::now_ms;
use crate::folder::front::{self, ChangeSink};
use crate::folder::watch::FolderWatcher;
use crate::folder::{FolderConfig, FolderStore};
use crate::local::{LocalError, LocalStore};
use crate::profile::Profile;
use crate::remote::ClientRemote;
use crate::state::{StateDb, StatusRow};
use crate::sync::{EngineConfig, SyncEngine};
use anyhow::Context;
use savesync_core::SavePath;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The kv key naming the folder a profile's state belongs to.
pub(crate) const FOLDER_ROOT_KEY: &str = "folder_root";

impl ChangeSink for SyncEngine {
    fn changed(&self, paths: &[SavePath]) -> Result<(), LocalError> {
        SyncEngine::changed(self, paths)
    }
}

pub fn run(args: &SyncArgs) -> anyhow::Result<()> {
    if args.detached {
        // Own session, no controlling terminal (see `mount`).
        nix::unistd::setsid().context("starting a new session for the daemon")?;
    }
    let profile = Profile::load(&args.profile)?;
    if args.dry_run {
        return super::sync_plan::run(args, &profile);
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let root = std::fs::canonicalize(&args.dir)
        .with_context(|| format!("resolving {}", args.dir.display()))?;
    anyhow::ensure!(root.is_dir(), "{} is not a directory", root.display());
    let data = std::fs::canonicalize(&profile.data_dir).unwrap_or(profile.data_dir.clone());
    anyhow::ensure!(
        !data.starts_with(&root) && !root.starts_with(&data),
        "the folder {} and the profile's data dir {} must not contain each other",
        root.display(),
        data.display()
    );
    if args.foreground { run_foreground(args, &profile, &root) } else { detach(&profile, &root) }
}

/// Start the sync daemon in the background and wait until its status row says it runs.
fn detach(profile: &Profile, root: &Path) -> anyhow::Result<()> {
    let db_path = profile.data_dir.join("state.db");
    let want = root.display().to_string();
    let up = super::daemon::detach(profile, "sync daemon", Duration::from_secs(60), |pid| {
        StateDb::open_existing(&db_path)
            .ok()
            .and_then(|db| db.read_status().ok().flatten())
            .is_some_and(|s| s.pid == Some(pid) && s.mountpoint.as_deref() == Some(&want))
    })?;
    println!(
        "Syncing {} (pid {}, log {}). Stop with: kill {}",
        root.display(),
        up.pid,
        up.log_path.display(),
        up.pid
    );
    Ok(())
}

/// Make this profile's state the folder's, or refuse if it belongs elsewhere.
fn claim_profile(db: &StateDb, root: &Path) -> anyhow::Result<()> {
    let want = root.display().to_string();
    match db.get_kv(FOLDER_ROOT_KEY)? {
        Some(have) if have == want => Ok(()),
        Some(have) => anyhow::bail!(
            "this profile syncs the folder {have}; use another profile (savesync pair \
             --profile NAME) for {want}"
        ),
        None => {
            anyhow::ensure!(
                !db.has_mount_tree()?,
                "this profile is used by a mount; use another profile (savesync pair \
                 --profile NAME) for a synced folder"
            );
            db.set_kv(FOLDER_ROOT_KEY, &want)?;
            Ok(())
        }
    }
}

fn run_foreground(args: &SyncArgs, profile: &Profile, root: &Path) -> anyhow::Result<()> {
    super::init_tracing("info");
    let _lock = super::mount::lock_data_dir(profile)?;
    let db_path = profile.data_dir.join("state.db");
    let db = StateDb::open(&db_path).with_context(|| format!("opening {}", db_path.display()))?;
    claim_profile(&db, root)?;
    crate::folder::wait_barrier::clear_stale(&db)?;
    let cfg = FolderConfig {
        root: root.to_path_buf(),
        data_dir: profile.data_dir.clone(),
        debounce: Duration::from_millis(args.debounce_ms),
    };
    let store = Arc::new(FolderStore::open(&cfg, db)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("savesync-sync")
        .build()?;
    let client = savesync_client::Client::new(&profile.server_url, Some(profile.token.clone()))
        .context("bad server URL in profile")?;
    let engine_cfg = EngineConfig {
        debounce: Duration::from_millis(args.debounce_ms),
        // A folder downloads every save, whatever its size.
        prefetch_max_bytes: u64::MAX,
        event_silence: Duration::from_millis(args.event_silence_ms),
        offline_backoff_max: Duration::from_millis(args.offline_backoff_max_ms),
        retry_backoff: Duration::from_millis(args.retry_backoff_ms),
        bulk: args.bulk.limits(),
    };
    let engine = SyncEngine::new(
        Arc::clone(&store) as Arc<dyn LocalStore>,
        Arc::new(ClientRemote::new(client)),
        engine_cfg,
    );
    // Watch first, then walk: a change made during the walk is seen by one or the other.
    let watcher = FolderWatcher::start(root)
        .with_context(|| format!("watching {} (inotify)", root.display()))?;
    front::catch_up(&store, engine.as_ref()).context("scanning the folder")?;
    let stop = Arc::new(AtomicBool::new(false));
    let sink: Arc<dyn ChangeSink> = Arc::clone(&engine) as Arc<dyn ChangeSink>;
    let front = front::spawn(Arc::clone(&store), sink, watcher, Arc::clone(&stop))?;
    let shown = root.display().to_string();
    tracing::info!(folder = %shown, server = %profile.server_url, "syncing");
    let tasks = rt.block_on(async {
        let tasks = engine.start();
        wait_for_stop(&store, &engine, &shown).await;
        tasks
    });
    tracing::info!("stopping");
    stop.store(true, Ordering::Relaxed);
    if front.join().is_err() {
        tracing::error!("the folder watcher thread panicked");
    }
    rt.block_on(tasks.drain(Duration::from_secs(3)));
    tasks.stop();
    write_status(&store, &status_row(&store, &engine, None));
    tracing::info!("stopped");
    Ok(())
}

fn status_row(store: &FolderStore, engine: &SyncEngine, folder: Option<&str>) -> StatusRow {
    StatusRow {
        online: folder.is_some() && engine.is_online(),
        last_error: engine.last_error(),
        mountpoint: folder.map(str::to_owned),
        pid: folder.map(|_| std::process::id()),
        updated_ms: now_ms(),
        save_bytes_read: store.save_bytes_read(),
    }
}

fn write_status(store: &FolderStore, row: &StatusRow) {
    if let Err(e) = store.db().write_status(row) {
        tracing::warn!("writing status: {e}");
    }
}

/// Keep the status row fresh until Ctrl-C or SIGTERM.
async fn wait_for_stop(store: &FolderStore, engine: &SyncEngine, folder: &str) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last: Option<StatusRow> = None;
    loop {
        let row = status_row(store, engine, Some(folder));
        let stale = last.as_ref().is_none_or(|l| {
            l.online != row.online
                || l.last_error != row.last_error
                || l.save_bytes_read != row.save_bytes_read
                || row.updated_ms - l.updated_ms > 5_000
        });
        if stale {
            write_status(store, &row);
            last = Some(row);
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => return,
            _ = tick.tick() => {}
        }
    }
}

/// The folder a profile's state belongs to, if it is a synced folder's.
pub(crate) fn folder_of(db: &StateDb) -> Option<PathBuf> {
    db.get_kv(FOLDER_ROOT_KEY).ok().flatten().map(PathBuf::from)
}
