//! In-repo, dependency-free fuzzing of every decoder that sees untrusted
//! bytes: one entry point per target (each takes `&[u8]`, must never panic,
//! hang or allocate without bound), and a mutation-based, coverage-less
//! driver (`miniloki fuzz --target T --seconds N --seed S`) that starts from
//! the seed inputs in `testdata/fuzz/<target>/` and saves any panicking or
//! slow input to `testdata/fuzz/<target>/crashes/`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;

use crate::labels::{parse_labels, Labels};
use crate::logql::log::{Pipeline, SampleKind};
use crate::logql::syntax::ast::Expr;
use crate::logql::syntax::parse_expr;

/// Caps given to the decoders, as the server's defaults are.
const MAX_RECV: usize = 4 << 20;
const MAX_DECOMPRESSED: usize = 16 << 20;
/// Largest input the driver generates.
const MAX_INPUT: usize = 64 * 1024;
/// An input slower than this is reported and saved.
pub const SLOW: Duration = Duration::from_secs(1);
/// An input still running after this is a hang: saved, then the process exits.
const HANG: Duration = Duration::from_secs(20);

/// A fuzz target: runs one input; `true` when the decoder accepted it (used
/// as crude feedback: accepted inputs join the corpus).
pub type TargetFn = fn(&[u8]) -> bool;

/// Every target, by name.
pub const TARGETS: &[(&str, TargetFn)] = &[
    ("logql", logql),
    ("labels", labels),
    ("push_proto", push_proto),
    ("push_json", push_json),
    ("push_gzip", push_gzip),
    ("otlp_proto", otlp_proto),
    ("otlp_json", otlp_json),
    ("template", template),
    ("wal", wal),
    ("wal_record", wal_record),
    ("chunk", chunk),
    ("block", block),
    ("index", index),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<TargetFn> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

// ---------------------------------------------------------------------------
// Targets

/// LogQL: parse; when it parses, print and re-parse (the round trip must
/// give the same tree), then compile every log pipeline in it and run a few
/// lines through it.
pub fn logql(data: &[u8]) -> bool {
    let src = String::from_utf8_lossy(data);
    let Ok(expr) = parse_expr(&src) else {
        return false;
    };
    let printed = expr.to_string();
    match parse_expr(&printed) {
        Ok(again) => assert!(
            again == expr,
            "print/re-parse changed the query: {src:?} printed as {printed:?}"
        ),
        Err(e) => panic!("printed form does not re-parse: {src:?} printed as {printed:?}: {e}"),
    }
    let mut logs = Vec::new();
    match &expr {
        Expr::Log(l) => logs.push((l, None)),
        Expr::Metric(m) => logs.extend(m.range_aggregations().into_iter().map(|r| {
            (
                &r.log,
                Some(crate::logql::eval::store_source::sample_kind(r)),
            )
        })),
    }
    for (l, kind) in logs {
        let Ok(p) = Pipeline::new(&l.pipeline) else {
            continue;
        };
        run_pipeline(&p, kind.as_ref());
    }
    true
}

const SAMPLE_LINES: &[&str] = &[
    r#"{"level":"error","msg":"boom","duration":"1.5s","size":"12KB","nested":{"a":[1,2]}}"#,
    "level=info msg=\"hello world\" duration=250ms status=200 ip=10.0.0.1",
    "2024-01-01T00:00:00Z GET /api/v1 200 12ms \x1b[31mred\x1b[0m",
    "",
];

fn run_pipeline(p: &Pipeline, kind: Option<&SampleKind>) {
    let stream = Labels::from_pairs([("app", "fuzz"), ("level", "info")]);
    let mut sp = p.for_stream(&stream);
    let md: Vec<(Arc<str>, Arc<str>)> = vec![(Arc::from("trace_id"), Arc::from("abc"))];
    for (i, line) in SAMPLE_LINES.iter().enumerate() {
        let ts = 1_700_000_000_000_000_000 + i as i64;
        match kind {
            Some(k) => {
                let _ = sp.process_sample(ts, line.as_bytes(), &md, k);
            }
            None => {
                let _ = sp.process(ts, line.as_bytes(), &md);
            }
        }
    }
}

/// `labels::parse_labels`; a parsed set must print and re-parse to itself.
pub fn labels(data: &[u8]) -> bool {
    let src = String::from_utf8_lossy(data);
    let Ok(l) = parse_labels(&src) else {
        return false;
    };
    let printed = l.to_string();
    match parse_labels(&printed) {
        Ok(again) => assert!(again == l, "labels round trip: {src:?} -> {printed:?}"),
        Err(e) => panic!("printed labels do not re-parse: {printed:?}: {e}"),
    }
    true
}

/// Loki push, snappy-compressed protobuf.
pub fn push_proto(data: &[u8]) -> bool {
    crate::ingest::push::decode_push(
        Some("application/x-protobuf"),
        None,
        data,
        MAX_RECV,
        MAX_DECOMPRESSED,
    )
    .is_ok()
}

/// Loki push, JSON.
pub fn push_json(data: &[u8]) -> bool {
    crate::ingest::push::decode_push(
        Some("application/json"),
        None,
        data,
        MAX_RECV,
        MAX_DECOMPRESSED,
    )
    .is_ok()
}

/// Loki push with `Content-Encoding: gzip` (JSON inside when the first
/// byte is even, snappy protobuf otherwise; the byte is then skipped).
pub fn push_gzip(data: &[u8]) -> bool {
    let (ct, body) = match data.split_first() {
        Some((b, rest)) if b % 2 == 0 => ("application/json", rest),
        Some((_, rest)) => ("application/x-protobuf", rest),
        None => ("application/json", data),
    };
    crate::ingest::push::decode_push(Some(ct), Some("gzip"), body, MAX_RECV, MAX_DECOMPRESSED)
        .is_ok()
}

fn otlp(ct: &str, data: &[u8]) -> bool {
    match crate::ingest::otlp::decode_otlp_http(Some(ct), None, data, MAX_DECOMPRESSED) {
        Ok(req) => {
            let cfg = crate::ingest::otlp::OtlpConfig::default();
            let _ = crate::ingest::otlp::map_request(req, &cfg, &[], 1_700_000_000_000_000_000);
            true
        }
        Err(_) => false,
    }
}

/// OTLP/HTTP protobuf, decoded and mapped onto streams.
pub fn otlp_proto(data: &[u8]) -> bool {
    otlp("application/x-protobuf", data)
}

/// OTLP/HTTP JSON, decoded and mapped onto streams.
pub fn otlp_json(data: &[u8]) -> bool {
    otlp("application/json", data)
}

struct FuzzData<'a> {
    line: &'a str,
}

