//! [`RemoteView`]: blocking checks of what really reached the server, through the real HTTP
//! client paired as an extra "observer" device. Tests assert on this, never on the mount's
//! own idea of what it uploaded.

use crate::server::TestServer;
use savesync_client::{Client, RetryPolicy};
use savesync_core::wire::{History, SaveMeta};
use savesync_core::{ContentHash, SavePath};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use tokio::runtime::Runtime;

/// A paired client of one user plus a runtime to call it from plain tests.
#[derive(Debug)]
pub struct RemoteView {
    runtime: Runtime,
    client: Client,
    url: String,
}

impl RemoteView {
    /// Pair an observer device of `user` on `server`.
    #[must_use]
    pub fn new(server: &TestServer, user: &str) -> RemoteView {
        let runtime = crate::runtime();
        // No retries and a short timeout: polls during a server outage must fail fast.
        let client = runtime
            .block_on(server.client_for(user, "e2e-observer"))
            .with_retry(RetryPolicy::none())
            .with_timeout(Duration::from_secs(5));
        RemoteView { runtime, client, url: server.url() }
    }

    /// The client (async) for checks this view does not cover.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Run a future on this view's runtime.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// Every live save: path -> content hash. `None` if the server cannot be reached.
    #[must_use]
    pub fn try_saves(&self) -> Option<BTreeMap<String, ContentHash>> {
        let list = self.runtime.block_on(self.client.list(None, false)).ok()?;
        Some(
            list.saves
                .into_iter()
                .filter(|s| !s.deleted)
                .filter_map(|s| Some((s.path.as_str().to_owned(), s.hash?)))
                .collect(),
        )
    }

    /// Wait up to `deadline` for the server to hold every `(path, bytes)` of `expected`;
    /// return the paths still missing or wrong then (empty = nothing lost).
    #[must_use]
    pub fn missing_after(&self, deadline: Duration, expected: &[(String, Vec<u8>)]) -> Vec<String> {
        let holds_all = |saves: &BTreeMap<String, ContentHash>| {
            expected.iter().all(|(p, b)| saves.get(p) == Some(&ContentHash::of(b)))
        };
        if crate::poll_until(deadline, || self.try_saves().filter(holds_all)).is_some() {
            return Vec::new();
        }
        let saves = self.try_saves().unwrap_or_default();
        expected
            .iter()
            .filter(|(p, b)| saves.get(p) != Some(&ContentHash::of(b)))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Every live save: path -> content hash; panics if the server cannot be reached.
    #[must_use]
    pub fn saves(&self) -> BTreeMap<String, ContentHash> {
        self.try_saves().unwrap_or_else(|| panic!("list saves on {}", self.url))
    }

    /// The head of one save (tombstones included), if the server knows it.
    #[must_use]
    pub fn head(&self, path: &str) -> Option<SaveMeta> {
        let list = self.runtime.block_on(self.client.list(None, true)).ok()?;
        list.saves.into_iter().find(|s| s.path.as_str() == path)
    }

    /// True when the live head of `path` holds exactly `bytes`.
    #[must_use]
    pub fn has(&self, path: &str, bytes: &[u8]) -> bool {
        self.try_saves().is_some_and(|s| s.get(path) == Some(&ContentHash::of(bytes)))
    }

    /// The version history of `path` (newest first); panics on error.
    #[must_use]
    pub fn history(&self, path: &str) -> History {
        let save_path = SavePath::parse(path).expect("valid save path");
        self.runtime
            .block_on(self.client.history(&save_path))
            .unwrap_or_else(|e| panic!("history of {path}: {e}"))
    }

    /// True when some version in the history of `path` holds exactly `bytes`.
    #[must_use]
    pub fn history_has(&self, path: &str, bytes: &[u8]) -> bool {
        let hash = ContentHash::of(bytes);
        self.history(path).versions.iter().any(|v| v.hash == Some(hash))
    }
}
