//! Case-only renames against the server's name-collision rule.
//!
//! Renaming `zelda.srm` to `Zelda.srm` queues a delete of the old path and an upload of
//! the new one. When the upload reaches the server first, the server refuses it with
//! `409 name_collision` (the old name is still live there). Instead of giving up on the new
//! name, the engine then syncs the old path itself (its delete) and retries the upload. It
//! does so only for a save this device had and no longer has: a twin created elsewhere
//! stays a refusal for the user to settle by renaming.

use super::{Outcome, SyncEngine, SyncError, SyncMode};
use crate::local::{EntryKind, LocalError};
use savesync_core::SavePath;
use std::future::Future;
use std::pin::Pin;

/// A boxed, `Send` sync of one path.
type BoxedSync<'a> = Pin<Box<dyn Future<Output = Result<Outcome, SyncError>> + Send + 'a>>;

impl SyncEngine {
    /// True when `twin` is a save this device had (it has a base) and no longer has
    /// locally: the server is only waiting for this device's delete of it.
    pub(super) async fn removed_here(&self, twin: &SavePath) -> Result<bool, SyncError> {
        let t = twin.clone();
        let gone = self
            .local(move |l| -> Result<bool, LocalError> {
                Ok(l.entry(&t)?.kind == EntryKind::Absent && l.db().record(&t)?.base.is_some())
            })
            .await?;
        Ok(gone)
    }

    /// Sync `twin` (that is, delete it on the server) now, from inside the sync of another
    /// path: boxed, as `sync_path` reaches itself through here.
    pub(super) fn sync_removed_twin<'a>(
        &'a self,
        twin: &'a SavePath,
        mode: SyncMode,
    ) -> BoxedSync<'a> {
        Box::pin(self.sync_path(twin, mode))
    }
}
