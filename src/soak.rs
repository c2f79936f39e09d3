//! The soak tool (`miniloki soak`): mixed push and query load against a
//! running server for a long time, to show that latency and memory stay flat.
//!
//! Push connections send the batches of [`crate::loadgen`] at a fixed target
//! rate (each connection sleeps until its next batch is due, staggered so the
//! connections do not fire together), with timestamps at "now" so queries
//! over the last minutes see the data. Query workers rotate through the
//! requests Grafana sends (log queries with a literal or a regex filter, a
//! `count_over_time` range query, an instant `rate`, labels, label values,
//! series), all relative to "now". Every request's latency is recorded; each
//! `--report-every` the tool prints one markdown table row (push rate
//! achieved, push and query p50/p99/max, errors, server RSS, data dir size),
//! optionally per-kind CSV rows, and at the end a summary with the overall
//! percentiles per kind and the least-squares RSS trend over the second half
//! of the run. It exits non-zero if any request failed.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use parking_lot::Mutex;

use crate::loadgen::{host_port, load_lines, make_batch, percentile, server_rss, Conn, LoadArgs};
use crate::units::now_ns;

/// Options of `miniloki soak`.
#[derive(Args, Debug, Clone)]
pub struct SoakArgs {
    /// Base URL of the server (http only).
    #[arg(long, default_value = "http://127.0.0.1:3100")]
    pub url: String,
    /// How long to run, e.g. `30m`.
    #[arg(long, default_value = "30m")]
    pub duration: String,
    /// Target push rate in lines per second, over all connections.
    #[arg(long, default_value_t = 500_000)]
    pub push_rate: u64,
    /// Concurrent push connections.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Entries per push request.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Number of distinct streams.
    #[arg(long, default_value_t = 1000)]
    pub streams: usize,
    /// Streams per push request.
    #[arg(long, default_value_t = 10)]
    pub streams_per_batch: usize,
    /// Size of each line in bytes.
    #[arg(long, default_value_t = 200)]
    pub line_bytes: usize,
    /// Directory of `*.log` files to take lines from.
    #[arg(long, default_value = "testdata/loghub")]
    pub corpus: PathBuf,
    /// Concurrent query workers.
    #[arg(long, default_value_t = 2)]
    pub query_workers: usize,
    /// Pause of each query worker between two queries, e.g. `250ms`.
    #[arg(long, default_value = "250ms")]
    pub query_interval: String,
    /// Length of a reporting interval (one table row), e.g. `60s`.
    #[arg(long, default_value = "60s")]
    pub report_every: String,
    /// Give up on a request after this long without an answer (counted as an
    /// error).
    #[arg(long, default_value = "60s")]
    pub request_timeout: String,
    /// Read the server's RSS from `/proc/<pid>/status` instead of `/metrics`.
    #[arg(long)]
    pub pid: Option<u32>,
    /// The server's data directory, to report its size.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also write per-kind rows for every interval to this CSV file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

/// What a request was: the push or one of the query kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Push,
    LogFilter,
    LogRegex,
    MetricRange,
    MetricInstant,
    Labels,
    LabelValues,
    Series,
}

/// Every kind of request, the push first (the rest are [`QUERY_KINDS`]).
const KINDS: [Kind; 8] = [
    Kind::Push,
    Kind::LogFilter,
    Kind::LogRegex,
    Kind::MetricRange,
    Kind::MetricInstant,
    Kind::Labels,
    Kind::LabelValues,
    Kind::Series,
];

/// The query kinds (all but the push), in the order the workers rotate
/// through them.
const QUERY_KINDS: &[Kind] = KINDS.split_at(1).1;

impl Kind {
    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Push => "push",
            Kind::LogFilter => "log_filter",
            Kind::LogRegex => "log_regex",
            Kind::MetricRange => "metric_range",
            Kind::MetricInstant => "metric_instant",
            Kind::Labels => "labels",
            Kind::LabelValues => "label_values",
            Kind::Series => "series",
        }
    }
}

