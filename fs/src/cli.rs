//! Command line of `savesync` (clap derive). Every mount flag can also come from a
//! `SAVESYNC_*` environment variable. The subcommands live in `crate::commands`, which
//! also dispatches to them (`crate::commands::cli_main`).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// savesync: your game saves on every device, through a FUSE mount backed by a local
/// cache and a sync server.
#[derive(Debug, Parser)]
#[command(name = "savesync", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pair this device with a server using a one-time code (from `savesync-server pair`).
    Pair(PairArgs),
    /// Mount the save library at MOUNTPOINT (detaches unless --foreground).
    Mount(MountArgs),
    /// Keep the ordinary folder DIR in sync with the library (detaches unless --foreground);
    /// for devices without FUSE.
    #[command(after_help = "Examples:\n  savesync sync ~/RetroArch/saves --dry-run\n  \
        savesync sync ~/RetroArch/saves\n\n\
        Files the server lacks are uploaded; files that differ from the server become \
        conflicts (NAME.conflict beside them), never silent overwrites.")]
    Sync(SyncArgs),
    /// Show online/offline, feed cursor, pending uploads, conflicts, last error, and the
    /// check of the cache after an unclean stop while it runs.
    #[command(after_help = "Examples:\n  savesync status\n  \
        savesync status --wait --timeout 60 && poweroff\n\n\
        --wait exits 0 once nothing waits to sync, and 1 if the timeout passes first or no \
        daemon runs to sync what waits.")]
    Status(StatusCmdArgs),
    /// List saves in conflict (each has a `NAME.conflict` sibling in the mount).
    Conflicts(StatusArgs),
    /// Resolve a conflict: keep this device's version (mine) or the other one (theirs).
    Resolve(ResolveArgs),
    /// Stop syncing one save on this device (other devices keep syncing it).
    Untrack(TrackArgs),
    /// Sync a save on this device again after `untrack`.
    Track(TrackArgs),
    /// List the versions the server keeps of one save, newest first.
    #[command(after_help = "Examples:\n  savesync history \"snes/Chrono Trigger.srm\"\n  \
        savesync history ~/Saves/snes/\"Chrono Trigger.srm\" --json")]
    History(HistoryArgs),
    /// Write one version's bytes to stdout (the live save is not touched).
    #[command(
        after_help = "Example:\n  savesync cat \"snes/Chrono Trigger.srm\" --version 3 > before-boss.srm"
    )]
    Cat(VersionArgs),
    /// Make an old version the head again (a new commit; the versions after it are kept).
    #[command(
        after_help = "Example:\n  savesync restore \"snes/Chrono Trigger.srm\" --version 3\n\n\
        Refused, with nothing changed, if the save changes on the server meanwhile."
    )]
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct PairArgs {
    /// Server URL, e.g. http://nas.local:7878
    pub url: String,
    /// One-time pairing code, e.g. ABCD-EFGH
    pub code: String,
    /// Device name shown in the server's device list (default: host name).
    #[arg(long)]
    pub name: Option<String>,
    /// Device kind: handheld, desktop, steamdeck, server ...
    #[arg(long, default_value = "desktop")]
    pub kind: String,
    /// Profile to write.
    #[arg(long, env = "SAVESYNC_PROFILE", default_value = "default")]
    pub profile: String,
    /// Where this device keeps its cache and state (default: $XDG_DATA_HOME/savesync/PROFILE).
    #[arg(long, env = "SAVESYNC_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// Empty directory to mount the save library on.
    pub mountpoint: PathBuf,
    /// Profile to use.
    #[arg(long, env = "SAVESYNC_PROFILE", default_value = "default")]
    pub profile: String,
    /// Stay in the foreground (logs to stderr; Ctrl-C unmounts).
    #[arg(long, env = "SAVESYNC_FOREGROUND")]
    pub foreground: bool,
    /// Set by `mount` when it re-runs itself as the background daemon: start a new session
    /// (setsid) so closing the terminal does not hang up the daemon.
    #[arg(long, hide = true, requires = "foreground")]
    pub detached: bool,
    /// Let other users (Samba, sftp-server) use the mount. Default: true when root or when
    /// /etc/fuse.conf has user_allow_other.
    #[arg(long, env = "SAVESYNC_ALLOW_OTHER", value_name = "BOOL")]
    pub allow_other: Option<bool>,
    /// Owner shown for saves from the server (default: the calling user).
    #[arg(long, env = "SAVESYNC_UID")]
    pub uid: Option<u32>,
    /// Group shown for saves from the server (default: the calling user's group).
    #[arg(long, env = "SAVESYNC_GID")]
    pub gid: Option<u32>,
    /// Mode of saves from the server, octal.
    #[arg(long, env = "SAVESYNC_FILE_MODE", default_value = "644", value_parser = parse_octal)]
    pub file_mode: u32,
    /// Mode of directories from the server, octal.
    #[arg(long, env = "SAVESYNC_DIR_MODE", default_value = "755", value_parser = parse_octal)]
    pub dir_mode: u32,
    /// FUSE worker threads.
    #[arg(long, env = "SAVESYNC_THREADS", default_value_t = 4)]
    pub threads: usize,
    /// Quiet time after close/fsync before uploading, in milliseconds.
    #[arg(long, env = "SAVESYNC_DEBOUNCE_MS", default_value_t = 100)]
    pub debounce_ms: u64,
    /// Remote changes up to this size are downloaded at once for offline play.
    #[arg(long, env = "SAVESYNC_PREFETCH_MAX_BYTES", default_value_t = 1024 * 1024)]
    pub prefetch_max_bytes: u64,
    /// The server's event stream counts as lost after this long without a single byte
    /// (the server sends a keep-alive every 15 s by default), in milliseconds.
    #[arg(long, env = "SAVESYNC_EVENT_SILENCE_MS", default_value_t = 45_000)]
    pub event_silence_ms: u64,
    /// Longest wait between reachability probes while the server is unreachable, in
    /// milliseconds (a local change probes at once).
    #[arg(long, env = "SAVESYNC_OFFLINE_BACKOFF_MAX_MS", default_value_t = 300_000)]
    pub offline_backoff_max_ms: u64,
    /// First retry delay of a save whose sync failed, in milliseconds (doubles per
    /// attempt, up to 30 s).
    #[arg(long, env = "SAVESYNC_RETRY_BACKOFF_MS", default_value_t = 250)]
    pub retry_backoff_ms: u64,
    /// List the read-only `.history` directory (every save's old versions) in the mount's
    /// root. Without this it is hidden from listings but `cd .history` still works.
    #[arg(long, env = "SAVESYNC_SHOW_HISTORY")]
    pub show_history: bool,
    #[command(flatten)]
    pub bulk: BulkArgs,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The folder to keep in sync (created if missing).
    pub dir: PathBuf,
    /// Profile to use.
    #[arg(long, env = "SAVESYNC_PROFILE", default_value = "default")]
    pub profile: String,
    /// Print what the first sync would do (upload, download, conflict, same) and change
    /// nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Stay in the foreground (logs to stderr; Ctrl-C stops).
    #[arg(long, env = "SAVESYNC_FOREGROUND")]
    pub foreground: bool,
    /// Set by `sync` when it re-runs itself as the background daemon (see `mount`).
    #[arg(long, hide = true, requires = "foreground")]
    pub detached: bool,
    /// A written file is uploaded once it has been quiet this long (and is not open for
    /// writing), in milliseconds.
    #[arg(long, env = "SAVESYNC_FOLDER_DEBOUNCE_MS", default_value_t = 1000)]
    pub debounce_ms: u64,
    /// The server's event stream counts as lost after this long without a single byte,
    /// in milliseconds.
    #[arg(long, env = "SAVESYNC_EVENT_SILENCE_MS", default_value_t = 45_000)]
    pub event_silence_ms: u64,
    /// Longest wait between reachability probes while the server is unreachable, in
    /// milliseconds (a local change probes at once).
    #[arg(long, env = "SAVESYNC_OFFLINE_BACKOFF_MAX_MS", default_value_t = 300_000)]
    pub offline_backoff_max_ms: u64,
    /// First retry delay of a save whose sync failed, in milliseconds (doubles per
    /// attempt, up to 30 s).
    #[arg(long, env = "SAVESYNC_RETRY_BACKOFF_MS", default_value_t = 250)]
    pub retry_backoff_ms: u64,
    #[command(flatten)]
    pub bulk: BulkArgs,
}

