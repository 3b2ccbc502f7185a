//! Reaching a device: TCP, SSH with the host key checked against the pinned fingerprint
//! (trust on first use: `remotes add` and `remotes trust` pin what the device offers),
//! public-key login with the admin's key file, and the `sftp` subsystem.
//!
//! Why russh + russh-sftp rather than libssh2 (`ssh2`): both are pure Rust, so the server
//! builds as a static musl binary for aarch64/armv7 with no OpenSSL or libssh2 to
//! cross-compile (russh uses `ring`, not `aws-lc-rs`), and both are async on tokio like the
//! rest of the server, so a slow device costs a task, not a thread.
//!
//! The key file is read from the admin's path at each connect and never logged; error
//! messages name the path, never the contents. Passwords are not supported.

use super::error::RemoteError;
use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::RawSftpSession;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Connect and key exchange must finish within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A device silent this long (no answer to keep-alives) is gone.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(5);
/// Longest wait for one SFTP answer, in seconds (russh-sftp's unit).
const SFTP_TIMEOUT_SECS: u64 = 20;

/// The host key check: accept what matches the pin (anything when there is no pin yet),
/// and remember what was offered either way.
#[derive(Debug)]
struct HostKeyCheck {
    pinned: Option<String>,
    offered: Arc<Mutex<Option<String>>>,
}

/// `SHA256:<base64>`, as `ssh-keygen -lf` prints it.
fn fingerprint(key: &PublicKeyOrCertificate) -> String {
    match key {
        PublicKeyOrCertificate::PublicKey { key, .. } => key.fingerprint(HashAlg::Sha256),
        PublicKeyOrCertificate::Certificate(cert) => cert.public_key().fingerprint(HashAlg::Sha256),
    }
    .to_string()
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let offered = fingerprint(key);
        let accept = self.pinned.as_deref().is_none_or(|pinned| pinned == offered);
        *self.offered.lock().unwrap_or_else(PoisonError::into_inner) = Some(offered);
        Ok(accept)
    }
}

/// Where and as whom to log in.
#[derive(Debug, Clone)]
pub struct Login<'a> {
    /// The remote's name, for messages.
    pub name: &'a str,
    pub user: &'a str,
    pub host: &'a str,
    pub port: u16,
    pub key_path: &'a str,
    /// `None`: accept and report whatever key the device offers (first use, `trust`).
    pub pinned: Option<&'a str>,
}

/// A logged-in SFTP session. Dropping it closes the connection.
pub struct Connection {
    // Kept so the SSH session stays open as long as the SFTP session is used.
    _ssh: Handle<HostKeyCheck>,
    pub sftp: RawSftpSession,
    /// The host key fingerprint the device presented.
    pub host_key: String,
    /// Whether the server does `posix-rename@openssh.com` (rename over an existing file).
    pub posix_rename: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("host_key", &self.host_key).finish_non_exhaustive()
    }
}

/// Connect, check the host key, log in and start SFTP.
pub async fn connect(login: &Login<'_>) -> Result<Connection, RemoteError> {
    let key = russh::keys::load_secret_key(login.key_path, None).map_err(|e| {
        RemoteError::Login(format!(
            "cannot use the key file {} ({e}); give an unencrypted private key the server can read",
            login.key_path
        ))
    })?;
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(Duration::from_secs(SFTP_TIMEOUT_SECS * 3)),
        keepalive_interval: Some(KEEPALIVE_EVERY),
        keepalive_max: 3,
        nodelay: true,
        ..client::Config::default()
    });
    let offered = Arc::new(Mutex::new(None));
    let check =
        HostKeyCheck { pinned: login.pinned.map(str::to_owned), offered: Arc::clone(&offered) };
    let address = (login.host, login.port);
    let unreachable =
        |e: String| RemoteError::Unreachable(format!("{}:{}: {e}", login.host, login.port));
    let connected =
        tokio::time::timeout(CONNECT_TIMEOUT, client::connect(config, address, check)).await;
    let mut ssh = match connected {
        Err(_) => return Err(unreachable(format!("no answer within {CONNECT_TIMEOUT:?}"))),
        Ok(Ok(ssh)) => ssh,
        Ok(Err(e)) => {
            let seen = offered.lock().unwrap_or_else(PoisonError::into_inner).clone();
            return Err(match (login.pinned, seen) {
                (Some(pinned), Some(seen)) if pinned != seen => RemoteError::HostKeyChanged {
                    name: login.name.to_owned(),
                    pinned: pinned.to_owned(),
                    offered: seen,
                },
                _ => unreachable(e.to_string()),
            });
        }
    };
    let host_key = offered
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .ok_or_else(|| unreachable("the device presented no host key".to_owned()))?;
    let hash = ssh.best_supported_rsa_hash().await.map_err(|e| unreachable(e.to_string()))?;
    let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash.flatten());
    let auth = ssh
        .authenticate_publickey(login.user, key)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    if !auth.success() {
        return Err(RemoteError::Login(format!(
            "{}@{} refused the key {}",
            login.user, login.host, login.key_path
        )));
    }
    let channel = ssh.channel_open_session().await.map_err(|e| unreachable(e.to_string()))?;
    channel.request_subsystem(true, "sftp").await.map_err(|e| unreachable(e.to_string()))?;
    let sftp = RawSftpSession::new(channel.into_stream());
    sftp.set_timeout(SFTP_TIMEOUT_SECS);
    let version = sftp
        .init()
        .await
        .map_err(|e| RemoteError::Device(format!("the device's SFTP server: {e}")))?;
    let posix_rename = version.extensions.contains_key("posix-rename@openssh.com");
    Ok(Connection { _ssh: ssh, sftp, host_key, posix_rename })
}
