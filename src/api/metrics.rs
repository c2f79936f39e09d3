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

/// A Prometheus histogram over fixed upper bounds.
#[derive(Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Cumulative: `counts[i]` observations were `<= bounds[i]`.
    counts: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            count: 0,
            sum: 0.0,
        }
    }

    pub fn observe(&mut self, v: f64) {
        for (c, b) in self.counts.iter_mut().zip(self.bounds) {
            if v <= *b {
                *c += 1;
            }
        }
        self.count += 1;
        self.sum += v;
    }

    /// Appends the `_bucket`, `_sum` and `_count` samples of `name`, each
    /// with `labels` (`a="x",b="y"`, or empty for none).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (c, b) in self.counts.iter().zip(self.bounds) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braced = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braced} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braced} {}", self.count);
    }
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
        m.entry((route.to_string(), method.to_string(), status))
            .or_insert_with(|| Histogram::new(&BUCKETS))
            .observe(secs);
    }

    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP miniloki_request_duration_seconds Time spent serving HTTP requests.\n# TYPE miniloki_request_duration_seconds histogram\n");
        let m = self.requests.lock();
        for ((route, method, status), h) in m.iter() {
            let l = format!("route=\"{route}\",method=\"{method}\",status_code=\"{status}\"");
            h.render(out, "miniloki_request_duration_seconds", &l);
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
