//! [`RemoteError`]: why a remote could not be synced (or added). Each says what to do
//! about it; none carries key material. Which ones are routine (a handheld asleep) and
//! logged at info is [`RemoteError::is_routine`].

use crate::blob::BlobError;
use crate::meta::MetaError;
use crate::publish::PublishError;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("no remote named {0:?}")]
    NotFound(String),
    /// The device did not answer or went away mid-run (asleep, off, out of Wi-Fi).
    #[error("device unreachable: {0}")]
    Unreachable(String),
    #[error(
        "the host key of {name} changed: pinned {pinned}, offered {offered}. Refusing to sync; \
         if the device was reinstalled, check the new key and run `savesync-server remotes trust {name}`"
    )]
    HostKeyChanged { name: String, pinned: String, offered: String },
    /// The key file could not be used or the device refused it.
    #[error("login failed: {0}")]
    Login(String),
    /// An SFTP operation failed on a connected device (permissions, a full disk).
    #[error("device file operation failed: {0}")]
    Device(String),
    /// Another run (the scheduler, the CLI) is syncing this remote right now.
    #[error("a sync of {0:?} is already running")]
    Busy(String),
    /// The remote's device row was revoked (`devices revoke`).
    #[error("the remote's device has been revoked")]
    Revoked,
    /// The server's own stores failed.
    #[error("server storage: {0}")]
    Store(String),
}

impl RemoteError {
    /// Routine outcomes: log at info and retry at the next interval.
    #[must_use]
    pub fn is_routine(&self) -> bool {
        matches!(self, RemoteError::Unreachable(_) | RemoteError::Busy(_))
    }
}

impl From<MetaError> for RemoteError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::DeviceRevoked => RemoteError::Revoked,
            other => RemoteError::Store(other.to_string()),
        }
    }
}

impl From<BlobError> for RemoteError {
    fn from(e: BlobError) -> Self {
        RemoteError::Store(e.to_string())
    }
}

impl From<PublishError> for RemoteError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Meta(m) => m.into(),
            other => RemoteError::Store(other.to_string()),
        }
    }
}