/// Words of the literal-filter log query, all common in the loghub corpus.
const FILTER_WORDS: [&str; 4] = ["error", "INFO", "WARN", "session"];
/// Labels whose values the label-values query asks for.
const VALUE_LABELS: [&str; 3] = ["app", "level", "instance"];
/// `make_batch` spreads streams over this many `app` values.
const APPS: usize = 20;

const NS_PER_MIN: i64 = 60 * 1_000_000_000;

/// The request of query kind `kind`, the `n`th of the run, at `now` (Unix ns):
/// a path with its URL-encoded query string.
fn query_path(kind: Kind, n: u64, now: i64, streams: usize) -> String {
    let app = format!("app-{}", n as usize % APPS.min(streams.max(1)));
    let sel = format!("{{job=\"load\", app=\"{app}\"}}");
    let range = |mins: i64| {
        format!(
            "start={}&end={now}",
            now.saturating_sub(mins.saturating_mul(NS_PER_MIN))
        )
    };
    match kind {
        Kind::LogFilter => {
            let word = FILTER_WORDS[n as usize % FILTER_WORDS.len()];
            format!(
                "/loki/api/v1/query_range?query={}&{}&limit=100&direction=backward",
                enc(&format!("{sel} |= \"{word}\"")),
                range(5)
            )
        }
        // The loghub lines are neither logfmt nor JSON: a regex filter.
        Kind::LogRegex => format!(
            "/loki/api/v1/query_range?query={}&{}&limit=100&direction=backward",
            enc(r#"{job="load", level="error"} |~ "(?i)(fail|exception|denied)""#),
            range(5)
        ),
        Kind::MetricRange => format!(
            "/loki/api/v1/query_range?query={}&{}&step=15s",
            enc(&format!("sum by (level) (count_over_time({sel}[1m]))")),
            range(15)
        ),
        Kind::MetricInstant => format!(
            "/loki/api/v1/query?query={}&time={now}",
            enc(&format!("sum(rate({sel} |= \"error\" [5m]))"))
        ),
        Kind::Labels => format!("/loki/api/v1/labels?{}", range(15)),
        Kind::LabelValues => format!(
            "/loki/api/v1/label/{}/values?{}",
            VALUE_LABELS[n as usize % VALUE_LABELS.len()],
            range(15)
        ),
        Kind::Series | Kind::Push => format!(
            "/loki/api/v1/series?{}={}&{}",
            enc("match[]"),
            enc(&sel),
            range(15)
        ),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Count and p50/p99/max (µs) of some latency samples.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Lat {
    count: usize,
    p50: Option<u32>,
    p99: Option<u32>,
    max: Option<u32>,
}

impl Lat {
    /// Sorts `samples` in place and summarises them.
    fn of(samples: &mut [u32]) -> Lat {
        samples.sort_unstable();
        Lat {
            count: samples.len(),
            p50: percentile(samples, 50.0),
            p99: percentile(samples, 99.0),
            max: samples.last().copied(),
        }
    }
}

/// Milliseconds with one decimal, or `-` when there were no samples.
fn ms(us: Option<u32>) -> String {
    us.map_or_else(|| "-".to_string(), |u| format!("{:.1}", u as f64 / 1000.0))
}

/// Time between two batches on one connection so that `connections`
/// connections together send `rate` lines/s of `lines_per_batch`-line batches.
fn batch_period(rate: u64, connections: usize, lines_per_batch: u64) -> Duration {
    let ns =
        lines_per_batch as u128 * connections.max(1) as u128 * 1_000_000_000 / rate.max(1) as u128;
    Duration::from_nanos(ns.min(u64::MAX as u128) as u64)
}

/// When batch `i` of connection `c` (of `connections`) is due, from the start:
/// every `period`, connection `c` shifted by `c / connections` of a period.
fn due(period: Duration, connections: usize, c: usize, i: u64) -> Duration {
    let p = period.as_nanos();
    let ns = p * i as u128 + p * c as u128 / connections.max(1) as u128;
    Duration::from_nanos(ns.min(u64::MAX as u128) as u64)
}

/// The batch a connection sends next after batch `i`, `elapsed` from the
/// start: `i + 1`, unless the connection has fallen more than `max_lag` behind
/// its schedule; then the batches missed are dropped (not sent in a burst
/// later) and it continues with the last one already due.
fn next_batch(
    period: Duration,
    connections: usize,
    c: usize,
    i: u64,
    elapsed: Duration,
    max_lag: Duration,
) -> u64 {
    let next = i + 1;
    if elapsed <= due(period, connections, c, next) + max_lag || period.is_zero() {
        return next;
    }
    let offset = due(period, connections, c, 0);
    let behind = elapsed.saturating_sub(offset).as_nanos() / period.as_nanos();
    (behind as u64).max(next)
}

/// Least-squares slope of y over x; `None` for fewer than two distinct x.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx == 0.0 {
        return None;
    }
    Some(sxy / sxx)
}

/// What happened in one reporting interval (swapped out by the reporter).
#[derive(Default)]
struct Interval {
    /// Latency samples in µs, per kind.
    samples: [Vec<u32>; KINDS.len()],
    errors: [u64; KINDS.len()],
    pushed_lines: u64,
}

/// State shared by the push and query threads and the reporter.
struct Shared {
    interval: Mutex<Interval>,
    first_error: Mutex<[Option<String>; KINDS.len()]>,
    stop: AtomicBool,
    /// Batches dropped because their connection was more than 1 s behind.
    skipped_batches: AtomicU64,
}

impl Shared {
    fn ok(&self, kind: Kind, took: Duration, lines: u64) {
        let us = took.as_micros().min(u32::MAX as u128) as u32;
        let mut iv = self.interval.lock();
        iv.samples[kind.index()].push(us);
        iv.pushed_lines += lines;
    }

    /// A failed request; `took` is `None` when no answer came.
    fn failed(&self, kind: Kind, took: Option<Duration>, what: String) {
        {
            let mut iv = self.interval.lock();
            iv.errors[kind.index()] += 1;
            if let Some(t) = took {
                iv.samples[kind.index()].push(t.as_micros().min(u32::MAX as u128) as u32);
            }
        }
        let mut first = self.first_error.lock();
        let slot = &mut first[kind.index()];
        if slot.is_none() {
            let mut what = what;
            if what.len() > 500 {
                let cut = (0..=500).rev().find(|i| what.is_char_boundary(*i));
                what.truncate(cut.unwrap_or(0));
                what.push_str("...");
            }
            *slot = Some(what);
        }
    }

    /// Sleeps up to `d`, waking early when asked to stop.
    fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= end {
                break;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(100)));
        }
    }
}

