//! Blob garbage collection: delete stored blobs no version references any more (after
//! retention pruned their versions), and staging files of uploads that never finished.
//! Runs at startup (staging only) and periodically.

use crate::app::App;
use crate::blob::BlobError;
use crate::meta::MetaError;
use std::time::{Duration, SystemTime};

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

/// Whether garbage collection may delete a stored blob: only when no version references it
/// AND it was last published at least `grace` before `now`. The grace covers an upload on
/// another replica, whose blob is visible before the version that references it is
/// committed (the in-process GC lock only covers this replica's uploads). A modification
/// time in the future (clock skew between replicas) counts as brand new.
#[must_use]
pub fn may_delete(
    referenced: bool,
    modified: SystemTime,
    now: SystemTime,
    grace: Duration,
) -> bool {
    !referenced && now.duration_since(modified).is_ok_and(|age| age >= grace)
}

/// One pass; returns how many blobs were removed.
///
/// The blob listing is taken without the GC lock (it can be slow on a big store); only the
/// "what is referenced" query and the deletions run under the exclusive lock. Within this
/// process that is safe: a blob stored after the listing is not a candidate, and a listed
/// blob that an upload re-uses by dedupe is referenced by the time the lock is granted,
/// because uploads hold the shared lock from publish to commit.
///
/// Across replicas (one store, several processes) the lock sees nothing, so a blob is only
/// deleted once it is older than `config.gc_grace` ([`may_delete`]), checked twice: in the
/// listing, and again right before the deletion (a dedupe on another replica refreshes
/// the blob's time; see `StagedBlob::publish`). What remains is a window of one lookup
/// between that re-check and the deletion; docs/operations.md says so.
pub async fn collect_garbage(app: &App) -> Result<usize, GcError> {
    let blobs = app.blobs();
    let grace = app.config().gc_grace;
    blobs.sweep_staging(STALE_STAGING.max(grace)).await?;
    let listed = blobs.list().await?;
    let now = SystemTime::now();
    let candidates: Vec<_> =
        listed.into_iter().filter(|b| may_delete(false, b.modified, now, grace)).collect();
    let _exclusive = app.gc_lock().write().await;
    let referenced = app.meta().referenced_hashes().await?;
    let mut removed = 0;
    for blob in candidates {
        if referenced.contains(&blob.hash) {
            continue;
        }
        let Some(modified) = blobs.modified(&blob.hash).await? else { continue };
        if may_delete(false, modified, SystemTime::now(), grace) {
            blobs.delete(&blob.hash).await?;
            removed += 1;
        }
    }
    // The MD5s of contents gone from every version (`crate::dav`): same lock, same reason.
    app.meta().prune_content_md5().await?;
    Ok(removed)
}

