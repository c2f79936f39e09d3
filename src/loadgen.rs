//! The load tool (`miniloki load`): pushes snappy-compressed protobuf batches
//! at a running server from several connections for a fixed time, then
//! reports lines/s, MB/s (uncompressed line bytes) and the server's peak RSS
//! (read from its `/metrics`).
//!
//! Lines come from a corpus directory (default `testdata/loghub`), cut or
//! padded to `--line-bytes`, so payloads compress like real logs. Each batch
//! spreads `--batch` entries over `--streams-per-batch` streams chosen
//! round-robin from `--streams` label sets; timestamps advance per entry so
//! nothing is dropped as a duplicate. It speaks plain HTTP/1.1 over keep-alive
//! TCP connections so the client costs as little CPU as possible on the same
//! machine.
//!
//! With `--otlp` the same entries go to `POST /otlp/v1/logs` as OTLP/HTTP
//! protobuf (uncompressed, as an SDK's exporter sends by default): one
//! `ResourceLogs` per stream, whose resource attributes map to the same four
//! index labels' worth of streams (`service.name`, `service.instance.id`,
//! `deployment.environment`) and whose level becomes `severity_text`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use prost::Message;

use crate::proto::logproto::{EntryAdapter, PushRequest, StreamAdapter};
use crate::units::now_ns;

#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Base URL of the server (http only).
    #[arg(long, default_value = "http://127.0.0.1:3100")]
    pub url: String,
    /// Number of distinct streams.
    #[arg(long, default_value_t = 1000)]
    pub streams: usize,
    /// Entries per push request.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Streams per push request.
    #[arg(long, default_value_t = 10)]
    pub streams_per_batch: usize,
    /// Size of each line in bytes.
    #[arg(long, default_value_t = 200)]
    pub line_bytes: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// How long to push, e.g. `20s`.
    #[arg(long, default_value = "20s")]
    pub duration: String,
    /// Directory of `*.log` files to take lines from.
    #[arg(long, default_value = "testdata/loghub")]
    pub corpus: std::path::PathBuf,
    /// Push one entry to each of the `--streams` streams first, then measure
    /// RSS (for the active-streams memory figure) before the timed run.
    #[arg(long)]
    pub touch_all_streams: bool,
    /// Push OTLP/HTTP protobuf to `/otlp/v1/logs` instead of the push API.
    #[arg(long)]
    pub otlp: bool,
    /// Push requests per second over all connections (a fixed load); 0
    /// pushes as fast as the server answers.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

/// Path, content type and success status of the endpoint under load.
fn endpoint(args: &LoadArgs) -> (&'static str, &'static str, u16) {
    if args.otlp {
        ("/otlp/v1/logs", "application/x-protobuf", 200)
    } else {
        ("/loki/api/v1/push", "application/x-protobuf", 204)
    }
}

/// Records an OTLP response refused by `partial_success` (0 for the push API
/// or a full success).
fn rejected_records(args: &LoadArgs, body: &[u8]) -> u64 {
    if !args.otlp {
        return 0;
    }
    crate::proto::otlp::collector::ExportLogsServiceResponse::decode(body)
        .ok()
        .and_then(|r| r.partial_success)
        .map_or(0, |p| p.rejected_log_records.max(0) as u64)
}

pub(crate) fn host_port(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .context("only http:// URLs are supported")?;
    Ok(rest.trim_end_matches('/').to_string())
}

pub(crate) fn load_lines(dir: &std::path::Path, size: usize) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading corpus {}", dir.display()))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "log") {
            for l in std::fs::read_to_string(&p)?.lines() {
                let mut s: String = l.chars().take(size).collect();
                while s.len() < size {
                    s.push_str(" pad");
                }
                s.truncate(
                    s.char_indices()
                        .map(|(i, _)| i)
                        .take_while(|i| *i <= size)
                        .last()
                        .unwrap_or(0)
                        .max(1)
                        .min(s.len()),
                );
                lines.push(s);
            }
        }
    }
    if lines.is_empty() {
        bail!("no *.log lines found in {}", dir.display());
    }
    Ok(lines)
}

/// One keep-alive HTTP/1.1 connection.
pub(crate) struct Conn {
    reader: BufReader<TcpStream>,
    host: String,
}