/// Sends one request on `conn` (opening it first if needed) and records it.
/// Returns whether it succeeded.
#[allow(clippy::too_many_arguments)]
fn send(
    shared: &Shared,
    conn: &mut Option<Conn>,
    host: &str,
    timeout: Duration,
    kind: Kind,
    method: &str,
    path: &str,
    ctype: &str,
    body: &[u8],
    ok_status: u16,
    lines: u64,
) -> bool {
    if conn.is_none() {
        match Conn::open(host).and_then(|c| c.set_read_timeout(timeout).map(|_| c)) {
            Ok(c) => *conn = Some(c),
            Err(e) => {
                shared.failed(kind, None, format!("{e:#}"));
                shared.sleep(Duration::from_millis(200));
                return false;
            }
        }
    }
    let Some(c) = conn.as_mut() else {
        return false;
    };
    let t0 = Instant::now();
    match c.request(method, path, ctype, body) {
        Ok((st, _)) if st == ok_status => {
            shared.ok(kind, t0.elapsed(), lines);
            true
        }
        Ok((st, resp)) => {
            let took = t0.elapsed();
            shared.failed(
                kind,
                Some(took),
                format!("{st}: {}", String::from_utf8_lossy(&resp).trim()),
            );
            false
        }
        Err(e) => {
            *conn = None;
            shared.failed(kind, None, format!("{e:#}"));
            false
        }
    }
}