impl crate::logql::log::template::TemplateData for FuzzData<'_> {
    fn label(&self, name: &str) -> Option<&str> {
        match name {
            "app" => Some("fuzz"),
            "level" => Some("error"),
            "n" => Some("42"),
            "json" => Some(r#"{"a":1,"b":[1,2]}"#),
            _ => None,
        }
    }
    fn line(&self) -> &str {
        self.line
    }
    fn timestamp_ns(&self) -> i64 {
        1_700_000_000_123_456_789
    }
    fn for_each_label(&self, f: &mut dyn FnMut(&str, &str)) {
        for k in ["app", "level", "n", "json"] {
            if let Some(v) = self.label(k) {
                f(k, v);
            }
        }
    }
}

/// The template engine: the input up to the first NUL byte is the
/// template, the rest the line; parse, then execute.
pub fn template(data: &[u8]) -> bool {
    let (src, line) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], data.get(i + 1..).unwrap_or_default()),
        None => (data, &b"a line"[..]),
    };
    let src = String::from_utf8_lossy(src);
    let line = String::from_utf8_lossy(line);
    let Ok(t) = crate::logql::log::template::Template::parse(&src) else {
        return false;
    };
    let mut out = String::new();
    t.execute(&FuzzData { line: &line }, &mut out).is_ok()
}