/// The bulk prefetch's limits, the same for `mount` and `sync`.
#[derive(Debug, Args)]
pub struct BulkArgs {
    /// Remote saves up to this size are fetched many at a time in one bulk request (a
    /// fresh device, a burst of changes); bigger ones one by one.
    #[arg(long, env = "SAVESYNC_BULK_MAX_SAVE_BYTES", default_value_t = 1024 * 1024)]
    pub bulk_max_save_bytes: u64,
    /// Most bytes one bulk fetch brings (and keeps in temp files until each is installed);
    /// saves past it are downloaded one by one. Lower it on a device with little disk.
    #[arg(long, env = "SAVESYNC_BULK_BUDGET_BYTES", default_value_t = 128 * 1024 * 1024)]
    pub bulk_budget_bytes: u64,
}

impl BulkArgs {
    /// The engine's limits from these flags.
    #[must_use]
    pub fn limits(&self) -> crate::sync::BulkLimits {
        crate::sync::BulkLimits {
            max_save_bytes: self.bulk_max_save_bytes,
            budget_bytes: self.bulk_budget_bytes,
        }
    }
}

#[derive(Debug, Args)]
pub struct StatusCmdArgs {
    #[command(flatten)]
    pub common: StatusArgs,
    /// First wait until the running mount or synced folder has synced every save waiting
    /// in its queue, showing the count as it falls (after an unclean stop, also until the
    /// mount has checked its cache).
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds (0: wait as long as it takes).
    #[arg(long, value_name = "SECS", default_value_t = 0, requires = "wait")]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Profile to inspect.
    #[arg(long, env = "SAVESYNC_PROFILE", default_value = "default")]
    pub profile: String,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Keep {
    /// This device's version wins (it is uploaded).
    Mine,
    /// The other version wins (it replaces this device's copy).
    Theirs,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// Save path inside the library, e.g. "snes/Chrono Trigger.srm".
    pub path: String,
    /// Which version to keep.
    #[arg(long, value_enum)]
    pub keep: Keep,
    /// Profile to use.
    #[arg(long, env = "SAVESYNC_PROFILE", default_value = "default")]
    pub profile: String,
}

#[derive(Debug, Args)]
pub struct TrackArgs {
    /// Save path inside the library, e.g. "snes/Chrono Trigger.srm".
    pub path: String,
    /// Profile to use.
    #[arg(long, env = "SAVESYNC_PROFILE", default_value = "default")]
    pub profile: String,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The save: its path in the library ("snes/Chrono Trigger.srm") or a file in this
    /// profile's live mount ("~/Saves/snes/Chrono Trigger.srm").
    pub path: String,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Profile to use.
    #[arg(long, env = "SAVESYNC_PROFILE", default_value = "default")]
    pub profile: String,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// The save: its path in the library ("snes/Chrono Trigger.srm") or a file in this
    /// profile's live mount ("~/Saves/snes/Chrono Trigger.srm").
    pub path: String,
    /// Which version, as `savesync history` numbers them: a revision (3) or a conflict
    /// version (c17).
    #[arg(long, value_name = "N")]
    pub version: VersionSpec,
    /// Profile to use.
    #[arg(long, env = "SAVESYNC_PROFILE", default_value = "default")]
    pub profile: String,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub version: VersionArgs,
    /// Go ahead only if the head is still this revision (the head `history` showed you);
    /// default: the head read just before restoring.
    #[arg(long, value_name = "REV")]
    pub if_head: Option<u64>,
}

fn parse_octal(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    let mode = u32::from_str_radix(digits, 8).map_err(|e| format!("not an octal mode: {e}"))?;
    if mode > 0o7777 {
        return Err("mode must be at most 7777".into());
    }
    Ok(mode)
}

/// Which version of a save the user means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    /// The commit that made revision N.
    Rev(u64),
    /// The conflict version with this history id.
    Conflict(i64),
}