/// The server's memory in bytes.
struct Mem {
    rss: f64,
    peak: f64,
    /// Anonymous memory (heap), without the file pages mapped in (the memory
    /// mapped blocks that queries read): only from `/proc`.
    anon: Option<f64>,
}

/// The server's memory: from `/proc/<pid>/status` with `--pid`, else from its
/// `/metrics`.
fn rss(pid: Option<u32>, host: &str) -> Option<Mem> {
    let Some(pid) = pid else {
        return server_rss(host).map(|(rss, peak)| Mem {
            rss,
            peak,
            anon: None,
        });
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v * 1024.0)
    };
    Some(Mem {
        rss: kb("VmRSS:")?,
        peak: kb("VmHWM:").unwrap_or(0.0),
        anon: kb("RssAnon:"),
    })
}

/// Sum of the sizes of the files under `dir` (files vanishing meanwhile, as
/// flushes replace them, are skipped).
fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for e in rd.flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => total += dir_size(&e.path()),
            Ok(_) => total += e.metadata().map_or(0, |m| m.len()),
            Err(_) => {}
        }
    }
    total
}

fn duration_arg(name: &str, v: &str) -> anyhow::Result<Duration> {
    crate::config::parse_duration(v)
        .with_context(|| format!("--{name} {v:?} is not a duration like 30s"))
}

