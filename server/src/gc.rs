//! Blob garbage collection: delete stored blobs no version references any more (after
//! retention pruned their versions), and staging files of uploads that never finished.
//! Runs at startup (staging only) and periodically.

use crate::app::App;
use crate::blob::BlobError;
use crate::meta::MetaError;
use std::time::Duration;

/// Why a collection pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// Staging files older than this belong to no live upload: an upload that stalls for the
/// request timeout (minutes) is cut off and its staging file dropped.
const STALE_STAGING: Duration = Duration::from_secs(24 * 60 * 60);

/// One pass; returns how many blobs were removed.
///
/// The blob listing is taken without the GC lock (it can be slow on a big store); only the
/// "what is referenced" query and the deletions run under the exclusive lock. That is
/// still safe: a blob stored after the listing is not a candidate, and a listed blob that
/// an upload re-uses by dedupe is referenced by the time the lock is granted, because
/// uploads hold the shared lock from persist to commit.
pub async fn collect_garbage(app: &App) -> Result<usize, GcError> {
    let blobs = app.blobs();
    blobs.sweep_staging(STALE_STAGING).await?;
    let candidates = blobs.list().await?;
    let _exclusive = app.gc_lock().write().await;
    let referenced = app.meta().referenced_hashes().await?;
    let mut removed = 0;
    for blob in candidates {
        if !referenced.contains(&blob.hash) {
            blobs.delete(&blob.hash).await?;
            removed += 1;
        }
    }
    // The MD5s of contents gone from every version (`crate::dav`): same lock, same reason.
    app.meta().prune_content_md5().await?;
    Ok(removed)
}

/// Remove every staging file before the server accepts requests. No upload of this process
/// is in flight yet, so each one is the remains of a server killed mid-upload (kill -9,
/// power loss, OOM killer). Assumes one server per data directory, which the docs require.
/// A failure is logged, not fatal: leftovers cost disk space, not correctness, and the
/// periodic collection retries.
pub async fn sweep_leftover_staging(app: &App) {
    match app.blobs().sweep_staging(Duration::ZERO).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "removed staging files of interrupted uploads"),
        Err(e) => tracing::warn!(error = %e, "could not sweep staging files"),
    }
}