/// Remove staging files of interrupted uploads before the server accepts requests: the
/// remains of a server killed mid-upload (kill -9, power loss, OOM killer). Another
/// replica on the same store may be mid-upload right now, so only files older than
/// `config.gc_grace` go (a live upload's staging file is written to as its bytes arrive).
/// A failure is logged, not fatal: leftovers cost space, not correctness, and the
/// periodic collection retries.
pub async fn sweep_leftover_staging(app: &App) {
    match app.blobs().sweep_staging(app.config().gc_grace).await {
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
        config.gc_grace = Duration::ZERO;
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
        config.gc_grace = Duration::ZERO;
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

/// Two processes on one store: `other` plays a second replica whose uploads this process's
/// GC lock cannot see.
#[cfg(test)]
mod replica_tests {
    use super::*;
    use crate::blob::{Digests, FsBlobStore, body_of};
    use crate::config::Config;
    use crate::meta::{Actor, CommitOutcome, CommitRequest, NewContent};
    use savesync_core::{ContentHash, Rev, SavePath};
    use std::time::Instant;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn may_delete_only_unreferenced_blobs_at_least_grace_old() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let grace = Duration::from_secs(60);
        let secs = Duration::from_secs;
        // (referenced, modified, expected)
        let table = [
            (false, now - secs(61), true),
            (false, now - secs(60), true),
            (false, now - secs(59), false),
            (false, now, false),
            (false, now + secs(30), false), // another replica's clock runs ahead
            (true, now - secs(86_400), false),
            (true, now, false),
        ];
        for (referenced, modified, expected) in table {
            assert_eq!(
                may_delete(referenced, modified, now, grace),
                expected,
                "referenced={referenced} age={:?}",
                now.duration_since(modified)
            );
        }
        assert!(may_delete(false, now, now, Duration::ZERO));
    }

    fn app_on(dir: &std::path::Path, grace: Duration) -> App {
        let mut config = Config::with_data_dir(dir);
        config.gc_grace = grace;
        App::open(config).unwrap()
    }

    /// The other replica's upload up to "blob visible", not committed.
    async fn publish_only(app: &App, bytes: &[u8]) -> ContentHash {
        let staged =
            app.blobs().stage(body_of(bytes.to_vec()), 1 << 20, Digests::Sha256).await.unwrap();
        let hash = staged.hash();
        staged.publish(&hash).await.unwrap();
        hash
    }

    async fn commit(app: &App, hash: ContentHash, size: usize) {
        let request = CommitRequest {
            actor: Actor { user_id: 1, device_id: None },
            path: SavePath::parse("gba/emerald.sav").unwrap(),
            base_rev: Rev(0),
            content: NewContent::Bytes { hash, size: size as u64 },
            operation: "upload",
            now: 1,
        };
        let outcome = app.meta().commit(&request, app.retention()).await.unwrap();
        assert!(matches!(outcome, CommitOutcome::Committed(_)), "{outcome:?}");
    }

    async fn stored(app: &App, hash: &ContentHash) -> bool {
        app.blobs().contains(hash).await.unwrap()
    }

    #[tokio::test]
    async fn gc_spares_another_replicas_upload_between_publish_and_commit() {
        let dir = tempfile::tempdir().unwrap();
        let grace = Duration::from_millis(400);
        let (gc_replica, other) = (app_on(dir.path(), grace), app_on(dir.path(), grace));
        other.meta().ensure_user("alice", 0).await.unwrap();

        // Without the grace, the in-process lock alone lets GC delete the other replica's
        // blob before its commit: the hazard this guards against.
        let doomed = publish_only(&other, b"no grace").await;
        let no_grace = app_on(dir.path(), Duration::ZERO);
        assert_eq!(collect_garbage(&no_grace).await.unwrap(), 1);
        assert!(!stored(&other, &doomed).await);

        let bytes = b"emerald after the elite four";
        let in_flight = publish_only(&other, bytes).await;
        assert_eq!(collect_garbage(&gc_replica).await.unwrap(), 0);
        assert!(stored(&other, &in_flight).await);
        commit(&other, in_flight, bytes.len()).await;
        // Referenced now: it stays however many graces pass.
        let start = Instant::now();
        while start.elapsed() < 3 * grace {
            assert_eq!(collect_garbage(&gc_replica).await.unwrap(), 0);
            tokio::time::sleep(grace / 4).await;
        }
        assert!(stored(&gc_replica, &in_flight).await);
    }

    #[tokio::test]
    async fn an_abandoned_upload_is_collected_once_the_grace_has_passed() {
        let dir = tempfile::tempdir().unwrap();
        let grace = Duration::from_millis(300);
        let (gc_replica, other) = (app_on(dir.path(), grace), app_on(dir.path(), grace));
        let published = Instant::now();
        let abandoned = publish_only(&other, b"replica died before commit").await;
        assert_eq!(collect_garbage(&gc_replica).await.unwrap(), 0);
        let deadline = Instant::now() + 20 * grace;
        let mut passes = 0;
        while stored(&other, &abandoned).await {
            assert!(Instant::now() < deadline, "not collected after {passes} passes");
            let removed = collect_garbage(&gc_replica).await.unwrap();
            passes += 1;
            if removed == 1 {
                assert!(published.elapsed() >= grace, "deleted before the grace passed");
            }
            tokio::time::sleep(grace / 4).await;
        }
        assert!(passes > 1, "the first pass inside the grace must have kept it");
    }

    #[tokio::test]
    async fn a_dedupe_onto_an_old_unreferenced_blob_restarts_its_grace() {
        let dir = tempfile::tempdir().unwrap();
        let (gc_replica, other) = (app_on(dir.path(), HOUR), app_on(dir.path(), HOUR));
        other.meta().ensure_user("alice", 0).await.unwrap();
        let bytes = b"an old save, pruned long ago";
        let hash = publish_only(&other, bytes).await;
        // Make it two hours old: GC would take it now.
        let path = FsBlobStore::open(dir.path().join("blobs")).unwrap().path_of(&hash);
        let old = SystemTime::now() - 2 * HOUR;
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
        // The other replica receives the same content again and publishes it (dedupe)...
        assert_eq!(publish_only(&other, bytes).await, hash);
        // ...and GC runs before its commit: the blob must survive.
        assert_eq!(collect_garbage(&gc_replica).await.unwrap(), 0);
        commit(&other, hash, bytes.len()).await;
        assert!(stored(&gc_replica, &hash).await);
    }
}

#[cfg(test)]
mod startup_sweep_tests {
    use super::*;
    use crate::config::Config;

    #[tokio::test]
    async fn the_startup_sweep_keeps_another_replicas_fresh_staging_and_removes_old_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::with_data_dir(dir.path());
        config.gc_grace = Duration::from_secs(600);
        let app = App::open(config).unwrap();
        let tmp = dir.path().join("blobs/tmp");
        let live = tmp.join("upload-live-on-replica-2");
        let crashed = tmp.join("upload-crashed-yesterday");
        std::fs::write(&live, b"half an upload, still arriving").unwrap();
        std::fs::write(&crashed, b"half an upload").unwrap();
        let yesterday = SystemTime::now() - Duration::from_secs(86_400);
        std::fs::File::options()
            .write(true)
            .open(&crashed)
            .unwrap()
            .set_modified(yesterday)
            .unwrap();
        sweep_leftover_staging(&app).await;
        assert!(live.exists(), "another replica's live upload was swept");
        assert!(!crashed.exists());
    }
}
