//! Small measuring tools: wall-clock timing, percentiles, peak memory of a process.

use std::time::{Duration, Instant};

/// Runs `f` and returns its result with the wall-clock time it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

/// The `p`-th percentile (0..=100) of `samples` by nearest rank; zero for no samples.
pub fn percentile(samples: &[Duration], p: u32) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = (u64::from(p) * sorted.len() as u64).div_ceil(100).max(1);
    sorted[usize::try_from(rank - 1).unwrap_or(0).min(sorted.len() - 1)]
}

/// Peak resident set size (`VmHWM`) of a live process, in bytes.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    status_field_kib(pid, "VmHWM:").map(|kib| kib * 1024)
}

/// Current resident set size (`VmRSS`) of a live process, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    status_field_kib(pid, "VmRSS:").map(|kib| kib * 1024)
}

fn status_field_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `1.234 s`, `56.7 ms`, `890 µs`: readable at any scale.
pub fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 1.0 {
        format!("{secs:.3} s")
    } else if secs >= 0.001 {
        format!("{:.1} ms", secs * 1e3)
    } else {
        format!("{:.0} µs", secs * 1e6)
    }
}

pub fn fmt_mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
