//! Polling with a deadline: the only way tests wait for something. A short sleep between
//! polls keeps the loop cheap; the deadline bounds it, and the panic message names what
//! never happened.

use std::future::Future;
use std::time::{Duration, Instant};

/// Pause between two polls: short enough to measure sub-second propagation.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Call `f` until it returns `Some`, at most for `timeout`; panic naming `what` otherwise.
pub fn wait_until<T>(timeout: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait_until_timed(timeout, what, f).0
}

/// Like [`wait_until`], and also returns how long it took (for printed measurements).
pub fn wait_until_timed<T>(
    timeout: Duration,
    what: &str,
    f: impl FnMut() -> Option<T>,
) -> (T, Duration) {
    poll_until(timeout, f)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Call `f` until it returns `Some` or `timeout` passes: `None` on the deadline, for
/// callers that want to report a count (e.g. lost saves) rather than just panic.
pub fn poll_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<(T, Duration)> {
    let start = Instant::now();
    loop {
        if let Some(value) = f() {
            return Some((value, start.elapsed()));
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Async form of [`wait_until`] for code that runs inside a tokio runtime.
pub async fn wait_until_async<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = f().await {
            return value;
        }
        if start.elapsed() >= timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
