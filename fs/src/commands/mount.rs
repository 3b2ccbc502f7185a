//! `savesync mount MOUNTPOINT`: the daemon.
//!
//! Without `--foreground` it re-executes itself detached (own session via setsid, log in
//! `data_dir/savesync.log`), waits until the mount is live, and exits 0. In the foreground
//! it cleans a stale mount, opens the filesystem layer, mounts with several FUSE worker
//! threads, starts the sync engine and a kernel-invalidation thread, keeps the status row
//! fresh, and on Ctrl-C / SIGTERM unmounts, gives queued uploads a moment, and exits 0.
//! Everything queued is already durable in the state DB, so a kill -9 loses nothing.

use super::mountinfo::{clean_stale_mount, is_fuse_mounted, lazy_unmount};
use crate::cli::MountArgs;
use crate::fuse::SaveFsFuse;
use crate::profile::Profile;
use crate::remote::ClientRemote;
use crate::savefs::{FsConfig, Invalidation, SaveFs, now_ms};
use crate::state::StatusRow;
use anyhow::Context;
use fuser::{Config, INodeNo, MountOption, SessionACL};
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub fn run(args: &MountArgs) -> anyhow::Result<()> {
    if args.detached {
        // A new session without a controlling terminal: closing the terminal that ran
        // `savesync mount` sends SIGHUP to its session, not to ours. The child was not
        // made a process-group leader, so setsid cannot fail with EPERM.
        nix::unistd::setsid().context("starting a new session for the daemon")?;
    }
    let profile = Profile::load(&args.profile)?;
    refuse_folder_profile(&profile)?;
    std::fs::create_dir_all(&args.mountpoint).ok();
    clean_stale_mount(&args.mountpoint)?;
    anyhow::ensure!(
        args.mountpoint.is_dir(),
        "mount point {} is not a directory",
        args.mountpoint.display()
    );
    anyhow::ensure!(
        !is_fuse_mounted(&args.mountpoint),
        "{} is already mounted",
        args.mountpoint.display()
    );
    if args.foreground { run_foreground(args, &profile) } else { detach(args, &profile) }
}

/// A profile whose state belongs to a synced folder cannot be mounted: its records say
/// what the folder holds, and a mount's empty tree would read as "every save was deleted
/// here".
fn refuse_folder_profile(profile: &Profile) -> anyhow::Result<()> {
    let Some(db) = super::status::open_db(profile)? else { return Ok(()) };
    if let Some(folder) = super::sync::folder_of(&db) {
        anyhow::bail!(
            "this profile syncs the folder {}; use another profile (savesync pair \
             --profile NAME) for a mount",
            folder.display()
        );
    }
    Ok(())
}

/// Start the mount daemon in the background and wait for the kernel to list the mount.
fn detach(args: &MountArgs, profile: &Profile) -> anyhow::Result<()> {
    let up = super::daemon::detach(profile, "mount daemon", Duration::from_secs(30), |_| {
        is_fuse_mounted(&args.mountpoint)
    })?;
    println!(
        "Mounted {} (pid {}, log {}). Unmount with: fusermount3 -u {}",
        args.mountpoint.display(),
        up.pid,
        up.log_path.display(),
        args.mountpoint.display()
    );
    Ok(())
}

fn allow_other_default() -> bool {
    nix::unistd::geteuid().is_root()
        || std::fs::read_to_string("/etc/fuse.conf")
            .is_ok_and(|t| t.lines().any(|l| l.trim() == "user_allow_other"))
}

/// Hold an exclusive lock on the profile's data dir for the daemon's lifetime: two
/// daemons on one cache and state DB would undo each other's work. `savesync resolve`
/// takes the same lock while it changes the state of an unmounted profile.
pub(crate) fn lock_data_dir(profile: &Profile) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    std::fs::create_dir_all(&profile.data_dir)?;
    let path = profile.data_dir.join("daemon.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        anyhow::anyhow!(
            "this profile is in use by another savesync process (a mount, or a \
                 `savesync resolve` in progress)"
        )
    })
}