impl std::str::FromStr for VersionSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<VersionSpec, String> {
        let bad = || {
            format!("{s:?} is not a version: use a number from `savesync history`, e.g. 3 or c17")
        };
        match s.strip_prefix('c').or_else(|| s.strip_prefix('C')) {
            Some(id) => id.parse().map(VersionSpec::Conflict).map_err(|_| bad()),
            None => s.parse().map(VersionSpec::Rev).map_err(|_| bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Cli, parse_octal};
    use clap::{CommandFactory, Parser};

    #[test]
    fn modes_are_parsed_as_octal() {
        assert_eq!(parse_octal("644"), Ok(0o644));
        assert_eq!(parse_octal("0o2775"), Ok(0o2775));
        assert!(parse_octal("999").is_err());
        assert!(parse_octal("17777").is_err());
    }

    #[test]
    fn the_command_line_is_consistent_and_mount_flags_parse() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "savesync",
            "mount",
            "/mnt/saves",
            "--foreground",
            "--allow-other",
            "false",
            "--file-mode",
            "600",
            "--debounce-ms",
            "20",
        ])
        .unwrap();
        let super::Command::Mount(m) = cli.command else { panic!("not a mount") };
        assert!(m.foreground);
        assert_eq!(m.allow_other, Some(false));
        assert_eq!((m.file_mode, m.debounce_ms, m.profile.as_str()), (0o600, 20, "default"));
    }

    #[test]
    fn sync_flags_parse() {
        let cli = Cli::try_parse_from([
            "savesync",
            "sync",
            "/saves",
            "--dry-run",
            "--debounce-ms",
            "50",
            "--profile",
            "handheld",
        ])
        .unwrap();
        let super::Command::Sync(s) = cli.command else { panic!("not a sync") };
        assert!(s.dry_run && !s.foreground);
        assert_eq!((s.debounce_ms, s.profile.as_str()), (50, "handheld"));
        assert_eq!(s.dir, std::path::Path::new("/saves"));
    }
}