impl Conn {
    pub(crate) fn open(host: &str) -> anyhow::Result<Conn> {
        let s = TcpStream::connect(host).with_context(|| format!("connecting to {host}"))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(s),
            host: host.to_string(),
        })
    }

    /// Bounds how long [`Conn::request`] waits for each read of the answer.
    pub(crate) fn set_read_timeout(&self, d: Duration) -> anyhow::Result<()> {
        self.reader.get_ref().set_read_timeout(Some(d))?;
        Ok(())
    }

    /// Sends a request and returns (status, body).
    pub(crate) fn request(
        &mut self,
        method: &str,
        path: &str,
        ctype: &str,
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        let s = self.reader.get_mut();
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("bad status line")?;
        let mut len = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; len];
        self.reader.read_exact(&mut body)?;
        Ok((status, body))
    }
}

/// Encodes one batch; `seq` makes timestamps unique across the run.
pub(crate) fn make_batch(
    args: &LoadArgs,
    lines: &[String],
    batch_no: u64,
    base_ts: i64,
) -> Vec<u8> {
    if args.otlp {
        return make_otlp_batch(args, lines, batch_no, base_ts);
    }
    let per_stream = (args.batch / args.streams_per_batch.max(1)).max(1);
    let mut streams = Vec::with_capacity(args.streams_per_batch);
    for k in 0..args.streams_per_batch.max(1) {
        let sid = (batch_no as usize * args.streams_per_batch + k) % args.streams.max(1);
        let mut entries = Vec::with_capacity(per_stream);
        for j in 0..per_stream {
            let n = batch_no as usize * args.batch + k * per_stream + j;
            let ts = base_ts + n as i64 * 1000;
            entries.push(EntryAdapter {
                timestamp: Some(prost_types::Timestamp {
                    seconds: ts / 1_000_000_000,
                    nanos: (ts % 1_000_000_000) as i32,
                }),
                line: lines[n % lines.len()].clone(),
                structured_metadata: vec![],
                parsed: vec![],
            });
        }
        streams.push(StreamAdapter {
            labels: format!(
                "{{job=\"load\", app=\"app-{}\", instance=\"i-{sid}\", level=\"{}\"}}",
                sid % 20,
                ["info", "warn", "error"][sid % 3]
            ),
            entries,
            hash: 0,
        });
    }
    let raw = PushRequest { streams }.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

/// The same entries as [`make_batch`], as an OTLP export request.
fn make_otlp_batch(args: &LoadArgs, lines: &[String], batch_no: u64, base_ts: i64) -> Vec<u8> {
    use crate::proto::otlp::collector::ExportLogsServiceRequest;
    use crate::proto::otlp::common::{any_value, AnyValue, KeyValue};
    use crate::proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
    use crate::proto::otlp::resource::Resource;
    let attr = |k: &str, v: String| KeyValue {
        key: k.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v)),
        }),
        ..Default::default()
    };
    let per_stream = (args.batch / args.streams_per_batch.max(1)).max(1);
    let mut resource_logs = Vec::with_capacity(args.streams_per_batch);
    for k in 0..args.streams_per_batch.max(1) {
        let sid = (batch_no as usize * args.streams_per_batch + k) % args.streams.max(1);
        let (severity_text, severity_number) = [("INFO", 9), ("WARN", 13), ("ERROR", 17)][sid % 3];
        let mut log_records = Vec::with_capacity(per_stream);
        for j in 0..per_stream {
            let n = batch_no as usize * args.batch + k * per_stream + j;
            let ts = base_ts + n as i64 * 1000;
            log_records.push(LogRecord {
                time_unix_nano: ts as u64,
                severity_number,
                severity_text: severity_text.to_string(),
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(
                        lines[n % lines.len()].clone(),
                    )),
                }),
                ..Default::default()
            });
        }
        resource_logs.push(ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    attr("service.name", format!("app-{}", sid % 20)),
                    attr("service.instance.id", format!("i-{sid}")),
                    attr("deployment.environment", "load".to_string()),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: None,
                log_records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        });
    }
    ExportLogsServiceRequest { resource_logs }.encode_to_vec()
}

/// The server's (RSS, peak RSS) in bytes, from its `/metrics`.
pub(crate) fn server_rss(host: &str) -> Option<(f64, f64)> {
    let mut c = Conn::open(host).ok()?;
    let (_, body) = c.request("GET", "/metrics", "text/plain", b"").ok()?;
    let text = String::from_utf8_lossy(&body);
    let get = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some((
        get("process_resident_memory_bytes ")?,
        get("process_max_resident_memory_bytes ").unwrap_or(0.0),
    ))
}