static WAL_SEQ: AtomicU64 = AtomicU64::new(0);

/// WAL replay: the input is written as the only WAL segment of a fresh data
/// directory, and the store is opened (which replays it) and shut down.
pub fn wal(data: &[u8]) -> bool {
    let dir = std::env::temp_dir().join(format!(
        "miniloki-fuzz-wal-{}-{}",
        std::process::id(),
        WAL_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let wal_dir = dir.join("wal");
    let ok = std::fs::create_dir_all(&wal_dir).is_ok()
        && std::fs::write(wal_dir.join("00000001.wal"), data).is_ok();
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(dir.clone());
    if !ok {
        return false;
    }
    let mut cfg = crate::storage::StorageConfig::new(&dir);
    cfg.sync = crate::storage::SyncPolicy::None;
    match crate::storage::Store::open(cfg) {
        Ok(store) => {
            let accepted = !store.tenants().is_empty();
            let _ = store.shutdown();
            accepted
        }
        Err(_) => false,
    }
}

/// WAL replay of one record whose payload is the input: the segment
/// header, the record header and its checksum are made valid, so that
/// mutations reach the record decoder instead of failing the CRC.
pub fn wal_record(data: &[u8]) -> bool {
    let mut seg = Vec::with_capacity(data.len() + 17);
    seg.extend_from_slice(b"MLWL\x01\0\0\0");
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    seg.extend_from_slice(&len.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&[1]), data);
    seg.extend_from_slice(&crc.to_le_bytes());
    seg.push(1);
    seg.extend_from_slice(data);
    wal(&seg)
}

/// One block of a chunk: the first byte picks the codec (0 zstd, 1
/// snappy, other none), the rest is the block, whose two checksums are
/// recomputed so that mutations reach the column decoders.
pub fn block(data: &[u8]) -> bool {
    let Some((&codec, rest)) = data.split_first() else {
        return false;
    };
    let mut b = rest.to_vec();
    fix_block_crcs(&mut b);
    crate::storage::fuzz_decode_block(codec, &b).is_ok()
}

/// Block layout: 7 little-endian u32 (entries, ts len, lens len, lines
/// len, lines raw, md len, md raw), ts, lens, crc, lines, md, data crc.
fn fix_block_crcs(b: &mut [u8]) {
    let u = |b: &[u8], i: usize| -> usize {
        b.get(i * 4..i * 4 + 4)
            .map_or(0, |x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]) as usize)
    };
    if b.len() < 28 {
        return;
    }
    let cols_end = 28usize.saturating_add(u(b, 1)).saturating_add(u(b, 2));
    if cols_end.saturating_add(4) > b.len() {
        return;
    }
    let crc = crc32c::crc32c(&b[..cols_end]);
    b[cols_end..cols_end + 4].copy_from_slice(&crc.to_le_bytes());
    let data_start = cols_end + 4;
    let data_end = data_start.saturating_add(u(b, 3)).saturating_add(u(b, 5));
    if data_end.saturating_add(4) > b.len() {
        return;
    }
    let dcrc = crc32c::crc32c(&b[data_start..data_end]);
    b[data_end..data_end + 4].copy_from_slice(&dcrc.to_le_bytes());
}

/// One encoded chunk, parsed and fully decoded.
pub fn chunk(data: &[u8]) -> bool {
    crate::storage::fuzz_decode_chunk(data).is_ok()
}

/// A block's label index, opened and read throughout. The file checksum
/// (the `u32` before the trailing 4-byte magic, over everything before it)
/// is recomputed, so that mutations reach the section decoders instead of
/// failing the CRC.
pub fn index(data: &[u8]) -> bool {
    let mut b = data.to_vec();
    let n = b.len();
    if n >= 8 {
        let crc = crc32c::crc32c(&b[..n - 8]);
        b[n - 8..n - 4].copy_from_slice(&crc.to_le_bytes());
    }
    crate::storage::fuzz_decode_index(&b).is_ok()
}

// ---------------------------------------------------------------------------
// Running one input

