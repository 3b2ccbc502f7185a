//! [`Driver`]: the small tokio runtime the Postgres pool lives on.
//!
//! sqlx connections are bound to the runtime that opened them, and need it running to
//! make progress. The store's callers are not all on one multi-threaded runtime: tests run
//! a current-thread runtime and may block it (`App::issue_pairing_code`), and the admin
//! CLI awaits the store with a plain `block_on`. So every query runs as a task on this
//! runtime, and the caller awaits its `JoinHandle`, which works from any executor.

use crate::meta::MetaError;
use std::future::Future;
use std::sync::Mutex;
use tokio::runtime::{Builder, Handle, Runtime};

/// Worker threads of the driver runtime: queries mostly wait on the network.
const WORKERS: usize = 2;

/// Owns the runtime; shuts it down without blocking when the last store handle goes (a
/// plain `Runtime` drop panics inside an async context, where tests drop stores).
#[derive(Debug)]
pub struct Driver {
    handle: Handle,
    runtime: Mutex<Option<Runtime>>,
}

impl Driver {
    pub fn start() -> Result<Driver, MetaError> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name("savesync-pg")
            .enable_all()
            .build()
            .map_err(|e| MetaError::Unavailable(format!("starting the Postgres driver: {e}")))?;
        Ok(Driver { handle: runtime.handle().clone(), runtime: Mutex::new(Some(runtime)) })
    }

    /// Run `task` on the driver runtime and wait for it.
    pub async fn spawn<T, F>(&self, task: F) -> Result<T, MetaError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, MetaError>> + Send + 'static,
    {
        self.handle
            .spawn(task)
            .await
            .map_err(|e| MetaError::Unavailable(format!("Postgres task failed: {e}")))?
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let runtime = self.runtime.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(runtime) = runtime.take() {
            runtime.shutdown_background();
        }
    }
}
