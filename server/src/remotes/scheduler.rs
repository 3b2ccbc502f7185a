//! The scheduler `launch` starts: every `config.remote_check_interval` it lists the
//! remotes and starts a run for each one that is due (`next_run` passed), at most
//! `config.remote_concurrency` at once. A remote whose run is still going, or that waits
//! for a free slot, is simply looked at again at the next check. Unreachable devices are
//! routine: the run records the error and the next interval retries.
//!
//! On shutdown running syncs are aborted and their leases released; what a run had already
//! done per file stays recorded (state is written per file, after its transfer).

use super::report::Counters;
use crate::app::App;
use crate::meta::remotes::{RemoteId, RunRecord};
use crate::timestamps::now_unix;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The shortest check interval honoured (zero would spin).
const MIN_CHECK: Duration = Duration::from_millis(10);

/// Run due remotes until `shutdown` fires.
pub async fn run(app: App, shutdown: CancellationToken) {
    let every = app.config().remote_check_interval.max(MIN_CHECK);
    let slots = Arc::new(Semaphore::new(app.config().remote_concurrency.clamp(1, 64)));
    let running: Arc<Mutex<HashSet<RemoteId>>> = Arc::default();
    let mut tasks = JoinSet::new();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        while tasks.try_join_next().is_some() {}
        let remotes = match app.meta().remote_store().remotes(None).await {
            Ok(remotes) => remotes,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list SSH remotes");
                continue;
            }
        };
        let now = now_unix();
        for remote in remotes.into_iter().filter(|r| r.next_run <= now) {
            if running.lock().unwrap_or_else(PoisonError::into_inner).contains(&remote.id) {
                continue;
            }
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else { break };
            running.lock().unwrap_or_else(PoisonError::into_inner).insert(remote.id);
            let (app, running) = (app.clone(), Arc::clone(&running));
            tasks.spawn(async move {
                let _slot = slot;
                // The outcome is logged and recorded as the remote's status by the run.
                let _ = super::run_claimed(&app, &remote, &Counters::default()).await;
                running.lock().unwrap_or_else(PoisonError::into_inner).remove(&remote.id);
            });
        }
    }
    tasks.shutdown().await;
    // Runs cut off by the shutdown release their lease, so the next start (or the CLI) can
    // sync those devices at once.
    let cut_off: Vec<RemoteId> =
        running.lock().unwrap_or_else(PoisonError::into_inner).drain().collect();
    for id in cut_off {
        let now = now_unix();
        let record = RunRecord {
            at: now,
            error: Some("interrupted by the server shutting down".to_owned()),
            next_run: now,
        };
        if let Err(e) = app.meta().remote_store().finish_run(id, &record).await {
            tracing::warn!(error = %e, "cannot release an interrupted remote run");
        }
    }
}