/// What happened to one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Returned normally (accepted or not) within [`SLOW`].
    Ok { accepted: bool },
    /// Panicked with this message.
    Panic(String),
    /// Took longer than [`SLOW`].
    Slow(Duration),
}

thread_local! {
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    static IN_TARGET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs (once) a panic hook that, while a target runs on this thread,
/// records the message instead of printing it; other panics go to the
/// previous hook as before.
pub fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_TARGET.with(|c| c.get()) {
                return prev(info);
            }
            let msg = match info.payload().downcast_ref::<&str>() {
                Some(s) => s.to_string(),
                None => info
                    .payload()
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "panic".into()),
            };
            let loc = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg}{loc}")));
        }));
    });
}

/// Runs one input through a target under `catch_unwind`, timing it.
pub fn run_one(f: TargetFn, data: &[u8]) -> Outcome {
    let start = Instant::now();
    LAST_PANIC.with(|p| *p.borrow_mut() = None);
    IN_TARGET.with(|c| c.set(true));
    let r = catch_unwind(AssertUnwindSafe(|| f(data)));
    IN_TARGET.with(|c| c.set(false));
    let took = start.elapsed();
    match r {
        Err(payload) => {
            let msg = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            Outcome::Panic(msg)
        }
        Ok(_) if took > SLOW => Outcome::Slow(took),
        Ok(accepted) => Outcome::Ok { accepted },
    }
}

// ---------------------------------------------------------------------------
// Mutation

/// xorshift64*: small, fast, seeded, good enough for mutation choices.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-ish in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    &[0],
    &[0xff],
    &[0x7f],
    &[0x80],
    &[0xff, 0xff, 0xff, 0xff],
    &[0xff, 0xff, 0xff, 0x7f],
    &[0, 0, 0, 0x80],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    &[0x80, 0x80, 0x80, 0x80, 0x10],
];

/// Tokens the mutator inserts, per target.
fn dictionary(target: &str) -> &'static [&'static str] {
    match target {
        "logql" => &[
            "{",
            "}",
            "(",
            ")",
            "[5m]",
            "[1s]",
            ",",
            "=",
            "!=",
            "=~",
            "!~",
            "|=",
            "|~",
            "|>",
            "!>",
            "| json",
            "| logfmt",
            "| logfmt --strict",
            "| unpack",
            "| decolorize",
            "| regexp \"(?P<a>\\\\w+)\"",
            "| pattern \"<a> <_>\"",
            "| line_format \"{{.a}}\"",
            "| label_format a=b",
            "| drop a",
            "| keep a",
            "| unwrap",
            " duration(",
            " bytes(",
            "ip(\"10.0.0.0/8\")",
            "rate(",
            "count_over_time(",
            "quantile_over_time(0.9,",
            "sum by (a) (",
            "topk(2,",
            "sort_desc(",
            "vector(1)",
            "label_replace(",
            " or ",
            " and ",
            " unless ",
            " bool ",
            " on (a) ",
            " group_left ",
            "offset 1h",
            ">",
            "<=",
            "==",
            "1e308",
            "-0",
            "NaN",
            "Inf",
            "5ms",
            "1GB",
            "\"",
            "`",
            "\\",
            "__error__",
            "absent_over_time(",
            "@",
            "#",
            "0x",
            "1.5e-3",
        ],
        "template" => &[
            "{{",
            "}}",
            "{{-",
            "-}}",
            ".",
            "$",
            "$x := ",
            "range ",
            "end",
            "if ",
            "else ",
            "with ",
            "define \"t\"",
            "template \"t\"",
            "block \"b\" .",
            "printf \"%v\" ",
            "len ",
            "index ",
            "slice ",
            "regexReplaceAll \"a+\" ",
            "repeat 100 ",
            "trunc -1 ",
            "substr 0 5 ",
            "toJson ",
            "fromJson ",
            "__line__",
            "__timestamp__",
            "date \"2006\" ",
            "unixEpoch ",
            "(",
            ")",
            "|",
            "\"",
            "`",
            "nil",
            "true",
            "1e9",
            "-1",
            "add ",
            "div 1 0",
            "mod 1 0",
            "and ",
            "or ",
            "not ",
            "eq ",
            "break",
            "continue",
            "/*",
            "*/",
        ],
        "labels" => &[
            "{",
            "}",
            "=",
            "\"",
            ",",
            " ",
            "\\",
            "\\x",
            "\\u00e9",
            "\\U0010FFFF",
            "\\377",
            "__name__",
            "a",
            "a_b",
        ],
        "push_json" | "otlp_json" | "push_gzip" => &[
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            "\"",
            "\"streams\"",
            "\"stream\"",
            "\"values\"",
            "\"resourceLogs\"",
            "\"scopeLogs\"",
            "\"logRecords\"",
            "\"body\"",
            "\"stringValue\"",
            "\"kvlistValue\"",
            "\"arrayValue\"",
            "\"attributes\"",
            "\"timeUnixNano\"",
            "\"1700000000000000000\"",
            "null",
            "true",
            "1e999",
            "-9223372036854775809",
            "\"\\u0000\"",
            "\"\\ud800\"",
            "{}",
            "[]",
        ],
        _ => &[],
    }
}

