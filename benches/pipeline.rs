//! Per-line pipeline speed over real log lines (loghub samples and demo
//! JSON lines): literal filters over whole blocks, regex filters, `json` with
//! a label filter, `logfmt` with a duration filter. Throughput is reported
//! in bytes of input lines. Run with `cargo bench --bench pipeline`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use miniloki::labels::Labels;
use miniloki::logql::log::Pipeline;
use miniloki::logql::syntax::{ast::Expr, parse_expr};

/// Lines back to back with offsets, as storage hands them to queries.
struct Block {
    lines: Vec<u8>,
    offsets: Vec<u32>,
}

fn block(lines: &[String]) -> Block {
    let mut b = Block {
        lines: Vec::new(),
        offsets: vec![0],
    };
    for l in lines {
        b.lines.extend_from_slice(l.as_bytes());
        b.offsets.push(b.lines.len() as u32);
    }
    b
}

fn loghub_lines() -> Vec<String> {
    let mut out = Vec::new();
    for f in ["Apache", "HDFS", "OpenSSH", "Linux", "Spark", "Zookeeper"] {
        let text = std::fs::read_to_string(format!("testdata/loghub/{f}_2k.log"))
            .expect("testdata/loghub");
        out.extend(text.lines().map(String::from));
    }
    out
}

fn logfmt_lines() -> Vec<String> {
    miniloki::demo::generate(7, 10_000, 1_700_000_000_000_000_000, 1_000_000)
        .into_iter()
        .map(|r| {
            format!(
                "ts={} level={} event={} service={} trace_id={} duration={}ms",
                r.ts, r.level, r.event, r.service, r.trace_id, r.duration_ms
            )
        })
        .collect()
}

fn pipeline(q: &str) -> Pipeline {
    match parse_expr(q) {
        Ok(Expr::Log(l)) => Pipeline::new(&l.pipeline).expect("pipeline"),
        other => panic!("{q}: {other:?}"),
    }
}

fn run_lines(c: &mut Criterion, name: &str, q: &str, lines: &[String]) {
    let p = pipeline(q);
    let b = block(lines);
    let labels = Labels::from_pairs([("app", "bench")]);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Bytes(b.lines.len() as u64));
    g.bench_function(name, |bench| {
        bench.iter(|| {
            let mut sp = p.for_stream(&labels);
            let mut kept = 0usize;
            for i in 0..b.offsets.len() - 1 {
                let line = &b.lines[b.offsets[i] as usize..b.offsets[i + 1] as usize];
                if sp.process(0, line, &[]).is_some() {
                    kept += 1;
                }
            }
            kept
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let hub = loghub_lines();
    let b = block(&hub);
    let literal = pipeline("{app=\"x\"} |= \"Failed password\"");
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Bytes(b.lines.len() as u64));
    let mut keep = Vec::new();
    g.bench_function("literal_filter_block", |bench| {
        bench.iter(|| {
            literal.filter_block(&b.lines, &b.offsets, &mut keep);
            keep.iter().filter(|k| **k).count()
        })
    });
    g.finish();
    run_lines(
        c,
        "literal_filter_per_line",
        "{app=\"x\"} |= \"Failed password\"",
        &hub,
    );
    run_lines(
        c,
        "regex_filter",
        "{app=\"x\"} |~ \"Failed password for .* from 1[0-9]+\"",
        &hub,
    );
    run_lines(
        c,
        "case_insensitive_regex",
        "{app=\"x\"} |~ \"(?i)exception\"",
        &hub,
    );
    let json: Vec<String> =
        miniloki::demo::generate(7, 10_000, 1_700_000_000_000_000_000, 1_000_000)
            .into_iter()
            .map(|r| r.line)
            .collect();
    run_lines(
        c,
        "json_level_error",
        "{app=\"x\"} | json | level=\"error\"",
        &json,
    );
    run_lines(
        c,
        "logfmt_duration",
        "{app=\"x\"} | logfmt | duration > 200ms",
        &logfmt_lines(),
    );
}

criterion_group!(pipeline_benches, benches);
criterion_main!(pipeline_benches);
