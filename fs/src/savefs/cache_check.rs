//! Runs the tree's check of the cache after an unclean stop (`tree::cache_check`) on a
//! thread of its own once the mount serves, handing changed saves to the engine's queue.

use super::SaveFs;
use crate::tree::cache_check::Checked;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// A check running in the background; [`CacheCheckRun::stop`] ends it between two files.
#[derive(Debug)]
pub struct CacheCheckRun {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl SaveFs {
    /// Start the check of the cache if one is due (the last run did not stop cleanly, or
    /// stopped before its check ended). Start the engine first: it syncs what is queued.
    pub fn start_cache_check(self: &Arc<Self>) -> std::io::Result<Option<CacheCheckRun>> {
        if !self.tree.cache_check_due() {
            return Ok(None);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (fs, flag) = (Arc::clone(self), Arc::clone(&stop));
        let thread = std::thread::Builder::new().name("savesync-check".into()).spawn(move || {
            let queue = |paths: &[savesync_core::SavePath]| {
                fs.engine.changed(paths).map_err(|e| anyhow::anyhow!("{e}"))
            };
            match fs.tree.check_cache(&flag, queue) {
                Ok(Checked::Finished { queued }) => {
                    tracing::info!(queued, "checked the cache after an unclean stop");
                }
                Ok(Checked::Stopped) => {
                    tracing::info!("the cache check stopped before its end: the next start checks again");
                }
                Err(e) => {
                    tracing::warn!("checking the cache after an unclean stop: {e:#} (the next start tries again)");
                }
            }
        })?;
        Ok(Some(CacheCheckRun { stop, thread }))
    }
}

impl CacheCheckRun {
    /// Stop between two files and wait for the thread.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}
