//! [`PairLimiter`]: throttles failed `POST /pair` attempts per client address, in bounded
//! memory.
//!
//! Pairing codes carry about 40 bits and live for minutes, so guessing is only a threat at
//! high rates; the limiter keeps each address's rate far below anything useful while an
//! honest user who mistypes a code a few times is never slowed down. There is deliberately
//! no server-wide bucket: guesses from many addresses would empty it and lock out every
//! honest device. Guessing spread over many addresses is bounded per code instead: a code
//! dies after `pairing_max_wrong_guesses` wrong guesses server-wide (see the store's
//! `redeem_pairing_code`).
//!
//! Each limit is a GCRA ("generic cell rate algorithm") bucket: one `Instant` per key,
//! the theoretical arrival time (TAT) of the next attempt. An attempt is allowed when
//! `now >= tat - burst_tolerance`; it then pushes `tat` one interval into the future. A
//! key whose TAT lies in the past has a full bucket and is indistinguishable from a key
//! never seen, so it can be forgotten: that is what keeps the table small.
//!
//! An attempt reserves a token from its client's bucket BEFORE the code is checked (so a
//! flood of concurrent guesses cannot all slip past an empty bucket) and hands it back when
//! the attempt turned out not to be a failed guess. (The `governor` crate has no way to
//! hand a token back, which is why this GCRA is written out here.) Assumes a monotonic
//! clock supplied by the caller, which keeps the arithmetic testable.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// One limit: `burst` attempts at once, then one more every `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub interval: Duration,
}

impl Rate {
    /// How far ahead of `now` the TAT may run before attempts are refused.
    fn tolerance(self) -> Duration {
        self.interval.saturating_mul(self.burst.saturating_sub(1))
    }

    /// Admit an attempt at `now` against `tat`: the new TAT, or how long to wait.
    fn admit(self, tat: Instant, now: Instant) -> Result<Instant, Duration> {
        let allowed_from = tat.checked_sub(self.tolerance()).unwrap_or(now);
        if now < allowed_from {
            return Err(allowed_from - now);
        }
        Ok(tat.max(now) + self.interval)
    }

    /// Give one attempt back (never leaving the bucket fuller than full).
    fn refund(self, tat: Instant, now: Instant) -> Instant {
        tat.checked_sub(self.interval).unwrap_or(now).max(now)
    }
}

/// The limits of the pairing endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairLimits {
    /// Per client address (IPv6 by /64, since one host usually owns a whole /64).
    pub per_client: Rate,
    /// Most client entries kept; the oldest are evicted beyond it.
    pub max_clients: usize,
}

impl Default for PairLimits {
    /// 10 failures in a row per client, then one every 30 s.
    fn default() -> Self {
        PairLimits {
            per_client: Rate { burst: 10, interval: Duration::from_secs(30) },
            max_clients: 4096,
        }
    }
}

/// An admitted attempt; give it back with [`PairLimiter::refund`] unless it failed.
#[derive(Debug)]
#[must_use = "refund the reservation when the attempt did not fail"]
pub struct Reservation {
    client: IpAddr,
}

/// Attempts refused until the given delay has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Duration,
}

/// See the module docs.
#[derive(Debug)]
pub struct PairLimiter {
    limits: PairLimits,
    state: Mutex<LimiterState>,
}

#[derive(Debug)]
struct LimiterState {
    clients: HashMap<IpAddr, Instant>,
}

/// The key a client address is limited under.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::from(segments)
            }
        },
    }
}

impl PairLimiter {
    #[must_use]
    pub fn new(limits: PairLimits) -> PairLimiter {
        PairLimiter { limits, state: Mutex::new(LimiterState { clients: HashMap::new() }) }
    }

    /// Reserve one attempt for `client` at `now`, or say how long it must wait.
    pub fn try_acquire(&self, client: IpAddr, now: Instant) -> Result<Reservation, Throttled> {
        let client = client_key(client);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let client_tat = state.clients.get(&client).copied().unwrap_or(now);
        let throttled = |retry_after| Throttled { retry_after };
        let client_next = self.limits.per_client.admit(client_tat, now).map_err(throttled)?;
        if !state.clients.contains_key(&client) && state.clients.len() >= self.limits.max_clients {
            make_room(&mut state.clients, now);
        }
        state.clients.insert(client, client_next);
        Ok(Reservation { client })
    }

    /// The reserved attempt did not fail (the code was good, or it was never checked).
    pub fn refund(&self, reservation: Reservation, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tat) = state.clients.get_mut(&reservation.client) {
            *tat = self.limits.per_client.refund(*tat, now);
        }
    }

    /// Client entries currently remembered.
    #[cfg(test)]
    #[must_use]
    pub fn tracked_clients(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).clients.len()
    }
}

