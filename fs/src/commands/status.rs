//! `savesync status`, `savesync conflicts`, `savesync resolve`: read (and for resolve,
//! change) the state DB of a profile. They work while the daemon runs: the DB is in WAL
//! mode and the daemon keeps a status row fresh. Resolve goes through the mount when it is
//! mounted, and always for a synced folder (the same file operations a user would do:
//! delete `NAME.conflict`, or rename it over `NAME`), else works on the local state
//! while holding the daemon's lock (`data_dir/daemon.lock`), so a daemon cannot start
//! meanwhile, and resolve refuses while a daemon is starting.

use super::mountinfo::is_fuse_mounted;
use super::status_wait::{FOLDER_SETTLE, Sample, wait_until_synced};
use crate::cli::{Keep, ResolveArgs, StatusArgs, StatusCmdArgs};
use crate::folder::wait_barrier::Barrier;
use crate::profile::Profile;
use crate::remote::OfflineRemote;
use crate::savefs::{FsConfig, SaveFs};
use crate::state::StateDb;
use crate::tree::cache_check::{self, CacheCheck};
use anyhow::Context;
use savesync_core::{CONFLICT_SUFFIX, SavePath};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

pub(crate) fn open_db(profile: &Profile) -> anyhow::Result<Option<StateDb>> {
    let path = profile.data_dir.join("state.db");
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(StateDb::open_existing(&path).with_context(|| format!("opening {}", path.display()))?))
}

/// What a profile's running daemon serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Live {
    /// A FUSE mount at this path.
    Mount(String),
    /// A synced folder (`savesync sync DIR`).
    Folder(String),
}

impl Live {
    pub(crate) fn path(&self) -> &str {
        match self {
            Live::Mount(p) | Live::Folder(p) => p,
        }
    }
}

/// True while `pid` is a running `savesync ... sync` process (a recycled pid of another
/// program does not count).
fn sync_daemon_alive(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == b"sync"))
}

/// The profile's running daemon and what it serves, if one runs.
pub(crate) fn live(db: &StateDb) -> Option<Live> {
    let status = db.read_status().ok()??;
    let mp = status.mountpoint?;
    let pid = status.pid?;
    if super::sync::folder_of(db).is_some_and(|f| f == Path::new(&mp)) {
        return sync_daemon_alive(pid).then_some(Live::Folder(mp));
    }
    (Path::new(&format!("/proc/{pid}")).exists() && is_fuse_mounted(Path::new(&mp)))
        .then_some(Live::Mount(mp))
}

/// The live mountpoint (or synced folder) of the profile's daemon, if it runs: saves are
/// files below it either way.
pub(crate) fn live_mountpoint(db: &StateDb) -> Option<String> {
    live(db).map(|l| l.path().to_owned())
}

