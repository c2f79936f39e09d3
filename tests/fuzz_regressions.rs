//! Proves that every decoder of untrusted bytes survives hostile input:
//! every file under `testdata/fuzz/<target>/` (the valid seeds, which must
//! also be accepted, and the saved crashes, which must now be handled
//! without a panic or a slow run) is replayed through its target, and a
//! short fuzz run with a fixed seed finds nothing. Size caps against
//! decompression bombs are checked with hand-built bombs.
//!
//! `cargo test --test fuzz_regressions -- --ignored make_seeds` rewrites
//! the binary seeds (push bodies, OTLP protobuf, a WAL segment, a chunk
//! and an index written by the real store).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use miniloki::fuzz::{self, Outcome};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fuzz")
}

#[test]
fn seeds_are_accepted_and_crashes_stay_fixed() {
    fuzz::quiet_panics();
    let mut seeds = 0;
    for (name, f) in fuzz::TARGETS {
        let dir = root().join(name);
        let inputs = fuzz::read_inputs(&dir);
        assert!(!inputs.is_empty(), "no seeds for target {name}");
        for (path, data) in inputs {
            let out = fuzz::run_one(*f, &data);
            assert_eq!(
                out,
                Outcome::Ok { accepted: true },
                "seed {} of {name} is not accepted",
                path.display()
            );
            seeds += 1;
        }
        for (path, data) in fuzz::read_inputs(&dir.join("crashes")) {
            match fuzz::run_one(*f, &data) {
                Outcome::Ok { .. } => {}
                other => panic!("{} of {name} regressed: {other:?}", path.display()),
            }
        }
    }
    assert!(seeds >= 2 * fuzz::TARGETS.len(), "only {seeds} seeds");
}

#[test]
fn seeds_decode_to_what_they_hold() {
    let read = |t: &str, f: &str| std::fs::read(root().join(t).join(f)).expect("seed");
    // push_json/p1: one stream, two entries, the second with metadata.
    let s = miniloki::ingest::push::decode_json(&read("push_json", "p1")).expect("p1");
    assert_eq!(s.len(), 1);
    // The chunk seed holds the 3 entries make_seeds wrote into it.
    assert_eq!(
        miniloki::storage::fuzz_decode_chunk(&read("chunk", "c1")),
        Ok(3)
    );
    // So does its block (first byte: codec 0, zstd).
    let b = read("block", "b1");
    assert_eq!(miniloki::storage::fuzz_decode_block(b[0], &b[1..]), Ok(3));
    // The index seed holds the 2 streams make_seeds wrote.
    assert_eq!(
        miniloki::storage::fuzz_decode_index(&read("index", "i1")),
        Ok(2)
    );
}

#[test]
fn short_fuzz_run_finds_nothing() {
    fuzz::quiet_panics();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut total = 0;
    for (name, f) in fuzz::TARGETS {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        for (p, data) in fuzz::read_inputs(&root().join(name)) {
            std::fs::write(dir.join(p.file_name().expect("name")), data).expect("copy");
        }
        let rep = fuzz::fuzz_target(name, *f, &dir, Duration::from_millis(1500), 7);
        assert!(rep.execs > 0, "{name} ran nothing");
        assert!(rep.findings.is_empty(), "{name}: {:?}", rep.findings);
        total += rep.execs;
    }
    assert!(total > 100, "only {total} inputs in the short run");
}