/// Forget every client whose bucket has refilled; if none has, the one closest to it.
fn make_room(clients: &mut HashMap<IpAddr, Instant>, now: Instant) {
    clients.retain(|_, tat| *tat > now);
    if clients.is_empty() {
        return;
    }
    // Still full of active clients: evicting the earliest TAT forgives the client that
    // has been throttled least; the per-code guess budget still bounds everyone.
    let len_before = clients.len();
    if let Some(oldest) = clients.iter().min_by_key(|(_, tat)| **tat).map(|(ip, _)| *ip) {
        clients.remove(&oldest);
    }
    debug_assert!(clients.len() < len_before);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const SEC: Duration = Duration::from_secs(1);

    fn limits(client_burst: u32) -> PairLimits {
        PairLimits { per_client: Rate { burst: client_burst, interval: 10 * SEC }, max_clients: 8 }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_one_interval_per_attempt() {
        let limiter = PairLimiter::new(limits(3));
        let t0 = Instant::now();
        for _ in 0..3 {
            let _ = limiter.try_acquire(ip(1), t0).unwrap();
        }
        let refused = limiter.try_acquire(ip(1), t0).unwrap_err();
        assert_eq!(refused.retry_after, 10 * SEC);
        assert!(limiter.try_acquire(ip(1), t0 + 9 * SEC).is_err());
        let _ = limiter.try_acquire(ip(1), t0 + 10 * SEC).unwrap();
        assert!(limiter.try_acquire(ip(1), t0 + 10 * SEC).is_err());
    }

    #[test]
    fn one_clients_failures_do_not_throttle_another_client() {
        let limiter = PairLimiter::new(limits(2));
        let t0 = Instant::now();
        let _ = limiter.try_acquire(ip(1), t0).unwrap();
        let _ = limiter.try_acquire(ip(1), t0).unwrap();
        assert!(limiter.try_acquire(ip(1), t0).is_err());
        let _ = limiter.try_acquire(ip(2), t0).unwrap();
    }

    #[test]
    fn guesses_from_many_addresses_never_throttle_a_fresh_address() {
        let limiter = PairLimiter::new(limits(10));
        let t0 = Instant::now();
        for n in 0..30 {
            for _ in 0..10 {
                let _ = limiter.try_acquire(ip(n), t0).unwrap();
            }
        }
        let _ = limiter.try_acquire(ip(200), t0).unwrap();
    }

    #[test]
    fn refunded_attempts_never_count_against_the_client() {
        let limiter = PairLimiter::new(limits(2));
        let t0 = Instant::now();
        for _ in 0..50 {
            let reservation = limiter.try_acquire(ip(1), t0).unwrap();
            limiter.refund(reservation, t0);
        }
        let _ = limiter.try_acquire(ip(1), t0).unwrap();
        let _ = limiter.try_acquire(ip(1), t0).unwrap();
        assert!(limiter.try_acquire(ip(1), t0).is_err());
    }

    #[test]
    fn a_refund_never_makes_a_bucket_fuller_than_full() {
        let limiter = PairLimiter::new(limits(2));
        let t0 = Instant::now();
        let reservation = limiter.try_acquire(ip(1), t0).unwrap();
        // Long after the bucket refilled, the refund must not bank extra attempts.
        limiter.refund(reservation, t0 + 1000 * SEC);
        let later = t0 + 1000 * SEC;
        let _ = limiter.try_acquire(ip(1), later).unwrap();
        let _ = limiter.try_acquire(ip(1), later).unwrap();
        assert!(limiter.try_acquire(ip(1), later).is_err());
    }

    #[test]
    fn memory_stays_bounded_under_attempts_from_endless_addresses() {
        let limiter = PairLimiter::new(limits(3));
        let t0 = Instant::now();
        for n in 0..1000u32 {
            let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
            let _ = limiter.try_acquire(addr, t0).unwrap();
            assert!(limiter.tracked_clients() <= 8);
        }
    }

    #[test]
    fn idle_clients_are_forgotten_first_when_the_table_is_full() {
        let limiter = PairLimiter::new(limits(1));
        let t0 = Instant::now();
        for n in 0..8 {
            let _ = limiter.try_acquire(ip(n), t0).unwrap();
        }
        // ip(0..8) are throttled until t0+10s. A newcomer after that evicts the idle ones,
        // and a throttled client that comes back is throttled no longer only because its
        // own interval has passed.
        let _ = limiter.try_acquire(ip(100), t0 + 11 * SEC).unwrap();
        assert_eq!(limiter.tracked_clients(), 1);
    }

    #[test]
    fn ipv6_clients_are_limited_per_64_prefix() {
        let limiter = PairLimiter::new(limits(1));
        let t0 = Instant::now();
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        let _ = limiter.try_acquire(IpAddr::V6(a), t0).unwrap();
        assert!(limiter.try_acquire(IpAddr::V6(b), t0).is_err());
        let _ = limiter.try_acquire(IpAddr::V6(other), t0).unwrap();
    }

    #[test]
    fn ipv4_mapped_ipv6_counts_as_the_ipv4_address() {
        let limiter = PairLimiter::new(limits(1));
        let t0 = Instant::now();
        let _ = limiter.try_acquire(ip(7), t0).unwrap();
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        assert!(limiter.try_acquire(mapped, t0).is_err());
    }
}