/// Runs the load tool.
pub fn run(args: LoadArgs) -> anyhow::Result<()> {
    let host = host_port(&args.url)?;
    let duration = crate::config::parse_duration(&args.duration)
        .context("--duration is not a duration like 20s")?;
    let lines = Arc::new(load_lines(&args.corpus, args.line_bytes)?);
    let base_ts = now_ns() - 5 * 60 * 1_000_000_000;
    if args.touch_all_streams {
        let mut c = Conn::open(&host)?;
        let one = LoadArgs {
            batch: args.streams_per_batch.max(1),
            ..args.clone()
        };
        let batches = args.streams.div_ceil(args.streams_per_batch.max(1));
        for b in 0..batches as u64 {
            let body = make_batch(&one, &lines, b, base_ts - 60 * 1_000_000_000);
            let (path, ctype, ok) = endpoint(&args);
            let (st, resp) = c.request("POST", path, ctype, &body)?;
            if st != ok || rejected_records(&args, &resp) > 0 {
                bail!("push failed with {st}: {}", String::from_utf8_lossy(&resp));
            }
        }
        if let Some((rss, peak)) = server_rss(&host) {
            println!(
                "after touching {} streams: server RSS {:.1} MB (peak {:.1} MB)",
                args.streams,
                rss / 1e6,
                peak / 1e6
            );
        }
    }
    let sent_lines = Arc::new(AtomicU64::new(0));
    let sent_bytes = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let next_batch = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..args.connections.max(1) {
        let (host, args, lines) = (host.clone(), args.clone(), lines.clone());
        let (sent_lines, sent_bytes, failures, stop, next_batch) = (
            sent_lines.clone(),
            sent_bytes.clone(),
            failures.clone(),
            stop.clone(),
            next_batch.clone(),
        );
        handles.push(std::thread::spawn(move || -> anyhow::Result<Vec<u64>> {
            let mut c = Conn::open(&host)?;
            let per_batch_lines = ((args.batch / args.streams_per_batch.max(1)).max(1)
                * args.streams_per_batch.max(1)) as u64;
            // Microseconds per push request, for the latency line.
            let mut latencies = Vec::new();
            let gap = (args.rate > 0.0)
                .then(|| Duration::from_secs_f64(args.connections.max(1) as f64 / args.rate));
            let mut next_send = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if let Some(gap) = gap {
                    let now = Instant::now();
                    if next_send > now {
                        std::thread::sleep(next_send - now);
                    }
                    next_send = next_send.max(now) + gap;
                }
                let b = next_batch.fetch_add(1, Ordering::Relaxed);
                let body = make_batch(&args, &lines, b, base_ts);
                let (path, ctype, ok) = endpoint(&args);
                let sent_at = Instant::now();
                let res = c.request("POST", path, ctype, &body);
                latencies.push(sent_at.elapsed().as_micros() as u64);
                match res {
                    Ok((st, resp)) if st == ok && rejected_records(&args, &resp) == 0 => {
                        sent_lines.fetch_add(per_batch_lines, Ordering::Relaxed);
                        sent_bytes
                            .fetch_add(per_batch_lines * args.line_bytes as u64, Ordering::Relaxed);
                    }
                    Ok((st, resp)) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        if failures.load(Ordering::Relaxed) < 3 {
                            eprintln!("push failed with {st}: {}", String::from_utf8_lossy(&resp));
                        }
                    }
                    Err(e) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        eprintln!("connection error: {e}");
                        c = Conn::open(&host)?;
                    }
                }
            }
            Ok(latencies)
        }));
    }
    let mut last = (Instant::now(), 0u64);
    while started.elapsed() < duration {
        std::thread::sleep(Duration::from_secs(1));
        let n = sent_lines.load(Ordering::Relaxed);
        let dt = last.0.elapsed().as_secs_f64();
        eprintln!(
            "{:>5.1}s  {:>10.0} lines/s",
            started.elapsed().as_secs_f64(),
            (n - last.1) as f64 / dt
        );
        last = (Instant::now(), n);
    }
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(
            h.join()
                .map_err(|_| anyhow::anyhow!("a load thread panicked"))??,
        );
    }
    let secs = started.elapsed().as_secs_f64();
    let lines_total = sent_lines.load(Ordering::Relaxed);
    let bytes_total = sent_bytes.load(Ordering::Relaxed);
    println!(
        "pushed {lines_total} lines in {secs:.1}s: {:.0} lines/s, {:.1} MB/s of line data, {} failed requests",
        lines_total as f64 / secs,
        bytes_total as f64 / secs / 1e6,
        failures.load(Ordering::Relaxed)
    );
    if let Some(l) = latency_summary(&mut latencies) {
        println!("{l}");
    }
    match server_rss(&host) {
        Some((rss, peak)) => println!(
            "server RSS now {:.1} MB, peak {:.1} MB",
            rss / 1e6,
            peak / 1e6
        ),
        None => println!("server RSS: not available from /metrics"),
    }
    Ok(())
}