fn mutate(rng: &mut Rng, data: &mut Vec<u8>, corpus: &[Vec<u8>], dict: &[&str]) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = data.len();
        match rng.below(11) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                data.insert(i, rng.next() as u8);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(16));
                data.drain(i..i + n);
            }
            4 if len > 0 => {
                // duplicate a range somewhere else
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                let piece = data[i..i + n].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, piece);
            }
            5 if !corpus.is_empty() => {
                // splice: our head, another input's tail
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            6 => {
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let i = rng.below(len + 1);
                if rng.below(2) == 0 && i + v.len() <= len {
                    data[i..i + v.len()].copy_from_slice(v);
                } else {
                    data.splice(i..i, v.iter().copied());
                }
            }
            7 | 8 if !dict.is_empty() => {
                let t = dict[rng.below(dict.len())].as_bytes();
                let i = rng.below(len + 1);
                data.splice(i..i, t.iter().copied());
            }
            9 if len > 0 => {
                data.truncate(rng.below(len));
            }
            10 if len > 0 => {
                // Repeat a short piece up to thousands of times: finds deep
                // nesting and quadratic scans that one-byte edits cannot.
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(8));
                let times = 1usize << rng.below(13);
                let piece = data[i..i + n].repeat(times.min(MAX_INPUT / n));
                data.splice(i..i, piece);
            }
            _ => {
                let i = rng.below(len + 1);
                data.insert(i, b"{}()[]\"=|,.\\ 0"[rng.below(14)]);
            }
        }
    }
    data.truncate(MAX_INPUT);
}

// ---------------------------------------------------------------------------
// The driver

/// `miniloki fuzz` options.
#[derive(Args, Debug, Clone)]
pub struct FuzzArgs {
    /// Target name, or `all` (see `--list`)
    #[arg(long, default_value = "all")]
    pub target: String,
    /// Seconds to fuzz each target
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Seed of the mutation RNG
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Directory of seed inputs (`<dir>/<target>/*`); crashes go to
    /// `<dir>/<target>/crashes/`
    #[arg(long, default_value = "testdata/fuzz")]
    pub dir: PathBuf,
    /// List the targets and exit
    #[arg(long)]
    pub list: bool,
}

/// What a fuzz run of one target did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub target: String,
    pub execs: u64,
    pub accepted: u64,
    pub corpus: usize,
    /// Paths of saved panicking or slow inputs, with the reason.
    pub findings: Vec<(PathBuf, String)>,
}

/// Reads every regular file directly in `dir` (sorted by name).
pub fn read_inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter_map(|p| std::fs::read(&p).ok().map(|d| (p, d)))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn save_finding(dir: &Path, kind: &str, data: &[u8]) -> PathBuf {
    let crashes = dir.join("crashes");
    let _ = std::fs::create_dir_all(&crashes);
    let p = crashes.join(format!("{kind}-{:016x}", fnv(data)));
    let _ = std::fs::write(&p, data);
    p
}