/// Run [`collect_garbage`], then prune old sync sessions (`crate::sessions`), every
/// `config.gc_interval` until `shutdown` fires.
pub async fn run_periodically(app: App, shutdown: tokio_util::sync::CancellationToken) {
    let mut ticker = tokio::time::interval(app.config().gc_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate; start one interval after launch
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match collect_garbage(&app).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "collected unreferenced blobs"),
            Err(e) => tracing::warn!(error = %e, "blob garbage collection failed"),
        }
        match crate::sessions::prune(&app).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "pruned old sync sessions"),
            Err(e) => tracing::warn!(error = %e, "pruning sync sessions failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::body_of;
    use crate::config::{Config, RetentionConfig};
    use crate::meta::{Actor, CommitOutcome, CommitRequest, NewContent};
    use savesync_core::{ContentHash, Rev, SavePath};

    async fn upload(app: &App, base: u64, bytes: &[u8]) {
        let hash = ContentHash::of(bytes);
        app.blobs().put(&hash, body_of(bytes.to_vec()), 1 << 20).await.unwrap();
        let request = CommitRequest {
            actor: Actor { user_id: 1, device_id: None },
            path: SavePath::parse("gba/emerald.sav").unwrap(),
            base_rev: Rev(base),
            content: NewContent::Bytes { hash, size: bytes.len() as u64 },
            operation: "upload",
            // Each commit a second after the previous, so older ones are past keep_days = 0.
            now: i64::try_from(base).unwrap() + 1,
        };
        let outcome = app.meta().commit(&request, app.retention()).await.unwrap();
        assert!(matches!(outcome, CommitOutcome::Committed(_)), "{outcome:?}");
    }

    #[tokio::test]
    async fn gc_removes_blobs_of_pruned_versions_and_keeps_referenced_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::with_data_dir(dir.path());
        config.retention = RetentionConfig { keep_versions: 2, keep_days: 0 };
        let app = App::open(config).unwrap();
        app.meta().ensure_user("alice", 0).await.unwrap();
        for (base, bytes) in [b"one", b"two", b"thr", b"fou"].iter().enumerate() {
            upload(&app, base as u64, *bytes).await;
        }
        assert_eq!(app.blobs().list().await.unwrap().len(), 4);
        assert_eq!(collect_garbage(&app).await.unwrap(), 2);
        let mut left: Vec<ContentHash> =
            app.blobs().list().await.unwrap().into_iter().map(|b| b.hash).collect();
        left.sort();
        let mut expected = vec![ContentHash::of(b"thr"), ContentHash::of(b"fou")];
        expected.sort();
        assert_eq!(left, expected);
        assert_eq!(collect_garbage(&app).await.unwrap(), 0);
    }

    /// A paired device of user 1, made straight in the store.
    async fn device(app: &App, name: &str) -> crate::meta::DeviceId {
        let code = format!("code-{name}");
        app.meta().add_pairing_code(1, &code, i64::MAX, None, 0).await.unwrap();
        let info = crate::meta::NewDeviceInfo { name, kind: "test" };
        app.meta()
            .redeem_pairing_code(&code, &info, &format!("tok-{name}"), 10, 0)
            .await
            .unwrap()
            .device_id
    }

    /// Store `bytes` and commit them on `base` as `device` at time `now`.
    async fn commit_as(
        app: &App,
        device: crate::meta::DeviceId,
        base: u64,
        bytes: &[u8],
        now: i64,
    ) -> CommitOutcome {
        let hash = ContentHash::of(bytes);
        app.blobs().put(&hash, body_of(bytes.to_vec()), 1 << 20).await.unwrap();
        let request = CommitRequest {
            actor: Actor { user_id: 1, device_id: Some(device) },
            path: SavePath::parse("gba/emerald.sav").unwrap(),
            base_rev: Rev(base),
            content: NewContent::Bytes { hash, size: bytes.len() as u64 },
            operation: "upload",
            now,
        };
        app.meta().commit(&request, app.retention()).await.unwrap()
    }

    async fn blobs(app: &App) -> Vec<ContentHash> {
        let mut left: Vec<ContentHash> =
            app.blobs().list().await.unwrap().into_iter().map(|b| b.hash).collect();
        left.sort();
        left
    }

    fn hashes(all: &[&[u8]]) -> Vec<ContentHash> {
        let mut hashes: Vec<ContentHash> = all.iter().map(|b| ContentHash::of(b)).collect();
        hashes.sort();
        hashes
    }

    #[tokio::test]
    async fn retention_and_gc_keep_open_conflict_versions_until_their_device_commits() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::with_data_dir(dir.path());
        // Keep only the newest two, nothing by age: everything else is pruned at once.
        config.retention = RetentionConfig { keep_versions: 2, keep_days: 0 };
        let app = App::open(config).unwrap();
        app.meta().ensure_user("alice", 0).await.unwrap();
        let (handheld, desktop) = (device(&app, "handheld").await, device(&app, "desktop").await);
        let committed = |o: CommitOutcome| assert!(matches!(o, CommitOutcome::Committed(_)));
        let refused = |o: CommitOutcome| assert!(matches!(o, CommitOutcome::Conflict(_)));
        committed(commit_as(&app, handheld, 0, b"v1", 1).await);
        committed(commit_as(&app, handheld, 1, b"v2", 2).await);
        // The desktop is in conflict (its base is rev 1) and keeps backing up.
        refused(commit_as(&app, desktop, 1, b"desk-1", 3).await);
        refused(commit_as(&app, desktop, 1, b"desk-2", 4).await);
        // The handheld commits on: each commit prunes; the open conflict versions stay.
        for (base, bytes) in [(2, b"v3"), (3, b"v4"), (4, b"v5")] {
            committed(commit_as(&app, handheld, base, bytes, 10 + base as i64).await);
        }
        collect_garbage(&app).await.unwrap();
        assert_eq!(blobs(&app).await, hashes(&[b"v4", b"v5", b"desk-1", b"desk-2"]));

        // The desktop resolves by keeping its version: its commit closes its conflict
        // versions, and the next pruning drops them like any old version.
        committed(commit_as(&app, desktop, 5, b"desk-3", 20).await);
        collect_garbage(&app).await.unwrap();
        assert_eq!(blobs(&app).await, hashes(&[b"v5", b"desk-3"]));
    }
}
