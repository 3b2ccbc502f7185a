//! Wall-clock conversions for what the device stores: file times as nanoseconds since the
//! epoch (negative before it) and due times of the pending queue in milliseconds. No sync
//! decision reads a clock; only timestamps, backoffs and debounces do.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `t` as nanoseconds since the epoch.
#[must_use]
pub fn to_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

/// Nanoseconds since the epoch as a time.
#[must_use]
pub fn from_ns(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

/// Now, in nanoseconds since the epoch.
#[must_use]
pub fn now_ns() -> i64 {
    to_ns(SystemTime::now())
}

/// Now, in milliseconds since the epoch.
#[must_use]
pub fn now_ms() -> i64 {
    now_ns() / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_before_and_after_the_epoch_round_trip() {
        for ns in [0, 1, 1_700_000_000_123_456_789, -5_000_000_001] {
            assert_eq!(to_ns(from_ns(ns)), ns);
        }
    }
}
