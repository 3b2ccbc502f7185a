//! The one write path every front-end shares (the HTTP upload handler, SSH remotes): make a
//! staged blob visible, run the compare-and-swap, count it, and wake the user's feed
//! watchers so mounts see the commit at once.
//!
//! Blob publish and commit happen under the shared GC lock, so garbage collection never
//! observes a stored-but-unreferenced blob of this write. Without `staged`, content must
//! already be stored (restore): that is re-checked under the lock.

use crate::app::App;
use crate::blob::{BlobError, StagedBlob};
use crate::meta::{CommitOutcome, CommitRequest, MetaError, NewContent};
use crate::metrics::add;

/// Why a write stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// A restore names content that is no longer stored.
    #[error("the content of that version is no longer stored")]
    ContentGone,
}

/// Publish `staged` (if any), commit `request`, then count and announce the outcome.
pub async fn commit_and_publish(
    app: &App,
    request: &CommitRequest,
    staged: Option<Box<dyn StagedBlob>>,
) -> Result<CommitOutcome, PublishError> {
    let user = request.actor.user_id;
    let shared = app.gc_lock().read().await;
    let mut md5 = None;
    match (staged, request.content) {
        (Some(staged), NewContent::Bytes { hash, .. }) => {
            md5 = staged.md5();
            staged.publish(&hash).await?;
        }
        (None, NewContent::Bytes { hash, .. }) => {
            if !app.blobs().contains(&hash).await? {
                return Err(PublishError::ContentGone);
            }
        }
        (_, NewContent::Tombstone) => {}
    }
    // The MD5 is for the WebDAV manifest (`crate::dav`). It is recorded with the commit,
    // under the shared GC lock, so GC never prunes it before the commit; failing to record
    // it costs nothing but a recomputation when a manifest needs it.
    let outcome = app.meta().commit_with_md5(request, app.retention(), md5).await?;
    drop(shared);
    let metrics = app.metrics();
    match &outcome {
        CommitOutcome::Committed(meta) => {
            add(&metrics.commits, 1);
            app.announce(user, meta.seq);
        }
        CommitOutcome::Conflict(_) => add(&metrics.conflicts, 1),
        _ => {}
    }
    Ok(outcome)
}