/// Fuzzes one target for `time`, starting from the seeds in `dir`.
pub fn fuzz_target(name: &str, f: TargetFn, dir: &Path, time: Duration, seed: u64) -> Report {
    let mut corpus: Vec<Vec<u8>> = read_inputs(dir).into_iter().map(|(_, d)| d).collect();
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let dict = dictionary(name);
    let mut rng = Rng::new(seed ^ fnv(name.as_bytes()));
    let mut rep = Report {
        target: name.to_string(),
        ..Default::default()
    };
    // The watchdog saves the current input and exits on a real hang.
    let current: Arc<Mutex<(Instant, Vec<u8>)>> = Arc::new(Mutex::new((Instant::now(), vec![])));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let (current, done, dir) = (current.clone(), done.clone(), dir.to_path_buf());
        let name = name.to_string();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let guard = current.lock().unwrap_or_else(|e| e.into_inner());
                if guard.0.elapsed() > HANG {
                    let p = save_finding(&dir, "hang", &guard.1);
                    eprintln!(
                        "fuzz {name}: input hangs (> {HANG:?}); saved {}",
                        p.display()
                    );
                    std::process::exit(2);
                }
            }
        })
    };
    // A stack overflow aborts the process before anything can be saved:
    // with MINILOKI_FUZZ_LAST=<file>, each input is written there first.
    let last = std::env::var_os("MINILOKI_FUZZ_LAST").map(PathBuf::from);
    let deadline = Instant::now() + time;
    let mut buf = Vec::new();
    let mut i = 0usize;
    while Instant::now() < deadline {
        // Seeds run as they are first, then mutated picks.
        if i < corpus.len() && rep.execs < corpus.len() as u64 {
            buf.clone_from(&corpus[i]);
            i += 1;
        } else {
            buf.clone_from(&corpus[rng.below(corpus.len())]);
            mutate(&mut rng, &mut buf, &corpus, dict);
        }
        {
            let mut g = current.lock().unwrap_or_else(|e| e.into_inner());
            g.0 = Instant::now();
            g.1.clone_from(&buf);
        }
        if let Some(p) = &last {
            let _ = std::fs::write(p, &buf);
        }
        let out = run_one(f, &buf);
        {
            let mut g = current.lock().unwrap_or_else(|e| e.into_inner());
            g.0 = Instant::now() + Duration::from_secs(3600);
        }
        rep.execs += 1;
        match out {
            Outcome::Ok { accepted } => {
                if accepted {
                    rep.accepted += 1;
                    if corpus.len() < 2_000 && rng.below(8) == 0 {
                        corpus.push(buf.clone());
                    }
                }
            }
            Outcome::Panic(msg) => {
                let p = save_finding(dir, "crash", &buf);
                if !rep.findings.iter().any(|(q, _)| *q == p) {
                    rep.findings.push((p, format!("panic: {msg}")));
                }
            }
            Outcome::Slow(d) => {
                let p = save_finding(dir, "slow", &buf);
                if !rep.findings.iter().any(|(q, _)| *q == p) {
                    rep.findings.push((p, format!("slow: {d:?}")));
                }
            }
        }
    }
    done.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    rep.corpus = corpus.len();
    rep
}

