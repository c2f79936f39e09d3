//! End-to-end scale benchmark through the public storage and query APIs:
//! appends N real log lines (loghub samples replayed with shifted
//! timestamps, spread over streams), flushes them to compressed blocks, then
//! runs each query once and reports MB/s (uncompressed line bytes) and
//! lines/s, plus the process's peak RSS.
//!
//! `cargo bench --bench scale` (default 2,000,000 lines);
//! `MINILOKI_BENCH_LINES=10000000 cargo bench --bench scale` for the large run.

use std::sync::Arc;
use std::time::Instant;

use miniloki::labels::Labels;
use miniloki::limits::TenantLimits;
use miniloki::logql::eval::{Engine, QueryLimits, QueryParams, QueryResult};
use miniloki::storage::{Direction, PushEntry, PushStream, StorageConfig, Store, SyncPolicy};

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn main() {
    let n: usize = std::env::var("MINILOKI_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let only = std::env::var("MINILOKI_BENCH_ONLY").ok();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = StorageConfig::new(dir.path());
    cfg.sync = SyncPolicy::None;
    cfg.flush_interval = std::time::Duration::from_secs(3600);
    let store = Store::open(cfg).expect("open store");

    // Corpus: loghub lines plus demo JSON lines (for the json/unwrap queries).
    let mut plain: Vec<String> = Vec::new();
    for e in std::fs::read_dir("testdata/loghub").expect("testdata/loghub") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "log") {
            plain.extend(
                std::fs::read_to_string(&p)
                    .expect("read")
                    .lines()
                    .map(String::from),
            );
        }
    }
    let json: Vec<String> = miniloki::demo::generate(1, 20_000, 0, 1)
        .into_iter()
        .map(|r| r.line)
        .collect();
    let streams = 100usize;
    let day_ns: i64 = 24 * 3600 * 1_000_000_000;
    let end = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
        / 60_000_000_000)
        * 60_000_000_000;
    let start = end - day_ns;
    let step_ns = day_ns / n as i64;
    let t0 = Instant::now();
    let mut bytes = 0u64;
    let batch = 10_000usize;
    let mut i = 0usize;
    while i < n {
        let mut per: Vec<PushStream> = (0..streams)
            .map(|s| PushStream {
                labels: Labels::from_pairs([
                    ("job", "bench".to_string()),
                    ("service", format!("svc-{}", s % 10)),
                    ("instance", format!("i-{s}")),
                    (
                        "format",
                        if s % 2 == 0 {
                            "plain".to_string()
                        } else {
                            "json".to_string()
                        },
                    ),
                ]),
                entries: Vec::with_capacity(batch / streams + 1),
            })
            .collect();
        for k in i..(i + batch).min(n) {
            let s = k % streams;
            let line = if s.is_multiple_of(2) {
                plain[k % plain.len()].clone()
            } else {
                json[k % json.len()].clone()
            };
            bytes += line.len() as u64;
            per[s].entries.push(PushEntry {
                ts: start + k as i64 * step_ns,
                line,
                metadata: Vec::new(),
            });
        }
        store.append("bench", per).expect("append");
        i += batch;
    }
    let append_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    store.flush().expect("flush");
    println!(
        "ingest: {n} lines, {:.0} MB in {append_s:.1}s append ({:.0} lines/s, one thread, no fsync) + {:.1}s flush; peak RSS {:.0} MB",
        bytes as f64 / 1e6,
        n as f64 / append_s,
        t1.elapsed().as_secs_f64(),
        peak_rss_mb()
    );
    let disk: u64 = walk(dir.path());
    println!(
        "on disk: {:.0} MB ({:.1}x compression)",
        disk as f64 / 1e6,
        bytes as f64 / disk.max(1) as f64
    );

    let engine = Engine::new(
        Arc::clone(&store),
        Arc::new(TenantLimits::new(QueryLimits {
            max_query_series: 100_000,
            ..QueryLimits::default()
        })),
    );
    let queries: [(&str, &str, bool); 7] = [
        ("literal", "{job=\"bench\", format=\"plain\"} |= \"no-such-literal-anywhere\"", false),
        ("literal_hit", "{job=\"bench\", format=\"plain\"} |= \"Failed password\"", false),
        ("regex", "{job=\"bench\", format=\"plain\"} |~ \"Failed password for .* port 4[0-9]+\"", false),
        ("json_level", "{job=\"bench\", format=\"json\"} | json | level=\"nonexistent\"", false),
        ("count_over_time", "sum by (service) (count_over_time({job=\"bench\"}[1m]))", true),
        ("bytes_rate", "sum(bytes_rate({job=\"bench\"}[5m]))", true),
        ("quantile_unwrap", "quantile_over_time(0.99, {job=\"bench\", format=\"json\"} | json | unwrap duration_ms [5m]) by (service)", true),
    ];
    for (name, q, metric) in queries {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let params = QueryParams {
            start,
            end: end + 1,
            step: if metric { 60_000_000_000 } else { 0 },
            interval: 0,
            limit: 100,
            direction: Direction::Backward,
            instant: false,
        };
        let ctx = engine.context("bench");
        let t = Instant::now();
        let r = engine
            .query("bench", q, &params, &ctx)
            .unwrap_or_else(|e| panic!("{q}: {e}"));
        let secs = t.elapsed().as_secs_f64();
        let st = ctx.stats.lock().clone();
        let size = match &r {
            QueryResult::Streams(e) => format!("{} entries", e.len()),
            QueryResult::Matrix(m) => format!("{} series", m.len()),
            other => format!("{other:?}").chars().take(40).collect(),
        };
        println!(
            "{name:>16}: {secs:>7.3}s  {:>8.0} MB/s  {:>11.0} lines/s  ({} lines, {:.0} MB scanned, {size})  peak RSS {:.0} MB",
            st.bytes_processed as f64 / 1e6 / secs,
            st.lines_processed as f64 / secs,
            st.lines_processed,
            st.bytes_processed as f64 / 1e6,
            peak_rss_mb()
        );
    }
}

fn walk(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    let m = e
                        .metadata()
                        .map(|m| (m.is_dir(), m.len()))
                        .unwrap_or((false, 0));
                    if m.0 {
                        walk(&e.path())
                    } else {
                        m.1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
