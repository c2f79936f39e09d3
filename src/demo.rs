//! Demo data: a deterministic, seeded generator of the structured JSON logs
//! that a small shop's services write with structlog (order, inventory,
//! payment, notification), with trace and span ids, levels, events and
//! durations. Tests and benchmarks call [`generate`]; `miniloki demo` sends
//! the same kind of records continuously to a server, half through the Loki
//! push API and half through OTLP/HTTP, for the docker-compose demo.

use crate::units::now_ns;
use std::fmt::Write as _;

/// A tiny deterministic PRNG (SplitMix64): the same seed gives the same
/// data on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// One generated log record.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoRecord {
    pub service: &'static str,
    pub ts: i64,
    pub level: &'static str,
    pub event: &'static str,
    pub trace_id: String,
    pub span_id: String,
    pub duration_ms: u64,
    /// The JSON line, as structlog writes it.
    pub line: String,
}

pub const SERVICES: [&str; 4] = ["order", "inventory", "payment", "notification"];

const EVENTS: [(&str, &[(&str, &str)]); 4] = [
    (
        "order",
        &[
            ("info", "order_created"),
            ("info", "order_confirmed"),
            ("warn", "order_retry"),
            ("error", "order_processing_failed"),
        ],
    ),
    (
        "inventory",
        &[
            ("info", "stock_reserved"),
            ("info", "stock_released"),
            ("warn", "stock_low"),
            ("error", "reservation_failed"),
        ],
    ),
    (
        "payment",
        &[
            ("info", "payment_authorized"),
            ("info", "payment_captured"),
            ("warn", "payment_slow"),
            ("error", "payment_declined"),
        ],
    ),
    (
        "notification",
        &[
            ("debug", "template_rendered"),
            ("info", "email_sent"),
            ("warn", "email_deferred"),
            ("error", "email_bounced"),
        ],
    ),
];

fn hex(rng: &mut Rng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes * 2);
    for _ in 0..bytes {
        let _ = write!(s, "{:02x}", rng.below(256));
    }
    s
}

fn rfc3339(ts: i64) -> String {
    chrono::DateTime::from_timestamp(
        ts.div_euclid(1_000_000_000),
        ts.rem_euclid(1_000_000_000) as u32,
    )
    .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
    .unwrap_or_default()
}

/// Generates `n` records starting at `start` (ns), `step` ns apart, the same
/// for the same seed. Levels are skewed as in real services: mostly info,
/// some warn, few error.
pub fn generate(seed: u64, n: usize, start: i64, step: i64) -> Vec<DemoRecord> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let svc = rng.below(4) as usize;
        let (service, events) = EVENTS[svc];
        let roll = rng.below(100);
        let (level, event) = match roll {
            0..=59 => events[0],
            60..=84 => events[1],
            85..=94 => events[2],
            _ => events[3],
        };
        let trace_id = hex(&mut rng, 16);
        let span_id = hex(&mut rng, 8);
        // Long-tailed durations: mostly tens of ms, sometimes seconds.
        let base = 5 + rng.below(80);
        let duration_ms = if rng.below(20) == 0 {
            base * (10 + rng.below(40))
        } else {
            base
        };
        let ts = start + i as i64 * step;
        let order_id = format!("ord-{:06}", rng.below(1_000_000));
        let mut line = String::with_capacity(256);
        let _ = write!(
            line,
            "{{\"timestamp\": \"{}\", \"level\": \"{level}\", \"event\": \"{event}\", \"service\": \"{service}\", \"order_id\": \"{order_id}\", \"trace_id\": \"{trace_id}\", \"span_id\": \"{span_id}\", \"duration_ms\": {duration_ms}",
            rfc3339(ts)
        );
        if level == "error" {
            let _ = write!(
                line,
                ", \"error\": \"{}\"",
                rng.pick(&[
                    "timeout contacting upstream",
                    "card declined",
                    "connection reset by peer",
                    "insufficient stock"
                ])
            );
        }
        line.push('}');
        out.push(DemoRecord {
            service,
            ts,
            level,
            event,
            trace_id,
            span_id,
            duration_ms,
            line,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data_and_valid_json() {
        let a = generate(42, 200, 1_700_000_000_000_000_000, 1_000_000);
        let b = generate(42, 200, 1_700_000_000_000_000_000, 1_000_000);
        assert_eq!(a, b);
        assert_ne!(a, generate(43, 200, 1_700_000_000_000_000_000, 1_000_000));
        for r in &a {
            let v: serde_json::Value = serde_json::from_str(&r.line).unwrap();
            assert_eq!(v["trace_id"].as_str().unwrap().len(), 32);
            assert_eq!(v["level"], r.level);
            assert_eq!(v["duration_ms"], r.duration_ms);
        }
        assert!(a.iter().any(|r| r.level == "error"));
        assert!(a.iter().filter(|r| r.level == "info").count() > 100);
    }
}

/// Options of `miniloki demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Base URL of the server to send to (http only).
    #[arg(
        long,
        env = "MINILOKI_DEMO_URL",
        default_value = "http://127.0.0.1:3100"
    )]
    pub url: String,
    /// Records per second, split between Loki push and OTLP.
    #[arg(long, default_value_t = 20)]
    pub rate: u64,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Stop after this many records (0: run until killed).
    #[arg(long, default_value_t = 0)]
    pub count: u64,
}

