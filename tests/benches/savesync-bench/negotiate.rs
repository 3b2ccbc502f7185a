//! Workload 9: the server's negotiate with a 10,000-save manifest, the call every device
//! makes at start-up, against the in-process `TestServer` (the same call as the server's
//! own `server_load` bench, here in the same run as the mount figures).

use crate::measure::percentile;
use crate::seed::upload_tiny;
use savesync_core::wire::ManifestEntry;
use savesync_tests::TestServer;
use std::time::{Duration, Instant};

/// Latencies of `runs` negotiate calls by a device whose `saves` saves are all on the
/// server and in sync (so every plan is empty).
pub fn negotiate_latencies(server: &TestServer, saves: usize, runs: usize) -> Vec<Duration> {
    let runtime = savesync_tests::runtime();
    runtime.block_on(async {
        let client = server.client_for("negotiate", "negotiate-bench").await;
        let heads =
            upload_tiny(&client, saves, 16, |i| format!("neg/g{:03}/save-{i:05}.srm", i / 1000))
                .await;
        let manifest: Vec<ManifestEntry> = heads
            .iter()
            .map(|h| ManifestEntry { path: h.path.clone(), local: h.hash, base: Some(h.version()) })
            .collect();
        let mut latencies = Vec::with_capacity(runs);
        for _ in 0..runs {
            let started = Instant::now();
            let plan = client.negotiate(manifest.clone()).await.expect("negotiate");
            latencies.push(started.elapsed());
            assert!(plan.actions.is_empty(), "an in-sync manifest needs no actions");
        }
        eprintln!(
            "  negotiate p50 {:?}, p99 {:?}",
            percentile(&latencies, 50),
            percentile(&latencies, 99)
        );
        latencies
    })
}
