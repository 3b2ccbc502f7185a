//! [`RetryPolicy`]: exponential backoff with full jitter for transient failures, bounded
//! both in attempts and in total time so a caller is never stuck retrying forever.
//!
//! Only errors that [`ClientError::is_transient`] are retried. Requests that are not safe to
//! repeat once the server has seen them (pairing consumes its one-time code) are retried
//! only when the connection never got through ([`Repeat::OnlyIfNeverSent`]). Uploads,
//! deletes and reads are safe: the server answers a re-upload of the head's hash (or a
//! re-delete of a tombstone) with the head instead of a conflict.

use crate::error::Result;
use rand::Rng;
use std::future::Future;
use std::time::{Duration, Instant};

/// How often and how long to retry transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first; 1 means "never retry".
    pub max_attempts: u32,
    /// Backoff ceiling before the first retry; doubles on every retry.
    pub initial_backoff: Duration,
    /// Largest backoff ceiling.
    pub max_backoff: Duration,
    /// No retry starts after this much time since the first attempt.
    pub max_elapsed: Duration,
}

impl RetryPolicy {
    /// One attempt, no retries (tests that want to see the first failure use this).
    #[must_use]
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            initial_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
            max_elapsed: Duration::ZERO,
        }
    }

    /// The ceiling of the random delay before retry number `retry` (1-based).
    #[must_use]
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }

    /// A random delay in `[ceiling/2, ceiling]` ("equal jitter"): spreads out devices that
    /// all lost the server at the same moment, yet never retries immediately.
    fn jittered_delay(&self, retry: u32) -> Duration {
        let ceiling = self.backoff_ceiling(retry);
        let half = ceiling / 2;
        let extra_ms = u64::try_from((ceiling - half).as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rand::rng().random_range(0..=extra_ms))
    }
}

impl Default for RetryPolicy {
    /// Five attempts, 200 ms doubling up to 5 s, at most 30 s in all.
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(30),
        }
    }
}

/// Whether a request may be sent again after the server may have seen it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// Repeating has the same effect as sending once (reads, CAS writes, revoke).
    Safe,
    /// Repeating could have a different effect (pairing): retry only connect failures.
    OnlyIfNeverSent,
}

/// Run `attempt` until it succeeds, fails permanently, or the policy is exhausted.
pub(crate) async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    repeat: Repeat,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let started = Instant::now();
    let mut retry = 0u32;
    loop {
        let err = match attempt().await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        retry += 1;
        let retryable = match repeat {
            Repeat::Safe => err.is_transient(),
            Repeat::OnlyIfNeverSent => err.never_sent(),
        };
        let delay = policy.jittered_delay(retry);
        if !retryable
            || retry >= policy.max_attempts
            || started.elapsed() + delay > policy.max_elapsed
        {
            return Err(err);
        }
        tracing::debug!(retry, ?delay, error = %err, "transient failure, retrying");
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientError;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            max_elapsed: Duration::from_secs(5),
        }
    }

    fn transient() -> ClientError {
        ClientError::Timeout(Duration::from_secs(1))
    }

    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff_ceiling(1), Duration::from_millis(200));
        assert_eq!(p.backoff_ceiling(2), Duration::from_millis(400));
        assert_eq!(p.backoff_ceiling(10), Duration::from_secs(5));
        assert_eq!(p.backoff_ceiling(u32::MAX), Duration::from_secs(5));
        for retry in 1..8 {
            let d = p.jittered_delay(retry);
            assert!(d <= p.backoff_ceiling(retry) && d >= p.backoff_ceiling(retry) / 2);
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let out = run(&fast(5), Repeat::Safe, || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 { Err(transient()) } else { Ok(7) }
        })
        .await;
        assert_eq!(out.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn attempts_are_bounded() {
        let calls = AtomicU32::new(0);
        let out: Result<()> = run(&fast(3), Repeat::Safe, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(transient())
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_failures_and_unsafe_repeats_are_not_retried() {
        let calls = AtomicU32::new(0);
        let out: Result<()> = run(&fast(5), Repeat::Safe, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(ClientError::Decode("bad".into()))
        })
        .await;
        assert!(out.is_err());
        let unsafe_calls = AtomicU32::new(0);
        let out: Result<()> = run(&fast(5), Repeat::OnlyIfNeverSent, || async {
            unsafe_calls.fetch_add(1, Ordering::SeqCst);
            Err(transient())
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst) + unsafe_calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn none_means_one_attempt() {
        assert_eq!(RetryPolicy::none().max_attempts, 1);
    }
}
