//! Fetching the bytes of a save moved on this device before they were ever downloaded:
//! the local store knows where on the server they are (its *origin*: old path and
//! version); the engine downloads them, with no lock held, when the file is opened or
//! when the uploader gets to the new path (which is then uploaded from them).

use super::{SyncEngine, SyncError};
use crate::remote::RemoteError;
use savesync_core::SavePath;

impl SyncEngine {
    /// Fetch the bytes of the save at `path` from its origin if it is a moved,
    /// never-downloaded save. An origin gone from the server is forgotten (with a warning):
    /// there is nothing left to fetch.
    pub(crate) async fn fetch_moved(&self, path: &SavePath) -> Result<(), SyncError> {
        // The moved save's origin: a state DB row, no file I/O.
        let Some((from, version)) = self.bookkeeping(|l| l.origin(path))? else {
            return Ok(());
        };
        let tmp = self.local.download_tmp(path);
        match self.remote.download_to_file(from.clone(), Some(version.rev), tmp.clone()).await {
            Ok(_) => {
                self.status.set_online(true);
                let p = path.clone();
                self.local(move |l| l.install_origin(&p, tmp, version)).await?;
                Ok(())
            }
            Err(RemoteError::NotFound) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                tracing::warn!(%path, %from, "the moved save's bytes are gone from the server");
                let p = path.clone();
                self.local(move |l| l.forget_origin(&p)).await?;
                Ok(())
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e.into())
            }
        }
    }
}
