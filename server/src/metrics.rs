//! [`Metrics`]: counters exposed at `/metrics` in the Prometheus text format. Hand-rolled
//! because the set is small and fixed; a metrics crate would add more than it saves.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Server-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    pub upload_bytes: AtomicU64,
    pub download_bytes: AtomicU64,
    pub commits: AtomicU64,
    pub conflicts: AtomicU64,
    pub sse_clients: AtomicI64,
    pub sqlite_errors: AtomicU64,
    pub blob_errors: AtomicU64,
}

/// Add to a counter (relaxed: these are statistics, not synchronisation).
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    /// Count one answered request by route template (`/api/v1/saves/content`, never the
    /// concrete URI, so label cardinality stays bounded), method and status.
    pub fn record_request(&self, route: &str, method: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        *map.entry((route.to_owned(), method.to_owned(), status)).or_default() += 1;
    }

    /// The Prometheus exposition text.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP savesync_http_requests_total HTTP requests by route, method and status.\n",
        );
        out.push_str("# TYPE savesync_http_requests_total counter\n");
        {
            let map = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
            for ((route, method, status), n) in map.iter() {
                let _ = writeln!(
                    out,
                    "savesync_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let counters: [(&str, &str, &AtomicU64); 6] = [
            ("savesync_upload_bytes_total", "Bytes of accepted upload bodies.", &self.upload_bytes),
            ("savesync_download_bytes_total", "Bytes of served downloads.", &self.download_bytes),
            ("savesync_commits_total", "Commits (uploads, deletes, restores).", &self.commits),
            ("savesync_conflicts_total", "Writes refused by compare-and-swap.", &self.conflicts),
            (
                "savesync_sqlite_errors_total",
                "Requests failed by the metadata store.",
                &self.sqlite_errors,
            ),
            ("savesync_blob_errors_total", "Requests failed by the blob store.", &self.blob_errors),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP savesync_sse_clients Connected event-stream clients.\n# TYPE savesync_sse_clients gauge\nsavesync_sse_clients {}",
            self.sse_clients.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_request_counts_by_route_and_status() {
        let m = Metrics::default();
        m.record_request("/api/v1/saves", "GET", 200);
        m.record_request("/api/v1/saves", "GET", 200);
        add(&m.commits, 3);
        let text = m.render();
        assert!(text.contains(
            "savesync_http_requests_total{route=\"/api/v1/saves\",method=\"GET\",status=\"200\"} 2"
        ));
        assert!(text.contains("savesync_commits_total 3"));
        assert!(text.contains("savesync_sse_clients 0"));
    }
}
