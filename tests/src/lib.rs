//! savesync-tests: the end-to-end harness. It starts a real server in-process on
//! `127.0.0.1:0` ([`TestServer`]), pairs and mounts devices by running the real `savesync`
//! CLI as child processes ([`Device`]), and checks what really reached the server through
//! the HTTP client ([`RemoteView`]).
//!
//! Assumptions: tests run as a user that may mount FUSE (CI runs as root with `fuse3`
//! installed); [`require_fuse`] says whether this machine can, and fails loudly under
//! `CI=true` instead of silently skipping. Every wait is a poll with a deadline
//! ([`wait_until`]); nothing sleeps to wait for a condition.
//!
//! `README.md` in this crate lists the API and the test files. Tests are plain `#[test]`
//! functions: the server runs on its own thread and runtime, so a test may block (file I/O
//! on the mount, polling) without starving the server.

mod bins;
mod device;
mod files;
mod folder;
mod fuse_check;
mod mountinfo;
mod pair;
mod proc_stat;
mod remote_view;
mod replicas;
mod retroarch;
mod server;
mod server_process;
mod solo;
mod sshd;
mod switch_proxy;
mod tools;
mod wait;

pub use bins::{mount_bin, server_bin};
pub use device::{Device, TEST_DEBOUNCE_MS, TEST_OFFLINE_BACKOFF_MAX_MS};
pub use files::{dir_names, save_bytes, wait_for_absent, wait_for_bytes};
pub use folder::{FOLDER_DEBOUNCE_MS, FolderDevice, write_via_rename};
pub use fuse_check::require_fuse;
pub use mountinfo::{fuse_mount_ids, is_fuse_mount};
pub use pair::DevicePair;
pub use proc_stat::{fields_after_name, is_running, proc_stat, session_of};
pub use remote_view::RemoteView;
pub use replicas::Replicas;
pub use retroarch::{
    ManifestEntry, Reply, RetroArch, SyncOutcome, encode_url, md5_hex, parse_manifest,
};
pub use server::{SERVER_THREAD_NAME, TestServer};
pub use server_process::ServerProcess;
pub use solo::SoloDevice;
pub use sshd::{LoopbackSshd, generate_key, sshd_path};
pub use switch_proxy::SwitchProxy;
pub use tools::{ProcessGroup, free_loopback_port, require_tools, wait_with_deadline};
pub use wait::{poll_until, wait_until, wait_until_async, wait_until_timed};

/// A multi-thread tokio runtime for a test's own async calls (client requests), separate
/// from the server's runtime.
#[must_use]
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a tokio runtime for the test")
}
