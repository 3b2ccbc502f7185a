//! [`Metrics`]: the server's counters and gauges, exposed at `/metrics` in the Prometheus
//! text format through the `prometheus-client` registry.
//!
//! `/metrics` needs no token, so every label must come from a small, fixed set or an
//! anonymous client could add series without end: routes are the matched route template
//! or `unmatched`, methods are the standard ones or `other` (see [`method_label`]), and a
//! status is one of the few the server answers.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::render`].
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Route label for requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Labels of `savesync_http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

/// Server-wide metrics. Counters are cheap handles; add with [`add`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    pub upload_bytes: Counter,
    pub download_bytes: Counter,
    pub commits: Counter,
    pub conflicts: Counter,
    pub sse_clients: Gauge,
    pub sqlite_errors: Counter,
    pub blob_errors: Counter,
}

/// Add to a counter.
pub fn add(counter: &Counter, n: u64) {
    counter.inc_by(n);
}

/// The label for an HTTP method: the nine standard methods by name, anything else (a
/// client may send any token as a method) as `other`.
#[must_use]
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] =
        ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"];
    KNOWN.into_iter().find(|known| *known == method).unwrap_or("other")
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "savesync_http_requests",
            "HTTP requests by route template, method and status",
            requests.clone(),
        );
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let counter = Counter::default();
            registry.register(name, help, counter.clone());
            counter
        };
        let upload_bytes =
            counter(&mut registry, "savesync_upload_bytes", "Bytes of accepted upload bodies");
        let download_bytes =
            counter(&mut registry, "savesync_download_bytes", "Bytes of served downloads");
        let commits =
            counter(&mut registry, "savesync_commits", "Commits (uploads, deletes, restores)");
        let conflicts =
            counter(&mut registry, "savesync_conflicts", "Writes refused by compare-and-swap");
        let sqlite_errors = counter(
            &mut registry,
            "savesync_sqlite_errors",
            "Requests failed by the metadata store",
        );
        let blob_errors =
            counter(&mut registry, "savesync_blob_errors", "Requests failed by the blob store");
        let sse_clients = Gauge::default();
        registry.register(
            "savesync_sse_clients",
            "Connected event-stream clients",
            sse_clients.clone(),
        );
        Metrics {
            registry,
            requests,
            upload_bytes,
            download_bytes,
            commits,
            conflicts,
            sse_clients,
            sqlite_errors,
            blob_errors,
        }
    }
}

impl Metrics {
    /// Count one answered request by route template (`/api/v1/saves/content`, never the
    /// concrete URI; [`UNMATCHED`] when no route matched), method (bounded by
    /// [`method_label`]) and status.
    pub fn record_request(&self, route: &str, method: &str, status: u16) {
        let labels =
            RequestLabels { route: route.to_owned(), method: method_label(method), status };
        self.requests.get_or_create(&labels).inc();
    }

    /// The Prometheus exposition text.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
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
        m.sse_clients.inc();
        let text = m.render();
        assert!(
            text.contains(
                "savesync_http_requests_total{route=\"/api/v1/saves\",method=\"GET\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("savesync_commits_total 3"), "{text}");
        assert!(text.contains("savesync_sse_clients 1"), "{text}");
        assert!(text.contains("savesync_blob_errors_total 0"), "{text}");
    }

    #[test]
    fn method_labels_are_the_standard_methods_or_other() {
        let table = [
            ("GET", "GET"),
            ("PUT", "PUT"),
            ("DELETE", "DELETE"),
            ("TRACE", "TRACE"),
            ("get", "other"),
            ("XYZ123", "other"),
            ("", "other"),
        ];
        for (method, label) in table {
            assert_eq!(method_label(method), label, "{method:?}");
        }
    }

    #[test]
    fn made_up_methods_share_one_series() {
        let m = Metrics::default();
        for i in 0..100 {
            m.record_request(UNMATCHED, &format!("M{i}"), 404);
        }
        let text = m.render();
        let series = text.lines().filter(|l| l.starts_with("savesync_http_requests_total")).count();
        assert_eq!(series, 1, "{text}");
        assert!(text.contains("method=\"other\",status=\"404\"} 100"), "{text}");
    }
}