/// The OTLP/HTTP protobuf body for a batch of records.
fn otlp_body(recs: &[DemoRecord]) -> Vec<u8> {
    use crate::proto::otlp::collector::ExportLogsServiceRequest;
    use crate::proto::otlp::common::{any_value::Value, AnyValue, InstrumentationScope, KeyValue};
    use crate::proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
    use crate::proto::otlp::resource::Resource;
    use prost::Message;
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    };
    let resource_logs = recs
        .iter()
        .map(|r| ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", r.service),
                    kv("deployment.environment", "demo"),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: format!("shop.{}", r.service),
                    version: "1.0.0".into(),
                    ..Default::default()
                }),
                log_records: vec![LogRecord {
                    time_unix_nano: r.ts as u64,
                    severity_text: r.level.to_uppercase(),
                    severity_number: match r.level {
                        "debug" => 5,
                        "info" => 9,
                        "warn" => 13,
                        _ => 17,
                    },
                    body: Some(AnyValue {
                        value: Some(Value::StringValue(r.line.clone())),
                    }),
                    attributes: vec![kv("event", r.event)],
                    trace_id: hex::decode(&r.trace_id).unwrap_or_default(),
                    span_id: hex::decode(&r.span_id).unwrap_or_default(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }.encode_to_vec()
}

/// Runs the demo sender until killed (or `--count` records).
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let host = crate::loadgen::host_port(&args.url)?;
    let mut rng_seed = args.seed;
    let mut sent = 0u64;
    let per_tick = args.rate.max(1);
    loop {
        let mut conn = match crate::loadgen::Conn::open(&host) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("demo: {e}; retrying");
                std::thread::sleep(std::time::Duration::from_secs(2));
                continue;
            }
        };
        loop {
            let recs = generate(
                rng_seed,
                per_tick as usize,
                now_ns(),
                1_000_000_000 / per_tick as i64,
            );
            rng_seed = rng_seed.wrapping_add(1);
            let (push, otlp): (Vec<_>, Vec<_>) =
                recs.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
            let push: Vec<DemoRecord> = push.into_iter().map(|(_, r)| r).collect();
            let otlp: Vec<DemoRecord> = otlp.into_iter().map(|(_, r)| r).collect();
            let streams: Vec<serde_json::Value> = push
                .iter()
                .map(|r| serde_json::json!({"stream": {"app": r.service, "env": "demo", "source": "push"}, "values": [[r.ts.to_string(), r.line]]}))
                .collect();
            let body = serde_json::json!({ "streams": streams }).to_string();
            let a = conn.request(
                "POST",
                "/loki/api/v1/push",
                "application/json",
                body.as_bytes(),
            );
            let b = conn.request(
                "POST",
                "/otlp/v1/logs",
                "application/x-protobuf",
                &otlp_body(&otlp),
            );
            match (a, b) {
                (Ok((204, _)), Ok((200, _))) => {}
                (a, b) => {
                    eprintln!("demo: push {:?}, otlp {:?}", a.map(|r| r.0), b.map(|r| r.0));
                    break;
                }
            }
            sent += per_tick;
            if args.count > 0 && sent >= args.count {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
