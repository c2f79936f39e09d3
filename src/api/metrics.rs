//! `/metrics`: the server's own metrics in Prometheus text format.
//!
//! HTTP request latency histograms are recorded by a middleware per route
//! pattern, method and status; the other sections are read from the
//! counters that ingestion and storage keep, at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use parking_lot::Mutex;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Request metrics of the HTTP API.
#[derive(Default)]
pub struct HttpMetrics {
    /// (route, method, status) → histogram. A std-style mutex is fine: the
    /// critical section is a few additions.
    requests: Mutex<BTreeMap<(String, String, u16), Histogram>>,
}

impl HttpMetrics {
    pub fn observe(&self, route: &str, method: &str, status: u16, secs: f64) {
        let mut m = self.requests.lock();
        let h = m
            .entry((route.to_string(), method.to_string(), status))
            .or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP miniloki_request_duration_seconds Time spent serving HTTP requests.\n# TYPE miniloki_request_duration_seconds histogram\n");
        let m = self.requests.lock();
        for ((route, method, status), h) in m.iter() {
            let l = format!("route=\"{route}\",method=\"{method}\",status_code=\"{status}\"");
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "miniloki_request_duration_seconds_bucket{{{l},le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "miniloki_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "miniloki_request_duration_seconds_sum{{{l}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "miniloki_request_duration_seconds_count{{{l}}} {}",
                h.count
            );
        }
    }
}

/// Appends one metric family with a single unlabelled sample.
pub fn write_gauge(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}