fn run_foreground(args: &MountArgs, profile: &Profile) -> anyhow::Result<()> {
    super::init_tracing("info,fuser=warn");
    let _lock = lock_data_dir(profile)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("savesync-sync")
        .build()?;
    let client = savesync_client::Client::new(&profile.server_url, Some(profile.token.clone()))
        .context("bad server URL in profile")?;
    let mut cfg = FsConfig::new(&profile.data_dir);
    cfg.uid = args.uid.unwrap_or(cfg.uid);
    cfg.gid = args.gid.unwrap_or(cfg.gid);
    cfg.file_mode = args.file_mode;
    cfg.dir_mode = args.dir_mode;
    cfg.debounce = Duration::from_millis(args.debounce_ms);
    cfg.prefetch_max_bytes = args.prefetch_max_bytes;
    cfg.event_silence = Duration::from_millis(args.event_silence_ms.max(1));
    cfg.offline_backoff_max = Duration::from_millis(args.offline_backoff_max_ms.max(1));
    cfg.retry_backoff = Duration::from_millis(args.retry_backoff_ms.max(1));
    cfg.show_history = args.show_history;
    cfg.bulk = args.bulk.limits();
    let fs = SaveFs::load(cfg, Arc::new(ClientRemote::new(client)), rt.handle().clone())
        .with_context(|| format!("opening state in {}", profile.data_dir.display()))?;

    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("savesync".into()),
        MountOption::Subtype("savesync".into()),
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
    ];
    if args.allow_other.unwrap_or_else(allow_other_default) {
        config.acl = SessionACL::All;
    }
    config.n_threads = Some(args.threads.max(1));
    let mountpoint = std::fs::canonicalize(&args.mountpoint)
        .unwrap_or_else(|_| args.mountpoint.clone())
        .display()
        .to_string();
    // The row names this daemon before the kernel shows the mount: whoever sees the mount
    // (`status --wait` right after `savesync mount`) also sees who serves it.
    let first_row = status_row(&fs, Some(&mountpoint));
    write_status(&fs, &first_row);
    let session = fuser::Session::new(SaveFsFuse::new(Arc::clone(&fs)), &args.mountpoint, &config)
        .with_context(|| format!("mounting {}", args.mountpoint.display()))
        .inspect_err(|_| write_status(&fs, &status_row(&fs, None)))?;
    let notifier = session.notifier();
    let (tx, rx) = std::sync::mpsc::channel::<Invalidation>();
    fs.set_invalidation_sink(tx);
    std::thread::Builder::new().name("savesync-inval".into()).spawn(move || {
        // Outside every FUSE callback: the kernel may call back into us while handling
        // these, which would deadlock a worker that sent them.
        for inval in rx {
            let _ = match &inval {
                Invalidation::Inode(ino) => notifier.inval_inode(INodeNo(*ino), 0, 0),
                Invalidation::Entry { parent, name } => {
                    notifier.inval_entry(INodeNo(*parent), OsStr::new(name))
                }
            };
        }
    })?;
    let bg = session.spawn().context("starting FUSE workers")?;
    tracing::info!(%mountpoint, server = %profile.server_url, "mounted");

    let (engine, check, stop) = rt.block_on(async {
        let engine = fs.engine().start();
        // After an unclean stop: the cache is checked while the mount already serves.
        let check = fs.start_cache_check().unwrap_or_else(|e| {
            tracing::warn!("cannot start the cache check ({e}): the next start tries again");
            None
        });
        let stop = wait_for_stop(&fs, &bg, &mountpoint, first_row).await;
        (engine, check, stop)
    });
    if let Some(check) = check {
        check.stop();
    }
    if matches!(stop, Stop::Asked) {
        tracing::info!("unmounting");
    }
    // After an unmount from outside the kernel already let go of the mount, so unmounting
    // it again fails (EINVAL) and says nothing new. Taking the mount here all the same
    // keeps fuser from retrying the unmount, and warning about it, when the session drops.
    if let Err(e) = bg.umount_and_join() {
        match stop {
            Stop::Asked => {
                tracing::warn!("clean unmount failed ({e}); detaching lazily");
                let _ = lazy_unmount(Path::new(&mountpoint));
            }
            Stop::UnmountedOutside => tracing::debug!("the mount was already gone: {e}"),
        }
    }
    rt.block_on(engine.drain(Duration::from_secs(3)));
    engine.stop();
    write_status(&fs, &status_row(&fs, None));
    if let Err(e) = fs.tree().close_clean() {
        tracing::warn!("the next start will rescan the cache: {e}");
    }
    tracing::info!("stopped");
    Ok(())
}

fn status_row(fs: &SaveFs, mountpoint: Option<&str>) -> StatusRow {
    StatusRow {
        online: mountpoint.is_some() && fs.is_online(),
        last_error: fs.engine().last_error(),
        mountpoint: mountpoint.map(str::to_owned),
        pid: mountpoint.map(|_| std::process::id()),
        updated_ms: now_ms(),
        save_bytes_read: fs.save_bytes_read(),
    }
}

fn write_status(fs: &SaveFs, row: &StatusRow) {
    if let Err(e) = fs.state().write_status(row) {
        tracing::warn!("writing status: {e}");
    }
}

/// Why the mount is stopping.
enum Stop {
    /// Ctrl-C or SIGTERM: the daemon unmounts.
    Asked,
    /// Somebody ran `fusermount3 -u` (or `umount`): the mount is already gone.
    UnmountedOutside,
}

/// Keep the status row fresh until Ctrl-C, SIGTERM, or the mount going away. `written`
/// is the row already written before mounting.
async fn wait_for_stop(
    fs: &SaveFs,
    bg: &fuser::BackgroundSession,
    mountpoint: &str,
    written: StatusRow,
) -> Stop {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last = written;
    loop {
        // Written when something changed (or every few seconds as a heartbeat): each
        // write is a durable SQLite commit.
        let row = status_row(fs, Some(mountpoint));
        let stale = last.online != row.online
            || last.last_error != row.last_error
            || last.save_bytes_read != row.save_bytes_read
            || row.updated_ms - last.updated_ms > 5_000;
        if stale {
            write_status(fs, &row);
            last = row;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Stop::Asked,
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => return Stop::Asked,
            _ = tick.tick() => {
                if bg.guard.is_finished() {
                    tracing::info!("unmounted from outside");
                    return Stop::UnmountedOutside;
                }
            }
        }
    }
}
