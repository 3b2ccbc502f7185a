//! [`DeviceStreams`]: the per-device cap on open `GET /events` streams
//! (`config.max_streams_per_device`).
//!
//! Opening one stream more than the cap closes the device's OLDEST stream rather than
//! refusing the new one: a device whose connection died without the server noticing (a
//! phone that changed networks) reconnects at once instead of being locked out until the
//! dead streams time out, while a client that opens streams in a loop still holds at most
//! the cap.

use crate::meta::DeviceId;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio_util::sync::CancellationToken;

/// Open streams per device, oldest first.
#[derive(Debug)]
pub struct DeviceStreams {
    max: usize,
    next_id: AtomicU64,
    open: Mutex<HashMap<DeviceId, VecDeque<(u64, CancellationToken)>>>,
}

/// One open stream's place under the cap. `closed` fires when a newer stream of the same
/// device pushed it out; dropping the slot frees the place.
#[derive(Debug)]
pub struct StreamSlot {
    streams: Arc<DeviceStreams>,
    device: DeviceId,
    id: u64,
    pub closed: CancellationToken,
}

impl DeviceStreams {
    /// At most `max` streams per device (at least one).
    #[must_use]
    pub fn new(max: usize) -> DeviceStreams {
        DeviceStreams { max: max.max(1), next_id: AtomicU64::new(0), open: Mutex::default() }
    }

    /// Register a new stream of `device`, closing its oldest ones beyond the cap.
    pub fn open(self: &Arc<Self>, device: DeviceId) -> StreamSlot {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let closed = CancellationToken::new();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let streams = open.entry(device).or_default();
        streams.push_back((id, closed.clone()));
        while streams.len() > self.max {
            if let Some((_, oldest)) = streams.pop_front() {
                oldest.cancel();
            }
        }
        StreamSlot { streams: Arc::clone(self), device, id, closed }
    }

    /// How many streams of `device` are open (the dashboard's "online now").
    #[must_use]
    pub fn count(&self, device: DeviceId) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&device).map_or(0, VecDeque::len)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(streams) = open.get_mut(&self.device) {
            streams.retain(|(id, _)| *id != self.id);
            if streams.is_empty() {
                open.remove(&self.device);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DeviceStreams;
    use std::sync::Arc;

    #[test]
    fn the_oldest_stream_over_the_cap_is_closed_per_device() {
        let streams = Arc::new(DeviceStreams::new(2));
        let a1 = streams.open(1);
        let a2 = streams.open(1);
        let b1 = streams.open(2);
        assert_eq!((streams.count(1), streams.count(2)), (2, 1));
        let a3 = streams.open(1);
        assert!(a1.closed.is_cancelled(), "the oldest of device 1 is pushed out");
        assert!(!a2.closed.is_cancelled() && !a3.closed.is_cancelled());
        assert!(!b1.closed.is_cancelled(), "another device is unaffected");
        assert_eq!(streams.count(1), 2);
        drop(a1); // a pushed-out stream ending does not free a place twice
        assert_eq!(streams.count(1), 2);
        drop(a2);
        assert_eq!(streams.count(1), 1);
        drop((a3, b1));
        assert_eq!((streams.count(1), streams.count(2)), (0, 0));
    }

    #[test]
    fn a_cap_of_zero_still_allows_one_stream() {
        let streams = Arc::new(DeviceStreams::new(0));
        let first = streams.open(7);
        let second = streams.open(7);
        assert!(first.closed.is_cancelled());
        assert!(!second.closed.is_cancelled());
    }
}