/// The value at percentile `p` (0–100) of ascending `sorted` samples, by the
/// nearest-rank method: the smallest sample with at least `p` % of the
/// samples at or below it. `None` for no samples.
pub(crate) fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64 / 100.0).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// `push latency: p50 … p99 … max … over N requests` from per-request
/// microseconds (nearest-rank percentiles); `None` without requests.
fn latency_summary(micros: &mut [u64]) -> Option<String> {
    micros.sort_unstable();
    let n = micros.len();
    let ms = |p: f64| percentile(micros, p).map(|us| us as f64 / 1000.0);
    Some(format!(
        "push latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {n} requests",
        ms(50.0)?,
        ms(99.0)?,
        ms(100.0)?
    ))
}

/// Options of `miniloki check`.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// URL to probe (http only).
    #[arg(long, default_value = "http://127.0.0.1:3100/ready")]
    pub url: String,
}

/// Exits with an error unless `url` answers 200.
pub fn check(args: CheckArgs) -> anyhow::Result<()> {
    let rest = args
        .url
        .strip_prefix("http://")
        .context("only http:// URLs are supported")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (status, body) = Conn::open(host)?.request("GET", path, "text/plain", b"")?;
    if status != 200 {
        bail!(
            "{} answered {status}: {}",
            args.url,
            String::from_utf8_lossy(&body).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(otlp: bool) -> LoadArgs {
        LoadArgs {
            url: "http://127.0.0.1:3100".into(),
            streams: 7,
            batch: 20,
            streams_per_batch: 4,
            line_bytes: 10,
            connections: 1,
            duration: "1s".into(),
            corpus: "testdata/loghub".into(),
            touch_all_streams: false,
            otlp,
            rate: 0.0,
        }
    }

    #[test]
    fn latency_summary_uses_nearest_rank_percentiles() {
        // 1..=200 ms: p50 is the 100th value, p99 the 198th.
        let mut v: Vec<u64> = (1..=200).rev().map(|ms| ms * 1000).collect();
        assert_eq!(
            latency_summary(&mut v).unwrap(),
            "push latency: p50 100.0 ms, p99 198.0 ms, max 200.0 ms over 200 requests"
        );
        assert_eq!(
            latency_summary(&mut [1500]).unwrap(),
            "push latency: p50 1.5 ms, p99 1.5 ms, max 1.5 ms over 1 requests"
        );
        assert_eq!(latency_summary(&mut []), None);
    }

    #[test]
    fn otlp_batch_carries_the_same_entries_as_the_push_batch() {
        use crate::proto::otlp::collector::ExportLogsServiceRequest;
        let lines: Vec<String> = (0..3).map(|i| format!("line {i}")).collect();
        let a = args(true);
        let body = make_batch(&a, &lines, 2, 1_000);
        let req = ExportLogsServiceRequest::decode(body.as_slice()).unwrap();
        // 4 streams of 20 / 4 = 5 records; batch 2 starts at stream 2*4 % 7 = 1.
        assert_eq!(req.resource_logs.len(), 4);
        let m = crate::ingest::otlp::map_request(req, &Default::default(), &[], 0);
        assert_eq!(
            m.streams[0].labels,
            r#"{deployment_environment="load", service_instance_id="i-1", service_name="app-1"}"#
        );
        let e = &m.streams[0].entries;
        assert_eq!(e.len(), 5);
        // Entry n = 2*20 + 0*5 + j: ts = 1000 + n*1000, line n % 3.
        assert_eq!((e[0].ts, e[0].line.as_str()), (41_000, "line 1"));
        assert_eq!((e[4].ts, e[4].line.as_str()), (45_000, "line 2"));
        // sid 1 → WARN.
        assert!(e[0]
            .metadata
            .contains(&("severity_text".to_string(), "WARN".to_string())));
        assert_eq!(
            endpoint(&a),
            ("/otlp/v1/logs", "application/x-protobuf", 200)
        );
        assert_eq!(
            endpoint(&args(false)),
            ("/loki/api/v1/push", "application/x-protobuf", 204)
        );
    }
}
