//! Case-only renames against the server's name-collision rule.
//!
//! Renaming `zelda.srm` to `Zelda.srm` on the mount queues a delete of the old path and an
//! upload of the new one. When the upload reaches the server first, the server refuses it
//! with `409 name_collision` (the old name is still live there). Instead of giving up on
//! the new name, the engine then syncs the old path itself (its delete) and retries the
//! upload. It does so only for a save this device had and no longer has: a twin created
//! elsewhere stays a refusal for the user to settle by renaming.

use super::reconcile::{Outcome, SyncError, SyncMode, sync_path};
use crate::savefs::{SaveFs, lock};
use savesync_core::SavePath;
use std::future::Future;
use std::pin::Pin;

/// True when `twin` is a save this device had (it has a base) and no longer has locally:
/// the server is only waiting for this device's delete of it.
pub(super) fn removed_here(fs: &SaveFs, twin: &SavePath) -> Result<bool, SyncError> {
    if lock(&fs.table).lookup_path(twin).is_some() {
        return Ok(false);
    }
    let rec = fs.db.record(twin).map_err(SyncError::local)?;
    Ok(rec.base.is_some())
}

/// A boxed, `Send` sync of one path.
type BoxedSync<'a> = Pin<Box<dyn Future<Output = Result<Outcome, SyncError>> + Send + 'a>>;

/// Sync `twin` (that is, delete it on the server) now, from inside the sync of another
/// path: boxed, as `sync_path` reaches itself through here.
pub(super) fn sync_removed_twin<'a>(
    fs: &'a SaveFs,
    twin: &'a SavePath,
    mode: SyncMode,
) -> BoxedSync<'a> {
    Box::pin(sync_path(fs, twin, mode))
}
