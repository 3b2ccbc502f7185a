//! [`Revocations`]: ends a revoked device's open event streams and pending long-polls.
//!
//! Authentication happens once per request, so a stream or long-poll that authenticated
//! before the revocation would otherwise keep serving the device. Each of them waits on the
//! device's [`CancellationToken`]; revoking through the API cancels it at once.
//!
//! The admin CLI (`devices revoke`) writes the database from another process and cannot
//! reach these tokens, so every waiter also re-reads the device's revoked flag every
//! `revocation_check_interval` and cancels the token itself when it finds it set. A token
//! stays cancelled in the map, so a request that authenticated just before the revocation
//! and subscribes just after it still ends at once. The map holds one entry per device that
//! ever waited or was revoked: bounded by the devices in the database.

use crate::meta::DeviceId;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use tokio_util::sync::CancellationToken;

/// Per-device revocation signals.
#[derive(Debug, Default)]
pub struct Revocations {
    devices: Mutex<HashMap<DeviceId, CancellationToken>>,
}

impl Revocations {
    /// The token that is cancelled when `device` is revoked.
    pub fn token(&self, device: DeviceId) -> CancellationToken {
        let mut devices = self.devices.lock().unwrap_or_else(PoisonError::into_inner);
        devices.entry(device).or_default().clone()
    }

    /// Signal that `device` is revoked: its waiters end now, later ones at once.
    pub fn revoke(&self, device: DeviceId) {
        self.token(device).cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::Revocations;

    #[test]
    fn revoking_cancels_current_and_later_waiters_of_that_device_only() {
        let revocations = Revocations::default();
        let before = revocations.token(1);
        let other = revocations.token(2);
        revocations.revoke(1);
        assert!(before.is_cancelled());
        assert!(revocations.token(1).is_cancelled());
        assert!(!other.is_cancelled());
    }
}