pub fn status(cmd: &StatusCmdArgs) -> anyhow::Result<()> {
    let args = &cmd.common;
    let profile = Profile::load(&args.profile)?;
    let db = open_db(&profile)?;
    if cmd.wait
        && let Some(db) = &db
    {
        wait_for_sync(db, std::time::Duration::from_secs(cmd.timeout))?;
    }
    let (running, online, cursor, pending, conflicts, last_error, bytes_read, given_up, updated) =
        match &db {
            None => (None, false, 0, 0, 0, None, 0, Vec::new(), 0),
            Some(db) => {
                let st = db.read_status()?.unwrap_or_default();
                let mp = live(db);
                (
                    mp.clone(),
                    mp.is_some() && st.online,
                    db.cursor()?.0,
                    db.pending_count()?,
                    db.conflicts()?.len(),
                    st.last_error,
                    st.save_bytes_read,
                    db.given_up()?,
                    st.updated_ms,
                )
            }
        };
    let check = match &db {
        Some(db) => mount_check(db, running.as_ref())?,
        None => None,
    };
    let mounted = match &running {
        Some(Live::Mount(p)) => Some(p.clone()),
        _ => None,
    };
    let folder = match &running {
        Some(Live::Folder(p)) => Some(p.clone()),
        _ => None,
    };
    if args.json {
        let v = json!({
            "profile": args.profile,
            "server_url": profile.server_url,
            "user": profile.user,
            "device_id": profile.device_id,
            "data_dir": profile.data_dir,
            "mounted": mounted.is_some(),
            "mountpoint": mounted,
            "synced_folder": folder,
            "online": online,
            "cursor": cursor,
            "pending": pending,
            "conflicts": conflicts,
            "last_error": last_error,
            "save_bytes_read": bytes_read,
            "given_up": given_up,
            "cache_check": check.map(|c| json!({"checked": c.checked, "total": c.total})),
            "status_updated_ms": updated,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("profile:    {} ({} as {})", args.profile, profile.server_url, profile.user);
    match &running {
        Some(Live::Mount(mp)) => println!("mounted:    {mp}"),
        Some(Live::Folder(dir)) => println!("synced:     folder {dir}"),
        None => println!("mounted:    no"),
    }
    println!("server:     {}", if online { "online" } else { "offline" });
    println!("cursor:     {cursor}");
    println!("pending:    {pending} save(s) waiting to sync");
    if let Some(c) = check {
        println!(
            "checking:   the cache after an unclean stop, {} of {} saves{}",
            c.checked,
            c.total,
            if running.is_some() { "" } else { " (goes on when mounted)" }
        );
    }
    println!("conflicts:  {conflicts}");
    println!("read:       {bytes_read} bytes of saves read to hash or upload");
    if let Some(e) = last_error {
        println!("last error: {e}");
    }
    if !given_up.is_empty() {
        println!(
            "given up:   {} save(s) the server refused; changing one retries it",
            given_up.len()
        );
        for g in &given_up {
            println!("            {}: {}", g.path, g.error);
        }
    }
    Ok(())
}

/// `status --wait` (see `status_wait`). In a synced folder a barrier first makes sure the
/// watcher reported every change made before the wait; where none can be raised (a
/// read-only folder), an empty queue is believed after [`FOLDER_SETTLE`].
fn wait_for_sync(db: &StateDb, timeout: std::time::Duration) -> anyhow::Result<()> {
    let barrier = match live(db) {
        Some(Live::Folder(root)) => Some(Barrier::raise(db, Path::new(&root))),
        _ => None,
    };
    let start = std::time::Instant::now();
    wait_until_synced(timeout, || {
        let running = live(db);
        let daemon = running.is_some();
        let settled = match &barrier {
            None => true,
            Some(Ok(barrier)) => barrier.passed()?,
            Some(Err(_)) => start.elapsed() >= FOLDER_SETTLE,
        };
        Ok(Sample {
            pending: db.pending_count()?,
            daemon,
            online: daemon && db.read_status()?.is_some_and(|s| s.online),
            settled,
            check: mount_check(db, running.as_ref())?,
        })
    })
}

/// The mount's check of its cache after an unclean stop, if due. A synced folder has no
/// such cache: while one runs on the profile, a row left by an earlier mount waits for the
/// next mount and is not shown.
fn mount_check(db: &StateDb, running: Option<&Live>) -> anyhow::Result<Option<CacheCheck>> {
    if matches!(running, Some(Live::Folder(_))) {
        return Ok(None);
    }
    Ok(cache_check::due(db)?)
}

pub fn conflicts(args: &StatusArgs) -> anyhow::Result<()> {
    let profile = Profile::load(&args.profile)?;
    let rows = match open_db(&profile)? {
        Some(db) => db.conflicts()?,
        None => Vec::new(),
    };
    if args.json {
        let list: Vec<_> = rows
            .iter()
            .map(|c| {
                json!({
                    "path": c.path.as_str(),
                    "conflict_name": format!("{}{CONFLICT_SUFFIX}", c.path.as_str()),
                    "their_rev": c.rev.0,
                    "their_hash": c.hash.to_hex(),
                    "their_size": c.size,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "conflicts": list }))?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("No conflicts.");
    }
    for c in &rows {
        println!("{}  (theirs: rev {}, {} bytes)", c.path, c.rev, c.size);
    }
    if !rows.is_empty() {
        println!("Resolve with: savesync resolve PATH --keep mine|theirs");
    }
    Ok(())
}

pub fn resolve(args: &ResolveArgs) -> anyhow::Result<()> {
    let profile = Profile::load(&args.profile)?;
    let rel = args.path.trim_start_matches('/');
    let path =
        SavePath::parse(rel).with_context(|| format!("{:?} is not a save path", args.path))?;
    let db = open_db(&profile)?.context("this profile was never mounted: nothing to resolve")?;
    let live = live_mountpoint(&db);
    // A synced folder (running or not) is resolved by the file operation itself, in the
    // folder: the daemon's watcher applies it, or the next start's rescan does.
    let folder = super::sync::folder_of(&db).map(|f| f.display().to_string());
    let files = live.or(folder);
    // No live mount: work on the state directly, under the daemon's lock, so a daemon that
    // is starting up (or starts now) never sees half of it, and none of its files are
    // touched while it runs.
    let _lock = match &files {
        None => Some(super::mount::lock_data_dir(&profile).context("cannot resolve now")?),
        Some(_) => None,
    };
    anyhow::ensure!(db.conflict(&path)?.is_some(), "{path} has no conflict");
    if let Some(mp) = files {
        let target = Path::new(&mp).join(path.as_str());
        let copy = Path::new(&mp).join(format!("{}{CONFLICT_SUFFIX}", path.as_str()));
        match args.keep {
            Keep::Mine => std::fs::remove_file(&copy),
            Keep::Theirs => std::fs::rename(&copy, &target),
        }
        .with_context(|| format!("resolving in {mp}"))?;
    } else {
        drop(db);
        let rt = super::small_runtime()?;
        let fs = SaveFs::load(
            FsConfig::new(&profile.data_dir),
            Arc::new(OfflineRemote),
            rt.handle().clone(),
        )?;
        fs.resolve_path(&path, args.keep == Keep::Mine)
            .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        // Like a mount's clean stop: else the next mount would take this for a crash.
        fs.tree().close_clean()?;
    }
    let verdict = match args.keep {
        Keep::Mine => "this device's version is kept and will be uploaded",
        Keep::Theirs => "the other version replaced this device's copy",
    };
    println!("Resolved {path}: {verdict}.");
    Ok(())
}
