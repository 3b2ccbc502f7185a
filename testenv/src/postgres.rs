//! A throwaway Postgres cluster for tests and benchmarks: `initdb` + `pg_ctl` into a temp
//! directory, listening on a free 127.0.0.1 port and a unix socket in that directory, one
//! per process (started on first use), with a fresh database per caller
//! ([`fresh_database`]).
//!
//! Postgres refuses to run as root, so when we are root every Postgres program runs as the
//! `postgres` OS user (the Debian package creates it), and the directory belongs to it.
//!
//! Statics are never dropped, so removal does not rely on a destructor: a watchdog process
//! (running as the cluster's owner) waits for EOF on a pipe only this process holds open,
//! which closes however the process ends (even `kill -9`); it then stops the cluster
//! (`pg_ctl stop -m immediate`) and removes the directory. A start also removes leftovers
//! of earlier processes that are gone (directory names carry the owning pid).
//!
//! Binaries: `$SAVESYNC_PG_BIN` if set, else the newest `/usr/lib/postgresql/<ver>/bin`
//! (where Debian puts them), else `initdb` on `PATH`.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

/// Prefix of every cluster directory under the temp dir; the owning pid follows.
const DIR_PREFIX: &str = "savesync-testenv-pg-";
/// The cluster's superuser (trust authentication: loopback and a private socket only).
const SUPERUSER: &str = "postgres";

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    owner: Option<(u32, u32)>,
    /// Held open for the life of the process; its closing tells the watchdog to clean up.
    _watchdog: Mutex<ChildStdin>,
    /// Serialises `createdb` calls.
    create_lock: Mutex<()>,
}

static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The process's cluster, started on first use. `None` when Postgres is not installed and
/// `CI` is not `true` (callers print `SKIPPED:`); panics under `CI=true` then, or when the
/// cluster cannot start.
pub fn cluster() -> Option<&'static Cluster> {
    CLUSTER
        .get_or_init(|| match find_bin() {
            Some(bin) => Some(Cluster::start(bin).unwrap_or_else(|e| panic!("postgres: {e}"))),
            None if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("postgres: initdb not found (run .ci/install-deps) and CI=true")
            }
            None => None,
        })
        .as_ref()
}

/// A new, empty database on the process's cluster: its URL
/// (`postgres://postgres@127.0.0.1:<port>/<name>`). `None` as for [`cluster`].
pub fn fresh_database() -> Option<String> {
    let cluster = cluster()?;
    Some(cluster.create_database().unwrap_or_else(|e| panic!("postgres: {e}")))
}

/// Why Postgres is unavailable, for a test's `SKIPPED:` line.
pub const MISSING: &str =
    "Postgres (initdb) is not installed; run .ci/install-deps or set SAVESYNC_PG_BIN";

impl Cluster {
    /// The TCP port on 127.0.0.1.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the unix socket (`?host=` in a URL).
    #[must_use]
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// URL of database `name` over TCP.
    #[must_use]
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Create a database with a name unique in this cluster; returns its URL.
    pub fn create_database(&self) -> Result<String, String> {
        let _one = self.create_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let name = format!("t{}_{}", std::process::id(), NEXT_DB.fetch_add(1, Ordering::Relaxed));
        let sock = self.socket_dir();
        let port = self.port.to_string();
        let mut createdb = self.command("createdb");
        createdb.args(["-h"]).arg(&sock).args(["-p", &port, "-U", SUPERUSER, &name]);
        run(createdb, "createdb")?;
        Ok(self.url(&name))
    }