/// Formats an integer with thousands separators.
fn thousands(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Whole-run accumulation by the reporter.
struct Totals {
    samples: [Vec<u32>; KINDS.len()],
    errors: [u64; KINDS.len()],
    pushed_lines: u64,
    /// (minutes from start, RSS MB) at every report.
    rss: Vec<(f64, f64)>,
    /// (minutes from start, anonymous RSS MB), with `--pid`.
    anon: Vec<(f64, f64)>,
    peak_rss_mb: f64,
    data_mb: Option<f64>,
}

impl Totals {
    fn add(&mut self, iv: &Interval) {
        for k in 0..KINDS.len() {
            self.samples[k].extend_from_slice(&iv.samples[k]);
            self.errors[k] += iv.errors[k];
        }
        self.pushed_lines += iv.pushed_lines;
    }
}

/// Runs the soak tool.
pub fn run(args: SoakArgs) -> anyhow::Result<()> {
    let host = host_port(&args.url)?;
    let duration = duration_arg("duration", &args.duration)?;
    let report_every = duration_arg("report-every", &args.report_every)?;
    let query_interval = duration_arg("query-interval", &args.query_interval)?;
    let timeout = duration_arg("request-timeout", &args.request_timeout)?;
    if args.push_rate == 0 || report_every.is_zero() || timeout.is_zero() {
        bail!("--push-rate, --report-every and --request-timeout must be positive");
    }
    let load = LoadArgs {
        url: args.url.clone(),
        streams: args.streams.max(1),
        batch: args.batch.max(1),
        streams_per_batch: args.streams_per_batch.max(1),
        line_bytes: args.line_bytes,
        connections: args.connections.max(1),
        duration: args.duration.clone(),
        corpus: args.corpus.clone(),
        touch_all_streams: false,
        otlp: false,
        rate: 0.0,
    };
    let lines = Arc::new(load_lines(&args.corpus, args.line_bytes)?);
    let per_batch = ((load.batch / load.streams_per_batch).max(1) * load.streams_per_batch) as u64;
    let connections = load.connections;
    let period = batch_period(args.push_rate, connections, per_batch);
    let mut csv = match &args.csv {
        Some(p) => {
            let mut f =
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
            writeln!(
                f,
                "elapsed_s,kind,count,errors,lines_per_s,p50_ms,p99_ms,max_ms,rss_mb,data_mb,anon_mb"
            )?;
            Some(f)
        }
        None => None,
    };

    println!(
        "soak against {}: {} lines/s target over {connections} connections \
         ({per_batch}-line batches, one every {:.1} ms per connection), {} query workers \
         pausing {query_interval:?}, {} per row, for {duration:?}",
        args.url,
        thousands(args.push_rate),
        period.as_secs_f64() * 1000.0,
        args.query_workers,
        args.report_every,
    );
    match rss(args.pid, &host) {
        Some(m) => println!("server RSS before the run: {:.1} MB", m.rss / 1e6),
        None => println!("server RSS before the run: not available"),
    }
    println!();
    println!("| t | push lines/s | push p50 ms | push p99 ms | push max ms | queries | query p50 ms | query p99 ms | query max ms | errors | RSS MB | anon MB | data MB |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");

    let shared = Arc::new(Shared {
        interval: Mutex::new(Interval::default()),
        first_error: Mutex::new(Default::default()),
        stop: AtomicBool::new(false),
        skipped_batches: AtomicU64::new(0),
    });
    let started = Instant::now();
    let mut handles = Vec::new();
    for c in 0..connections {
        let (shared, load, lines, host) =
            (shared.clone(), load.clone(), lines.clone(), host.clone());
        handles.push(std::thread::spawn(move || {
            let mut conn = None;
            let mut i = 0u64;
            let max_lag = Duration::from_secs(1);
            while !shared.stop.load(Ordering::Relaxed) {
                let at = due(period, connections, c, i);
                let elapsed = started.elapsed();
                if at > elapsed {
                    shared.sleep(at - elapsed);
                    if shared.stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                // Unique across connections; timestamps end at "now".
                let b = i * connections as u64 + c as u64;
                let n0 = (b as i64)
                    .saturating_mul(load.batch as i64)
                    .saturating_add(load.batch as i64);
                let base_ts = now_ns().saturating_sub(n0.saturating_mul(1000));
                let body = make_batch(&load, &lines, b, base_ts);
                send(
                    &shared,
                    &mut conn,
                    &host,
                    timeout,
                    Kind::Push,
                    "POST",
                    "/loki/api/v1/push",
                    "application/x-protobuf",
                    &body,
                    204,
                    per_batch,
                );
                let next = next_batch(period, connections, c, i, started.elapsed(), max_lag);
                shared
                    .skipped_batches
                    .fetch_add(next - i - 1, Ordering::Relaxed);
                i = next;
            }
        }));
    }
    let query_no = Arc::new(AtomicU64::new(0));
    for _ in 0..args.query_workers {
        let (shared, host, query_no) = (shared.clone(), host.clone(), query_no.clone());
        let streams = load.streams;
        handles.push(std::thread::spawn(move || {
            let mut conn = None;
            while !shared.stop.load(Ordering::Relaxed) {
                let n = query_no.fetch_add(1, Ordering::Relaxed);
                let kind = QUERY_KINDS[n as usize % QUERY_KINDS.len()];
                let rot = n / QUERY_KINDS.len() as u64;
                let path = query_path(kind, rot, now_ns(), streams);
                send(
                    &shared,
                    &mut conn,
                    &host,
                    timeout,
                    kind,
                    "GET",
                    &path,
                    "text/plain",
                    b"",
                    200,
                    0,
                );
                shared.sleep(query_interval);
            }
        }));
    }

    let mut totals = Totals {
        samples: Default::default(),
        errors: [0; KINDS.len()],
        pushed_lines: 0,
        rss: Vec::new(),
        anon: Vec::new(),
        peak_rss_mb: 0.0,
        data_mb: None,
    };
    let mut last_report = Duration::ZERO;
    while last_report < duration {
        let target = (last_report + report_every).min(duration);
        let now = started.elapsed();
        if target > now {
            std::thread::sleep(target - now);
        }
        let now = started.elapsed();
        let secs = (now - last_report).as_secs_f64().max(1e-9);
        last_report = now;
        let mut iv = std::mem::take(&mut *shared.interval.lock());
        totals.add(&iv);
        let rss_now = rss(args.pid, &host);
        let rss_mb = rss_now.as_ref().map(|m| m.rss / 1e6);
        let anon_mb = rss_now.as_ref().and_then(|m| m.anon).map(|a| a / 1e6);
        let minutes = now.as_secs_f64() / 60.0;
        if let Some(m) = &rss_now {
            totals.rss.push((minutes, m.rss / 1e6));
            totals.peak_rss_mb = totals.peak_rss_mb.max(m.peak / 1e6);
        }
        if let Some(a) = anon_mb {
            totals.anon.push((minutes, a));
        }
        let data_mb = args.data_dir.as_deref().map(|d| dir_size(d) as f64 / 1e6);
        totals.data_mb = data_mb.or(totals.data_mb);
        let lines_per_s = iv.pushed_lines as f64 / secs;
        let push = Lat::of(&mut iv.samples[Kind::Push.index()]);
        let mut all_q: Vec<u32> = QUERY_KINDS
            .iter()
            .flat_map(|k| iv.samples[k.index()].iter().copied())
            .collect();
        let q = Lat::of(&mut all_q);
        let errors: u64 = iv.errors.iter().sum();
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
        let t = now.as_secs();
        println!(
            "| {}:{:02} | {} | {} | {} | {} | {} | {} | {} | {} | {errors} | {} | {} | {} |",
            t / 60,
            t % 60,
            thousands(lines_per_s.round() as u64),
            ms(push.p50),
            ms(push.p99),
            ms(push.max),
            q.count,
            ms(q.p50),
            ms(q.p99),
            ms(q.max),
            opt(rss_mb),
            opt(anon_mb),
            opt(data_mb),
        );
        if let Some(f) = csv.as_mut() {
            for kind in KINDS {
                let l = Lat::of(&mut iv.samples[kind.index()]);
                let rate = if kind == Kind::Push {
                    format!("{lines_per_s:.0}")
                } else {
                    String::new()
                };
                writeln!(
                    f,
                    "{:.1},{},{},{},{rate},{},{},{},{},{},{}",
                    now.as_secs_f64(),
                    kind.name(),
                    l.count,
                    iv.errors[kind.index()],
                    ms(l.p50),
                    ms(l.p99),
                    ms(l.max),
                    opt(rss_mb),
                    opt(data_mb),
                    opt(anon_mb),
                )?;
            }
            f.flush()?;
        }
    }
    let ran = started.elapsed();
    shared.stop.store(true, Ordering::Relaxed);
    for h in handles {
        if h.join().is_err() {
            bail!("a soak thread panicked");
        }
    }
    let drained = started.elapsed().saturating_sub(ran);
    // Requests that finished after the last row count in the totals only.
    totals.add(&std::mem::take(&mut *shared.interval.lock()));
    let failed = summary(&args, &mut totals, ran, drained, &shared);
    if failed > 0 {
        bail!("{failed} requests failed");
    }
    Ok(())
}

/// Prints the final summary; returns the number of failed requests.
fn summary(
    args: &SoakArgs,
    totals: &mut Totals,
    elapsed: Duration,
    drained: Duration,
    shared: &Shared,
) -> u64 {
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!();
    println!("## Summary");
    println!();
    let achieved = totals.pushed_lines as f64 / secs;
    println!(
        "ran {secs:.1} s (then {:.1} s for the requests in flight); pushed {} lines in {} requests: \
         {} lines/s achieved of {} target ({:.1} %)",
        drained.as_secs_f64(),
        thousands(totals.pushed_lines),
        thousands(totals.samples[Kind::Push.index()].len() as u64),
        thousands(achieved.round() as u64),
        thousands(args.push_rate),
        achieved * 100.0 / args.push_rate as f64,
    );
    let skipped = shared.skipped_batches.load(Ordering::Relaxed);
    if skipped > 0 {
        println!(
            "{} batches not sent: their connection was more than 1 s behind schedule",
            thousands(skipped)
        );
    }
    println!();
    println!("| kind | requests | errors | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for kind in KINDS {
        let l = Lat::of(&mut totals.samples[kind.index()]);
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            kind.name(),
            l.count,
            totals.errors[kind.index()],
            ms(l.p50),
            ms(l.p99),
            ms(l.max)
        );
    }
    println!();
    let half = elapsed.as_secs_f64() / 120.0;
    if memory_summary("RSS", &totals.rss, half) {
        println!(
            "peak RSS reported by the server: {:.1} MB",
            totals.peak_rss_mb
        );
    } else {
        println!("RSS: not available");
    }
    memory_summary("anonymous RSS", &totals.anon, half);
    if let Some(d) = totals.data_mb {
        println!("data dir at the end: {d:.1} MB");
    }
    let failed: u64 = totals.errors.iter().sum();
    let first = shared.first_error.lock();
    for kind in KINDS {
        if let Some(e) = &first[kind.index()] {
            println!("first {} error: {e}", kind.name());
        }
    }
    println!(
        "{} requests failed",
        if failed == 0 {
            "no".to_string()
        } else {
            failed.to_string()
        }
    );
    failed
}

/// Prints first/min/max/last of (minutes, MB) samples and the least-squares
/// trend of those from minute `half` on; false when there are none.
fn memory_summary(what: &str, points: &[(f64, f64)], half: f64) -> bool {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return false;
    };
    let min = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max);
    println!(
        "{what} MB: first {:.1}, min {min:.1}, max {max:.1}, last {:.1}",
        first.1, last.1
    );
    let second: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.0 >= half).collect();
    match slope(&second) {
        Some(s) => println!(
            "{what} trend over the second half: {s:+.2} MB/min (least squares over {} samples)",
            second.len()
        ),
        None => println!("{what} trend over the second half: - (fewer than 2 samples)"),
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=10).collect();
        // rank = ceil(p/100 * 10): p50 → 5th, p99 → ceil(9.9) = 10th, p10 → 1st.
        assert_eq!(percentile(&v, 50.0), Some(5));
        assert_eq!(percentile(&v, 99.0), Some(10));
        assert_eq!(percentile(&v, 10.0), Some(1));
        assert_eq!(percentile(&v, 11.0), Some(2));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&v, 100.0), Some(10));
        assert_eq!(percentile::<u32>(&[], 50.0), None);
        assert_eq!(percentile(&[7], 99.0), Some(7));
        // 200 samples 1..=200: p99 → 198th, p50 → 100th.
        let v: Vec<u32> = (1..=200).collect();
        assert_eq!(percentile(&v, 99.0), Some(198));
        assert_eq!(percentile(&v, 50.0), Some(100));
        // Lat sorts first.
        let mut s = vec![30, 10, 20, 40];
        assert_eq!(
            Lat::of(&mut s),
            Lat {
                count: 4,
                p50: Some(20),
                p99: Some(40),
                max: Some(40)
            }
        );
        assert_eq!(ms(Some(1240)), "1.2");
        assert_eq!(ms(Some(1260)), "1.3");
        assert_eq!(ms(None), "-");
    }

    #[test]
    fn pacing() {
        // 500,000 lines/s over 4 connections of 1000-line batches: each
        // connection sends 125 batches/s, one every 8 ms.
        let p = batch_period(500_000, 4, 1000);
        assert_eq!(p, Duration::from_millis(8));
        // Connection 1 of 4 is shifted by a quarter period (2 ms).
        assert_eq!(due(p, 4, 0, 0), Duration::ZERO);
        assert_eq!(due(p, 4, 1, 3), Duration::from_millis(26));
        assert_eq!(due(p, 4, 3, 1), Duration::from_millis(14));
        // 2,000 lines/s of 100-line batches on one connection: every 50 ms.
        assert_eq!(batch_period(2000, 1, 100), Duration::from_millis(50));
        // 3 lines/s of 1-line batches: 333,333,333 ns (rounded down).
        assert_eq!(batch_period(3, 1, 1), Duration::from_nanos(333_333_333));
        let lag = Duration::from_secs(1);
        // On time or within the lag: the next batch.
        assert_eq!(next_batch(p, 4, 1, 3, Duration::from_millis(20), lag), 4);
        assert_eq!(next_batch(p, 4, 1, 3, Duration::from_millis(1034), lag), 4);
        // Batch 4 of connection 1 is due at 34 ms; at 2034 ms it is 2 s late:
        // skip to the last batch due by then, (2034 - 2) / 8 = 254.
        assert_eq!(
            next_batch(p, 4, 1, 3, Duration::from_millis(2034), lag),
            254
        );
        assert_eq!(due(p, 4, 1, 254), Duration::from_millis(2034));
    }

    #[test]
    fn least_squares_slope() {
        // y = 2x + 1 exactly.
        let pts = [(0.0, 1.0), (1.0, 3.0), (2.0, 5.0), (3.0, 7.0)];
        assert_eq!(slope(&pts), Some(2.0));
        // (0,0), (1,1), (2,0), (3,1): mean x 1.5, mean y 0.5;
        // sxy = (-1.5)(-0.5) + (-0.5)(0.5) + (0.5)(-0.5) + (1.5)(0.5) = 1.0,
        // sxx = 2.25 + 0.25 + 0.25 + 2.25 = 5.0 → 0.2.
        let pts = [(0.0, 0.0), (1.0, 1.0), (2.0, 0.0), (3.0, 1.0)];
        assert!((slope(&pts).unwrap() - 0.2).abs() < 1e-12);
        // Flat.
        assert_eq!(
            slope(&[(5.0, 100.0), (6.0, 100.0), (7.0, 100.0)]),
            Some(0.0)
        );
        assert_eq!(slope(&[(1.0, 2.0)]), None);
        assert_eq!(slope(&[(1.0, 2.0), (1.0, 3.0)]), None);
    }

    #[test]
    fn query_paths_are_encoded_and_relative_to_now() {
        let now = 1_000 * NS_PER_MIN;
        let p = query_path(Kind::LogFilter, 21, now, 1000);
        // n = 21: app-1, word 21 % 4 = 1 → INFO; start = now - 5 min.
        assert_eq!(
            p,
            format!(
                "/loki/api/v1/query_range?query=%7Bjob%3D%22load%22%2C%20app%3D%22app-1%22%7D%20%7C%3D%20%22INFO%22&start={}&end={now}&limit=100&direction=backward",
                995 * NS_PER_MIN
            )
        );
        let p = query_path(Kind::Series, 3, now, 2);
        // Only 2 streams → apps app-0 and app-1: 3 % 2 = 1.
        assert!(p.starts_with(
            "/loki/api/v1/series?match%5B%5D=%7Bjob%3D%22load%22%2C%20app%3D%22app-1%22%7D&start="
        ));
        assert!(query_path(Kind::MetricRange, 0, now, 10).contains("&step=15s"));
        assert_eq!(
            query_path(Kind::LabelValues, 2, now, 10),
            format!(
                "/loki/api/v1/label/instance/values?start={}&end={now}",
                985 * NS_PER_MIN
            )
        );
        assert_eq!(enc("a-b_c.d~e f/"), "a-b_c.d~e%20f%2F");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(0), "0");
    }
}