#[test]
fn index_target_recomputes_the_file_checksum() {
    // A damaged checksum fails the real decoder, but the fuzz target fixes
    // it up (as `block` does), so mutations reach the sections behind it.
    let mut i1 = std::fs::read(root().join("index/i1")).expect("i1");
    let n = i1.len();
    i1[n - 8] ^= 0xff;
    assert_eq!(
        miniloki::storage::fuzz_decode_index(&i1),
        Err("index checksum mismatch".to_string())
    );
    assert!(fuzz::index(&i1));
    // Inputs too short to hold a checksum are refused, not a panic.
    for len in 0..9 {
        assert!(!fuzz::index(&vec![0u8; len]));
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

#[test]
fn decompression_bombs_are_refused() {
    // 64 MiB of zeros gzips to ~64 KiB; the cap is 16 MiB.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    let e = miniloki::ingest::push::decode_push(
        Some("application/json"),
        Some("gzip"),
        &bomb,
        4 << 20,
        16 << 20,
    )
    .expect_err("gzip bomb accepted");
    assert_eq!(e.status(), 413, "{e:?}");
    // A snappy block declaring 2 GiB (varint 0x80 0x80 0x80 0x80 0x08) is
    // refused from its header, before anything is allocated.
    let snappy_bomb = [0x80, 0x80, 0x80, 0x80, 0x08, 0x00];
    let e = miniloki::ingest::push::decode_protobuf(&snappy_bomb, 16 << 20)
        .expect_err("snappy bomb accepted");
    assert_eq!(e.status(), 413, "{e:?}");
    // OTLP gzip bomb.
    let e = miniloki::ingest::otlp::decode_otlp_http(
        Some("application/json"),
        Some("gzip"),
        &bomb,
        16 << 20,
    )
    .expect_err("otlp gzip bomb accepted");
    assert_eq!(e.status(), 413, "{e:?}");
}

#[test]
fn template_and_regex_limits_hold() {
    // Execution that would loop 10^10 times stops at the step limit, and
    // output that would take 10^12 bytes stops at the output limit: both
    // are execution errors (not accepted), and both are fast.
    for t in [
        &b"{{range 100000}}{{range 100000}}x{{end}}{{end}}\0l"[..],
        &b"{{ repeat 1000000 (repeat 1000000 \"x\") }}\0l"[..],
    ] {
        let start = std::time::Instant::now();
        let out = fuzz::run_one(fuzz::template, t);
        assert_eq!(out, Outcome::Ok { accepted: false });
        assert!(start.elapsed() < Duration::from_secs(1));
    }
    // A regex whose compiled program is huge is an error, not an OOM.
    let q = br#"{a="b"} |~ "(((a{100}){100}){100}){100}""#;
    assert_eq!(
        fuzz::run_one(fuzz::logql, q),
        Outcome::Ok { accepted: true }
    );
    let parsed = miniloki::logql::syntax::parse_expr(std::str::from_utf8(q).expect("utf8"));
    if let Ok(miniloki::logql::syntax::ast::Expr::Log(l)) = parsed {
        assert!(miniloki::logql::log::Pipeline::new(&l.pipeline).is_err());
    }
}

/// Rewrites the binary seeds from the real encoders and store.
#[test]
#[ignore]
fn make_seeds() {
    use miniloki::labels::Labels;
    use miniloki::proto::logproto::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter};
    use miniloki::storage::{PushEntry, PushStream, StorageConfig, Store, SyncPolicy};
    use prost::Message;

    let put = |t: &str, f: &str, d: &[u8]| {
        let dir = root().join(t);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(f), d).expect("write");
    };
    let req = PushRequest {
        streams: vec![StreamAdapter {
            labels: r#"{app="web", level="info"}"#.into(),
            entries: vec![
                EntryAdapter {
                    timestamp: Some(prost_types::Timestamp {
                        seconds: 1_700_000_000,
                        nanos: 1,
                    }),
                    line: "GET /index.html 200".into(),
                    structured_metadata: vec![LabelPairAdapter {
                        name: "trace_id".into(),
                        value: "abc".into(),
                    }],
                    ..Default::default()
                },
                EntryAdapter {
                    timestamp: Some(prost_types::Timestamp {
                        seconds: 1_700_000_001,
                        nanos: 0,
                    }),
                    line: "POST /api 500".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }],
    };
    let raw = req.encode_to_vec();
    let snappy = snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy");
    put("push_proto", "p1", &snappy);
    let mut g = vec![1u8];
    g.extend(gzip(&snappy));
    put("push_gzip", "g1", &g);
    let mut g = vec![0u8];
    g.extend(gzip(
        &std::fs::read(root().join("push_json/p1")).expect("p1"),
    ));
    put("push_gzip", "g2", &g);
    for (i, f) in ["o1", "o2"].iter().enumerate() {
        let j = std::fs::read(root().join("otlp_json").join(f)).expect("otlp json");
        let req = miniloki::ingest::otlp::decode_otlp_json(&j).expect("otlp json seed");
        put("otlp_proto", &format!("o{}", i + 1), &req.encode_to_vec());
    }

    // A store: WAL first (dropped without flushing), then flushed blocks.
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cfg = StorageConfig::new(tmp.path());
    cfg.sync = SyncPolicy::None;
    let entry = |ts: i64, line: &str, md: &[(&str, &str)]| PushEntry {
        ts,
        line: line.into(),
        metadata: md
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let streams = vec![
        PushStream {
            labels: Labels::from_pairs([("app", "web"), ("env", "prod")]),
            entries: vec![
                entry(1_700_000_000_000_000_000, "hello", &[("trace_id", "t1")]),
                entry(1_700_000_000_000_000_001, "world", &[]),
                entry(1_700_000_000_000_000_002, "level=error msg=boom", &[]),
            ],
        },
        PushStream {
            labels: Labels::from_pairs([("app", "db")]),
            entries: vec![entry(1_700_000_000_000_000_005, "select 1", &[])],
        },
    ];
    {
        let store = Store::open(cfg.clone()).expect("open");
        store.append("fake", streams).expect("append");
        drop(store);
    }
    let wal = std::fs::read_dir(tmp.path().join("wal"))
        .expect("wal dir")
        .flatten()
        .map(|e| std::fs::read(e.path()).expect("read"))
        .find(|d| !d.is_empty())
        .expect("a non-empty WAL segment");
    put("wal", "w1", &wal);
    // The first record's payload (after the 8-byte segment header and the
    // 9-byte record header: length, CRC, type).
    let len = u32::from_le_bytes([wal[8], wal[9], wal[10], wal[11]]) as usize;
    put("wal_record", "r1", &wal[17..17 + len]);
    {
        let store = Store::open(cfg).expect("reopen");
        store.flush().expect("flush");
        store.shutdown().expect("shutdown");
    }
    let mut files = Vec::new();
    let mut stack = vec![tmp.path().join("tenants")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    let index = files
        .iter()
        .find(|p| p.file_name().is_some_and(|n| n == "index"))
        .expect("index file");
    put("index", "i1", &std::fs::read(index).expect("index"));
    // The chunks file holds both streams' chunks back to back; the first
    // chunk of the `app="web"` stream (3 entries) is cut out by its magic.
    let chunks = std::fs::read(index.with_file_name("chunks")).expect("chunks");
    let magic = &chunks[..4];
    let starts: Vec<usize> = (0..chunks.len().saturating_sub(3))
        .filter(|&i| &chunks[i..i + 4] == magic)
        .collect();
    let mut found = false;
    for (a, &s) in starts.iter().enumerate() {
        for &e in starts
            .iter()
            .skip(a + 1)
            .chain(std::iter::once(&chunks.len()))
        {
            let end = if e == chunks.len() { e } else { e + 4 };
            if end > chunks.len() {
                continue;
            }
            if miniloki::storage::fuzz_decode_chunk(&chunks[s..end]) == Ok(3) {
                put("chunk", "c1", &chunks[s..end]);
                found = true;
            }
        }
        if found {
            break;
        }
    }
    assert!(found, "no 3-entry chunk in {} bytes", chunks.len());
    // Its block: the sub-slice that decodes as 3 entries (zstd, codec 0).
    let c1 = std::fs::read(root().join("chunk/c1")).expect("c1");
    let block = (0..c1.len())
        .flat_map(|s| (s + 28..=c1.len()).map(move |e| (s, e)))
        .find(|&(s, e)| miniloki::storage::fuzz_decode_block(0, &c1[s..e]) == Ok(3))
        .expect("a 3-entry block in the chunk");
    let mut b = vec![0u8];
    b.extend_from_slice(&c1[block.0..block.1]);
    put("block", "b1", &b);
}