    fn start(bin: PathBuf) -> Result<Cluster, String> {
        remove_leftovers(&bin);
        let owner = owner_ids()?;
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sock"))
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
        if let Some((uid, gid)) = owner {
            for path in [dir.clone(), dir.join("sock")] {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .map_err(|e| format!("chown {}: {e}", path.display()))?;
            }
        }
        let port = free_port()?;
        let mut cluster = Cluster {
            _watchdog: Mutex::new(watchdog(&bin, &dir, owner)?),
            dir,
            bin,
            port,
            owner,
            create_lock: Mutex::new(()),
        };
        let data = cluster.dir.join("data");
        let mut initdb = cluster.command("initdb");
        initdb.arg("-D").arg(&data).args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        ]);
        run(initdb, "initdb")?;
        // A lost race for the port (another process bound it in between) fails the start;
        // try a few fresh ports before giving up.
        let mut last = String::new();
        for _ in 0..3 {
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
                cluster.port,
                cluster.socket_dir().display()
            );
            let mut pg_ctl = cluster.command("pg_ctl");
            pg_ctl
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(cluster.dir.join("postgres.log"))
                .args(["-w", "-t", "60", "-o", &options, "start"]);
            match run(pg_ctl, "pg_ctl start") {
                Ok(()) => return Ok(cluster),
                Err(e) => {
                    last = e;
                    cluster.port = free_port()?;
                }
            }
        }
        let log = std::fs::read_to_string(cluster.dir.join("postgres.log")).unwrap_or_default();
        Err(format!("{last}\n--- postgres.log ---\n{log}"))
    }

    /// A Postgres program of this cluster's installation, run as the cluster's owner.
    fn command(&self, program: &str) -> Command {
        as_owner(Command::new(self.bin.join(program)), self.owner)
    }
}

/// Run `cmd` to completion; its output goes into the error when it fails.
fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn as_owner(mut cmd: Command, owner: Option<(u32, u32)>) -> Command {
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid).env("HOME", "/tmp").env("USER", SUPERUSER).current_dir("/");
    }
    cmd
}

/// `Some((uid, gid))` of the `postgres` OS user when we are root (Postgres refuses to run
/// as root); `None` when we are not root (run as ourselves).
fn owner_ids() -> Result<Option<(u32, u32)>, String> {
    let euid = std::fs::metadata("/proc/self").map_err(|e| format!("/proc/self: {e}"))?.uid();
    if euid != 0 {
        return Ok(None);
    }
    let id = |flag: &str| -> Result<u32, String> {
        let out = Command::new("id")
            .args([flag, SUPERUSER])
            .output()
            .map_err(|e| format!("id {flag} {SUPERUSER}: {e}"))?;
        String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|_| {
            format!("we are root and there is no `{SUPERUSER}` user to run Postgres as")
        })
    };
    Ok(Some((id("-u")?, id("-g")?)))
}

/// The watchdog: waits for EOF on its stdin (this process's end closes when the process
/// ends), then stops the cluster and removes its directory.
fn watchdog(bin: &Path, dir: &Path, owner: Option<(u32, u32)>) -> Result<ChildStdin, String> {
    let script = "cat >/dev/null; \"$1/pg_ctl\" -D \"$2/data\" -m immediate stop >/dev/null 2>&1; \
                  rm -rf \"$2\"";
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script).arg("watchdog").arg(bin).arg(dir);
    let mut child = as_owner(cmd, owner)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a test harness that signals ours must not kill it first.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting the cleanup watchdog: {e}"))?;
    child.stdin.take().ok_or_else(|| "watchdog has no stdin".to_owned())
}

/// Stop and remove clusters left by processes that no longer exist.
fn remove_leftovers(bin: &Path) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = entry.path();
        let data = dir.join("data");
        if data.join("postmaster.pid").exists() {
            let owner = std::fs::metadata(&data).ok().map(|m| (m.uid(), m.gid()));
            let owner = owner.filter(|_| owner_ids().ok().flatten().is_some());
            let mut stop = as_owner(Command::new(bin.join("pg_ctl")), owner);
            stop.arg("-D").arg(&data).args(["-m", "immediate", "stop"]);
            let _ = run(stop, "pg_ctl stop");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A port nobody listens on right now.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| format!("finding a port: {e}"))
}

/// Where `initdb` and friends are.
fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SAVESYNC_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.split('.').next()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_fresh_databases_are_distinct_urls_on_one_cluster() {
        let Some(a) = super::fresh_database() else {
            println!("SKIPPED: {}", super::MISSING);
            return;
        };
        let b = super::fresh_database().unwrap();
        assert_ne!(a, b);
        let cluster = super::cluster().unwrap();
        assert!(a.starts_with(&format!("postgres://postgres@127.0.0.1:{}/", cluster.port())));
        assert!(cluster.socket_dir().join(format!(".s.PGSQL.{}", cluster.port())).exists());
    }
}
