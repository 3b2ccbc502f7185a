//! CPU time the mount daemon and the in-process server spend while a workload runs, read
//! from `/proc`. Wall time on a shared 2-CPU machine moves with whatever else runs; the
//! CPU each side spends per save moves far less, so it is what compares between runs.

use std::collections::HashMap;
use std::time::Duration;

/// CPU times at the start of a measurement.
pub struct CpuMark {
    daemon: Option<Duration>,
    /// Per server thread (by thread id): threads that end during the measurement only lose
    /// their own share instead of making the sum wrong.
    server: HashMap<u32, Duration>,
}

/// CPU spent between a [`CpuMark`] and now (None: that side was not running).
pub struct CpuSpent {
    pub daemon: Option<Duration>,
    pub server: Option<Duration>,
}

/// Marks the daemon's (`daemon_pid`) and the in-process server's CPU time now.
pub fn mark(daemon_pid: Option<u32>) -> CpuMark {
    CpuMark { daemon: daemon_pid.and_then(process_cpu), server: server_threads() }
}

/// What each side spent since `start`.
pub fn since(start: &CpuMark, daemon_pid: Option<u32>) -> CpuSpent {
    let daemon = start
        .daemon
        .zip(daemon_pid.and_then(process_cpu))
        .map(|(before, now)| now.saturating_sub(before));
    let now = server_threads();
    let server = (!start.server.is_empty() || !now.is_empty()).then(|| {
        now.into_iter()
            .map(|(tid, t)| t.saturating_sub(start.server.get(&tid).copied().unwrap_or_default()))
            .sum()
    });
    CpuSpent { daemon, server }
}

/// "daemon 410 µs, server 730 µs": each running side's CPU per save.
pub fn per_save(spent: &CpuSpent, saves: usize) -> String {
    let each = |d: Duration| d.as_micros() / saves.max(1) as u128;
    let sides = [("daemon", spent.daemon), ("server", spent.server)];
    let shown: Vec<String> = sides
        .iter()
        .filter_map(|(side, cpu)| cpu.map(|cpu| format!("{side} {} µs", each(cpu))))
        .collect();
    if shown.is_empty() { "-".to_owned() } else { shown.join(", ") }
}

/// User plus system time of a whole process (its ended threads included).
fn process_cpu(pid: u32) -> Option<Duration> {
    savesync_tests::proc_stat(pid).and_then(|s| stat_cpu(&s))
}

/// Each live thread of the in-process server, by thread id.
fn server_threads() -> HashMap<u32, Duration> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return HashMap::new() };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| {
            let tid = task.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            if comm.trim_end() != savesync_tests::SERVER_THREAD_NAME {
                return None;
            }
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            Some((tid, stat_cpu(&stat)?))
        })
        .collect()
}

/// utime + stime (fields 14 and 15) of a `/proc/.../stat` line.
fn stat_cpu(stat: &str) -> Option<Duration> {
    let mut fields = savesync_tests::fields_after_name(stat)?.skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    let per_second = u64::try_from(per_second).ok().filter(|&t| t > 0)?;
    Some(Duration::from_nanos((utime + stime) * 1_000_000_000 / per_second))
}