/// `miniloki fuzz`: fuzzes the chosen targets and prints a line per target
/// and per finding. Fails when anything panicked or was slow.
pub fn run(args: FuzzArgs) -> anyhow::Result<()> {
    if args.list {
        for (n, _) in TARGETS {
            println!("{n}");
        }
        return Ok(());
    }
    let chosen: Vec<(&str, TargetFn)> = if args.target == "all" {
        TARGETS.to_vec()
    } else {
        let f = target(&args.target)
            .ok_or_else(|| anyhow::anyhow!("unknown fuzz target {:?}; try --list", args.target))?;
        vec![(
            TARGETS
                .iter()
                .find(|(n, _)| *n == args.target)
                .map_or("", |t| t.0),
            f,
        )]
    };
    quiet_panics();
    let mut findings = 0;
    for (name, f) in chosen {
        let rep = fuzz_target(
            name,
            f,
            &args.dir.join(name),
            Duration::from_secs(args.seconds),
            args.seed,
        );
        println!(
            "fuzz {:<11} execs={:<9} accepted={:<8} corpus={:<5} findings={}",
            rep.target,
            rep.execs,
            rep.accepted,
            rep.corpus,
            rep.findings.len()
        );
        for (p, why) in &rep.findings {
            println!("  {}: {why}", p.display());
        }
        findings += rep.findings.len();
    }
    if findings > 0 {
        anyhow::bail!("{findings} panicking or slow inputs saved");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boom(d: &[u8]) -> bool {
        if d.windows(2).any(|w| w == b"!!") {
            panic!("boom");
        }
        d.first() == Some(&b'a')
    }

    fn sleepy(d: &[u8]) -> bool {
        if d == b"slow" {
            std::thread::sleep(SLOW + Duration::from_millis(50));
        }
        true
    }

    #[test]
    fn run_one_reports_panics_and_slow_inputs() {
        quiet_panics();
        assert_eq!(run_one(boom, b"abc"), Outcome::Ok { accepted: true });
        assert_eq!(run_one(boom, b"xbc"), Outcome::Ok { accepted: false });
        match run_one(boom, b"a!!") {
            Outcome::Panic(m) => assert!(m.starts_with("boom at "), "{m}"),
            o => panic!("{o:?}"),
        }
        assert!(matches!(run_one(sleepy, b"slow"), Outcome::Slow(d) if d > SLOW));
    }

    #[test]
    fn driver_finds_and_saves_a_planted_panic() {
        quiet_panics();
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("seed"), b"a!b").unwrap();
        let rep = fuzz_target("boom", boom, tmp.path(), Duration::from_secs(2), 1);
        assert!(rep.execs > 1000, "{rep:?}");
        assert!(!rep.findings.is_empty(), "{rep:?}");
        for (p, why) in &rep.findings {
            assert!(p.starts_with(tmp.path().join("crashes")));
            assert!(why.starts_with("panic: boom"), "{why}");
            let saved = std::fs::read(p).unwrap();
            assert!(saved.windows(2).any(|w| w == b"!!"));
        }
    }

    #[test]
    fn mutations_stay_bounded_and_are_deterministic() {
        let corpus = vec![b"{a=\"b\"}".to_vec(), vec![0u8; MAX_INPUT]];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            let mut outs = Vec::new();
            for i in 0..2000 {
                let mut d = corpus[i % 2].clone();
                mutate(&mut rng, &mut d, &corpus, dictionary("logql"));
                assert!(d.len() <= MAX_INPUT);
                outs.push(d);
            }
            outs
        };
        let a = run(5);
        assert_eq!(a, run(5));
        assert_ne!(a, run(6));
        // Most mutations change the input.
        let changed = a.iter().step_by(2).filter(|d| **d != corpus[0]).count();
        assert!(changed > 900, "{changed}");
    }

    #[test]
    fn block_checksums_are_fixed_in_place() {
        // Header: 1 entry, ts 1 byte, lens 1 byte, lines 2 bytes, raw 2,
        // md 0, md raw 0; then ts, lens, crc, lines, md (none), data crc.
        let mut b = Vec::new();
        for v in [1u32, 1, 1, 2, 2, 0, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&[2, 2, 0, 0, 0, 0, b'h', b'i', 0, 0, 0, 0]);
        fix_block_crcs(&mut b);
        let want = crc32c::crc32c(&b[..30]);
        assert_eq!(b[30..34], want.to_le_bytes());
        assert_eq!(b[36..40], crc32c::crc32c(b"hi").to_le_bytes());
        // Too short or lying lengths leave the bytes alone, without panics.
        let mut short = vec![0xff; 40];
        fix_block_crcs(&mut short);
        assert_eq!(short, vec![0xff; 40]);
    }
}
