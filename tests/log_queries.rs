//! LogQL log queries end to end through the real server: every pipeline
//! stage (line filters, parsers, label filters, formatting, drop/keep,
//! decolorize, structured metadata), ordering in both directions, `limit`
//! across streams, `interval`, start-inclusive/end-exclusive bounds, plain
//! vs categorized encoding, identical answers from the head, flushed chunks
//! and after a restart, and Loki's error texts. Every expected result is
//! computed here from the pushed data (loghub samples, demo JSON records and
//! a few hand-written lines), never copied from the server.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use common::Server;
use miniloki::demo::{self, DemoRecord};

type L = BTreeMap<String, String>;
/// One result stream: labels and (ts, line) values in response order.
type Stream = (L, Vec<(i64, String)>);
/// An expected entry: its result labels, ts and line.
type Want = (L, i64, String);

/// One pushed entry.
#[derive(Clone, Debug)]
struct Row {
    labels: L,
    ts: i64,
    line: String,
    md: Vec<(String, String)>,
}

struct Fx {
    base: i64,
    rows: Vec<Row>,
}

const LOGHUB: [(&str, &str); 3] = [
    ("apache", "Apache_2k.log"),
    ("hdfs", "HDFS_2k.log"),
    ("openssh", "OpenSSH_2k.log"),
];
const PER_SYSTEM: usize = 300;
const MS: i64 = 1_000_000;

/// Hand-written lines of `{job="mixed"}`; the tests below work out what
/// each stage makes of them.
const MIXED: [&str; 9] = [
    r#"level=info msg="hello world" dur=1.5s size=2KB"#,
    r#"level=error msg=boom code=500 flag"#,
    r#"level=warn msg="a=b" empty= user=bob size=512B"#,
    r#"{"a":{"b":{"c":"deep"}},"arr":[1,{"x":"y"}],"n":3,"s":"str","obj":{"k":"v"},"dotted.key":"d","1st":"one"}"#,
    "\u{1b}[31mred\u{1b}[0m alert \u{1b}[1;32mgreen\u{1b}[0m",
    r#"{"_entry":"unpacked line","pod":"p1","job":"inner"}"#,
    "plain text, not json",
    r#"{"level":"debug","nested":{"list":[1,2],"t":true}}"#,
    r#"{"msg":"quote \" backslash \\ tab\t uni \u00e9","num":-1.5e3,"b":false,"nul":null,"geo":{"1st":"eu"}}"#,
];

fn lbl(pairs: &[(&str, &str)]) -> L {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn loghub_lines(file: &str) -> Vec<String> {
    let path = format!("{}/testdata/loghub/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("read loghub sample");
    text.lines()
        .take(PER_SYSTEM)
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect()
}

/// All rows of the fixture; timestamps are distinct across every stream.
fn fixture_rows(base: i64) -> (Vec<Row>, Vec<DemoRecord>) {
    let mut rows = vec![];
    for (k, (system, file)) in LOGHUB.iter().enumerate() {
        for (i, line) in loghub_lines(file).into_iter().enumerate() {
            rows.push(Row {
                labels: lbl(&[("job", "loghub"), ("system", system)]),
                ts: base + i as i64 * MS + k as i64 * 1000,
                line,
                md: vec![],
            });
        }
    }
    let shop = demo::generate(11, 400, base + 500, MS);
    for r in &shop {
        rows.push(Row {
            labels: lbl(&[("job", "shop"), ("service", r.service)]),
            ts: r.ts,
            line: r.line.clone(),
            md: vec![],
        });
    }
    for (i, line) in MIXED.iter().enumerate() {
        rows.push(Row {
            labels: lbl(&[("job", "mixed")]),
            ts: base + 700 + i as i64 * MS,
            line: line.to_string(),
            md: vec![],
        });
    }
    for i in 0..30i64 {
        rows.push(Row {
            labels: lbl(&[("job", "meta")]),
            ts: base + 900 + i * MS,
            line: format!("request id={i} status={}", 200 + (i % 4) * 100),
            md: vec![
                ("user".to_string(), format!("u{}", i % 3)),
                ("pod".to_string(), format!("p{}", i % 2)),
            ],
        });
    }
    (rows, shop)
}

fn label_string(l: &L) -> String {
    let parts: Vec<String> = l
        .iter()
        .map(|(k, v)| {
            let mut q = String::new();
            for c in v.chars() {
                match c {
                    '"' => q.push_str("\\\""),
                    '\\' => q.push_str("\\\\"),
                    '\n' => q.push_str("\\n"),
                    c => q.push(c),
                }
            }
            format!("{k}=\"{q}\"")
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn push_rows(s: &Server, rows: &[Row]) {
    let mut by_stream: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        by_stream
            .entry(label_string(&r.labels))
            .or_default()
            .push(r);
    }
    let streams: Vec<common::ProtoStream> = by_stream
        .iter()
        .map(|(ls, rs)| {
            let entries = rs
                .iter()
                .map(|r| {
                    (
                        r.ts,
                        r.line.as_str(),
                        r.md.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
                    )
                })
                .collect();
            (ls.as_str(), entries)
        })
        .collect();
    let r = s.push_proto(&streams);
    assert_eq!(r.status, 204, "push: {}", r.body);
}

fn start_server() -> Server {
    Server::start_with(&["--discover-log-levels=false", "--discover-service-name="])
}

fn setup() -> (Server, Fx) {
    let s = start_server();
    // Whole seconds, an hour ago: inside every ingestion window.
    let base = (common::now_ns() / 1_000_000_000 - 3600) * 1_000_000_000;
    let (rows, _) = fixture_rows(base);
    push_rows(&s, &rows);
    (s, Fx { base, rows })
}

/// Loki's answer shape: the first `limit` entries overall in `direction`
/// order, grouped by label set, streams sorted by their label string.
fn expect(mut entries: Vec<Want>, limit: usize, forward: bool) -> Vec<Stream> {
    entries.sort_by_key(|e| e.1);
    if !forward {
        entries.reverse();
    }
    entries.truncate(limit);
    let mut groups: BTreeMap<String, Stream> = BTreeMap::new();
    for (l, ts, line) in entries {
        groups
            .entry(label_string(&l))
            .or_insert_with(|| (l, vec![]))
            .1
            .push((ts, line));
    }
    groups.into_values().collect()
}

fn parse_streams(v: &serde_json::Value) -> Vec<Stream> {
    assert_eq!(v["data"]["resultType"], "streams", "{v}");
    v["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|s| {
            let labels = s["stream"]
                .as_object()
                .expect("stream labels")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("label value").to_string()))
                .collect();
            let values = s["values"]
                .as_array()
                .expect("values")
                .iter()
                .map(|e| {
                    assert_eq!(e.as_array().map(Vec::len), Some(2), "plain encoding: {e}");
                    (
                        e[0].as_str().unwrap().parse().unwrap(),
                        e[1].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            (labels, values)
        })
        .collect()
}

impl Fx {
    fn range(&self) -> (String, String) {
        (
            (self.base - 1).to_string(),
            (self.base + 10_000 * MS).to_string(),
        )
    }

    fn query(&self, s: &Server, q: &str, limit: usize, forward: bool) -> Vec<Stream> {
        let (start, end) = self.range();
        let limit = limit.to_string();
        let dir = if forward { "forward" } else { "backward" };
        parse_streams(&s.query_range(
            q,
            &[
                ("start", &start),
                ("end", &end),
                ("limit", &limit),
                ("direction", dir),
            ],
        ))
    }

    fn rows_of(&self, key: &str, value: &str) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| r.labels.get(key).map(String::as_str) == Some(value))
            .collect()
    }

    /// Checks `q` in both directions, with a limit that takes everything
    /// and with `small` (to see which entries the cut keeps).
    fn check(&self, s: &Server, q: &str, want: Vec<Want>, small: usize) {
        assert!(!want.is_empty(), "{q}: empty expectation proves little");
        for forward in [true, false] {
            for limit in [5000, small] {
                let got = self.query(s, q, limit, forward);
                let exp = expect(want.clone(), limit, forward);
                if got != exp {
                    let n = got.len().min(exp.len());
                    let first = (0..n).find(|&i| got[i] != exp[i]);
                    panic!(
                        "{q} (forward={forward}, limit={limit}): {} streams, want {}; first diff at {first:?}:\n got  {:?}\n want {:?}",
                        got.len(),
                        exp.len(),
                        first.map(|i| &got[i]),
                        first.map(|i| &exp[i]),
                    );
                }
            }
        }
    }
}

/// Rows passing `keep`, with their own labels.
fn plain(rows: &[&Row], keep: impl Fn(&str) -> bool) -> Vec<Want> {
    rows.iter()
        .filter(|r| keep(&r.line))
        .map(|r| (r.labels.clone(), r.ts, r.line.clone()))
        .collect()
}

/// Test-side pattern matcher (`<name>` captures, `<_>` skips): literals are
/// found left to right; a capture ending the pattern takes the rest; a
/// literal that is not found makes the capture before it take the rest and
/// ends matching. Returns the named captures and whether every literal was
/// found.
fn pattern_captures(pattern: &str, line: &str) -> (Vec<(String, String)>, bool) {
    // Split into alternating literal / capture parts.
    let mut parts: Vec<(bool, String)> = vec![]; // (is_capture, text)
    let mut rest = pattern;
    while let Some(i) = rest.find('<') {
        let j = rest[i..].find('>').unwrap() + i;
        if i > 0 {
            parts.push((false, rest[..i].to_string()));
        }
        parts.push((true, rest[i + 1..j].to_string()));
        rest = &rest[j + 1..];
    }
    if !rest.is_empty() {
        parts.push((false, rest.to_string()));
    }
    let mut input = line;
    let mut out = vec![];
    let mut k = 0;
    if let Some((false, lit)) = parts.first() {
        if !input.starts_with(lit.as_str()) {
            return (out, false);
        }
        input = &input[lit.len()..];
        k = 1;
    }
    while k < parts.len() {
        let name = &parts[k].1;
        if k + 1 == parts.len() {
            if name != "_" {
                out.push((name.clone(), input.to_string()));
            }
            return (out, true);
        }
        let lit = &parts[k + 1].1;
        match input.find(lit.as_str()) {
            None => {
                if name != "_" {
                    out.push((name.clone(), input.to_string()));
                }
                return (out, false);
            }
            Some(i) => {
                if name != "_" {
                    out.push((name.clone(), input[..i].to_string()));
                }
                input = &input[i + lit.len()..];
            }
        }
        k += 2;
    }
    (out, true)
}

/// Every IPv4 address written in `line`.
fn ipv4s(line: &str) -> Vec<Ipv4Addr> {
    let re = regex::Regex::new(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}").unwrap();
    re.find_iter(line)
        .filter_map(|m| m.as_str().parse().ok())
        .collect()
}

fn in_cidr(ip: Ipv4Addr, net: Ipv4Addr, bits: u32) -> bool {
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    u32::from(ip) & mask == u32::from(net) & mask
}

/// Flattens a JSON object the way `| json` does: nested keys joined by `_`,
/// arrays and nulls skipped, key characters outside `[A-Za-z0-9_]` replaced by `_`,
/// a leading digit prefixed with `_`.
fn json_flatten(v: &serde_json::Value, prefix: &str, out: &mut Vec<(String, String)>) {
    let Some(obj) = v.as_object() else { return };
    for (k, v) in obj {
        let mut key: String = k
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        if prefix.is_empty() && key.starts_with(|c: char| c.is_ascii_digit()) {
            key.insert(0, '_');
        }
        let key = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}_{key}")
        };
        match v {
            serde_json::Value::Object(_) => json_flatten(v, &key, out),
            serde_json::Value::Array(_) | serde_json::Value::Null => {}
            serde_json::Value::String(s) => out.push((key, s.clone())),
            other => out.push((key, other.to_string())),
        }
    }
}

/// Adds parsed labels to `base`, renaming a key that collides with an
/// existing label to `<key>_extracted`.
fn with_parsed(base: &L, parsed: Vec<(String, String)>) -> L {
    let mut l = base.clone();
    for (k, v) in parsed {
        let k = if base.contains_key(&k) {
            format!("{k}_extracted")
        } else {
            k
        };
        l.entry(k).or_insert(v);
    }
    l
}

fn shop_rows(fx: &Fx) -> Vec<(Row, serde_json::Value)> {
    fx.rows_of("job", "shop")
        .into_iter()
        .map(|r| (r.clone(), serde_json::from_str(&r.line).unwrap()))
        .collect()
}

fn shop_parsed(r: &Row, v: &serde_json::Value) -> L {
    let mut p = vec![];
    json_flatten(v, "", &mut p);
    with_parsed(&r.labels, p)
}

#[test]
fn line_filters_match_a_scan_of_the_pushed_lines() {
    let (s, fx) = setup();
    let hub = fx.rows_of("job", "loghub");
    let contains = |w: &'static str| move |l: &str| l.contains(w);
    fx.check(
        &s,
        r#"{job="loghub"} |= "error""#,
        plain(&hub, contains("error")),
        7,
    );
    fx.check(
        &s,
        r#"{job="loghub"} != "error""#,
        plain(&hub, |l| !l.contains("error")),
        30,
    );
    fx.check(
        &s,
        r#"{job="loghub"} |~ "(?i)ERROR""#,
        plain(&hub, |l| l.to_ascii_lowercase().contains("error")),
        10,
    );
    // The regex is not anchored: "sshd\[2420\d\]" matches mid-line.
    let re = regex::Regex::new(r"sshd\[2420\d\]").unwrap();
    fx.check(
        &s,
        r#"{job="loghub"} !~ `sshd\[2420\d\]`"#,
        plain(&hub, |l| !re.is_match(l)),
        10,
    );
    fx.check(
        &s,
        r#"{job="loghub"} |~ `sshd\[2420\d\]`"#,
        plain(&hub, |l| re.is_match(l)),
        3,
    );
    // Or-chains: `|=` keeps lines with any operand, `!=` lines with none.
    fx.check(
        &s,
        r#"{job="loghub"} |= "Failed" or "Invalid""#,
        plain(&hub, |l| l.contains("Failed") || l.contains("Invalid")),
        9,
    );
    fx.check(
        &s,
        r#"{job="loghub"} != "Failed" or "Invalid""#,
        plain(&hub, |l| !l.contains("Failed") && !l.contains("Invalid")),
        9,
    );
    // Chained filters are ANDed.
    let user_re = regex::Regex::new("user (admin|test)").unwrap();
    fx.check(
        &s,
        r#"{job="loghub"} |= "sshd" != "preauth" |~ "user (admin|test)""#,
        plain(&hub, |l| {
            l.contains("sshd") && !l.contains("preauth") && user_re.is_match(l)
        }),
        4,
    );
    // Pattern line filters.
    let pat = "<_> Failed password for <_> from <_> port <_>";
    fx.check(
        &s,
        &format!(r#"{{job="loghub"}} |> "{pat}""#),
        plain(&hub, |l| pattern_captures(pat, l).1),
        6,
    );
    fx.check(
        &s,
        &format!(r#"{{job="loghub"}} !> "{pat}""#),
        plain(&hub, |l| !pattern_captures(pat, l).1),
        6,
    );
    // ip() line filters, alone and in an or-chain.
    let net: Ipv4Addr = "173.234.31.0".parse().unwrap();
    fx.check(
        &s,
        r#"{job="loghub"} |= ip("173.234.31.0/24")"#,
        plain(&hub, |l| {
            ipv4s(l).into_iter().any(|ip| in_cidr(ip, net, 24))
        }),
        4,
    );
    let one: Ipv4Addr = "5.188.10.180".parse().unwrap();
    fx.check(
        &s,
        r#"{job="loghub"} |= "Invalid user" or ip("5.188.10.180")"#,
        plain(&hub, |l| {
            l.contains("Invalid user") || ipv4s(l).contains(&one)
        }),
        8,
    );
    fx.check(
        &s,
        r#"{job="loghub"} != ip("10.250.0.0-10.251.255.255")"#,
        plain(&hub, |l| {
            !ipv4s(l)
                .into_iter()
                .any(|ip| (u32::from(ip) >> 16) == 0x0AFA || (u32::from(ip) >> 16) == 0x0AFB)
        }),
        8,
    );
}

#[test]
fn json_parser_and_label_filters() {
    let (s, fx) = setup();
    let shop = shop_rows(&fx);
    let sel = |keep: &dyn Fn(&serde_json::Value) -> bool| -> Vec<Want> {
        shop.iter()
            .filter(|(_, v)| keep(v))
            .map(|(r, v)| (shop_parsed(r, v), r.ts, r.line.clone()))
            .collect()
    };
    let level = |v: &serde_json::Value| v["level"].as_str().unwrap().to_string();
    let dur = |v: &serde_json::Value| v["duration_ms"].as_u64().unwrap();
    let event = |v: &serde_json::Value| v["event"].as_str().unwrap().to_string();

    // All fields; `service` collides with the stream label and becomes
    // `service_extracted`.
    fx.check(&s, r#"{job="shop"} | json"#, sel(&|_| true), 25);
    fx.check(
        &s,
        r#"{job="shop"} | json | level="error""#,
        sel(&|v| level(v) == "error"),
        5,
    );
    fx.check(
        &s,
        r#"{job="shop"} | json | duration_ms > 500"#,
        sel(&|v| dur(v) > 500),
        5,
    );
    // `and` binds tighter than `or`.
    fx.check(
        &s,
        r#"{job="shop"} | json | duration_ms >= 100 and level!="info" or event="email_bounced""#,
        sel(&|v| (dur(v) >= 100 && level(v) != "info") || event(v) == "email_bounced"),
        5,
    );
    fx.check(
        &s,
        r#"{job="shop"} | json | (level="warn" or level="error"), duration_ms < 20"#,
        sel(&|v| (level(v) == "warn" || level(v) == "error") && dur(v) < 20),
        5,
    );
    // Regex label matchers are anchored.
    fx.check(
        &s,
        r#"{job="shop"} | json | event=~"payment_.*" | event!~".*_declined""#,
        sel(&|v| event(v).starts_with("payment_") && !event(v).ends_with("_declined")),
        5,
    );
    let r = s.query_range(
        r#"{job="shop"} | json | event=~"payment""#,
        &[("start", &fx.range().0), ("end", &fx.range().1)],
    );
    assert!(parse_streams(&r).is_empty(), "anchored regex: {r}");
    // Duration filter on a label built by a template.
    fx.check(
        &s,
        r#"{job="shop"} | json | label_format d="{{.duration_ms}}ms" | d > 1s"#,
        shop.iter()
            .filter(|(_, v)| dur(v) > 1000)
            .map(|(r, v)| {
                let mut l = shop_parsed(r, v);
                l.insert("d".into(), format!("{}ms", dur(v)));
                (l, r.ts, r.line.clone())
            })
            .collect(),
        4,
    );
    // A numeric filter on a non-number keeps the line with LabelFilterErr.
    fx.check(
        &s,
        r#"{service="order"} | json | event > 5 | __error__="LabelFilterErr" | drop __error_details__"#,
        shop.iter()
            .filter(|(r, _)| r.labels["service"] == "order")
            .map(|(r, v)| {
                let mut l = shop_parsed(r, v);
                l.insert("__error__".into(), "LabelFilterErr".into());
                (l, r.ts, r.line.clone())
            })
            .collect(),
        5,
    );

    // Nested flattening, arrays skipped, keys sanitised.
    let mixed = fx.rows_of("job", "mixed");
    let nested = mixed[3];
    fx.check(
        &s,
        r#"{job="mixed"} |= "deep" | json"#,
        vec![(
            lbl(&[
                ("job", "mixed"),
                ("a_b_c", "deep"),
                ("n", "3"),
                ("s", "str"),
                ("obj_k", "v"),
                ("dotted_key", "d"),
                ("_1st", "one"),
            ]),
            nested.ts,
            nested.line.clone(),
        )],
        1,
    );
    // Parameters with paths: an object is kept as JSON text, a missing
    // path gives an empty value.
    fx.check(
        &s,
        r#"{job="mixed"} |= "deep" | json deep="a.b.c", second="arr[1].x", first="arr[0]", o="obj", k=`obj["k"]`, missing="nope" | missing="" | drop missing"#,
        vec![(
            lbl(&[
                ("job", "mixed"),
                ("deep", "deep"),
                ("second", "y"),
                ("first", "1"),
                ("o", r#"{"k":"v"}"#),
                ("k", "v"),
            ]),
            nested.ts,
            nested.line.clone(),
        )],
        1,
    );
    // Non-JSON lines get JSONParserErr; `__error__=""` keeps the others.
    let is_json = |l: &str| l.starts_with('{');
    let errs: Vec<Want> = mixed
        .iter()
        .filter(|r| !is_json(&r.line))
        .map(|r| {
            (
                lbl(&[("job", "mixed"), ("__error__", "JSONParserErr")]),
                r.ts,
                r.line.clone(),
            )
        })
        .collect();
    assert_eq!(errs.len(), 5);
    fx.check(
        &s,
        r#"{job="mixed"} | json | __error__="JSONParserErr" | drop __error_details__"#,
        errs,
        2,
    );
    let got = fx.query(&s, r#"{job="mixed"} | json | __error__!="""#, 100, true);
    assert_eq!(got.iter().map(|s| s.1.len()).sum::<usize>(), 5);
    for (l, _) in &got {
        assert!(!l["__error_details__"].is_empty(), "{l:?}");
    }
    // Numbers keep their JSON text (`-1.5e3`), so the last line is worked
    // out by hand: escapes decoded, null skipped (as arrays are), a nested key
    // starting with a digit is not prefixed.
    let edge = lbl(&[
        ("job", "mixed"),
        ("msg", "quote \" backslash \\ tab\t uni \u{e9}"),
        ("num", "-1.5e3"),
        ("b", "false"),
        ("geo_1st", "eu"),
    ]);
    fx.check(
        &s,
        r#"{job="mixed"} |= "backslash" | json"#,
        vec![(edge.clone(), mixed[8].ts, mixed[8].line.clone())],
        1,
    );
    let mut ok: Vec<Want> = mixed[..8]
        .iter()
        .filter(|r| is_json(&r.line))
        .map(|r| {
            let mut p = vec![];
            json_flatten(&serde_json::from_str(&r.line).unwrap(), "", &mut p);
            (with_parsed(&r.labels, p), r.ts, r.line.clone())
        })
        .collect();
    ok.push((edge, mixed[8].ts, mixed[8].line.clone()));
    assert_eq!(ok.len(), 4);
    // The `_entry` line: its `job` collides with the stream label.
    assert!(ok
        .iter()
        .any(|(l, _, _)| l.get("job_extracted").map(String::as_str) == Some("inner")));
    fx.check(&s, r#"{job="mixed"} | json | __error__="""#, ok, 2);
}

#[test]
fn logfmt_regexp_pattern_unpack() {
    let (s, fx) = setup();
    let mixed = fx.rows_of("job", "mixed");
    let ts = |i: usize| mixed[i].ts;
    let line = |i: usize| mixed[i].line.clone();
    // logfmt, worked out by hand: standalone keys and empty values are
    // dropped unless --keep-empty.
    let l0 = lbl(&[
        ("job", "mixed"),
        ("level", "info"),
        ("msg", "hello world"),
        ("dur", "1.5s"),
        ("size", "2KB"),
    ]);
    let l1 = lbl(&[
        ("job", "mixed"),
        ("level", "error"),
        ("msg", "boom"),
        ("code", "500"),
    ]);
    let l2 = lbl(&[
        ("job", "mixed"),
        ("level", "warn"),
        ("msg", "a=b"),
        ("user", "bob"),
        ("size", "512B"),
    ]);
    fx.check(
        &s,
        r#"{job="mixed"} |= "level=" | logfmt"#,
        vec![
            (l0.clone(), ts(0), line(0)),
            (l1.clone(), ts(1), line(1)),
            (l2.clone(), ts(2), line(2)),
        ],
        2,
    );
    let mut k1 = l1.clone();
    k1.insert("flag".into(), String::new());
    let mut k2 = l2.clone();
    k2.insert("empty".into(), String::new());
    fx.check(
        &s,
        r#"{job="mixed"} |= "level=" | logfmt --keep-empty"#,
        vec![
            (l0.clone(), ts(0), line(0)),
            (k1, ts(1), line(1)),
            (k2, ts(2), line(2)),
        ],
        2,
    );
    // Bytes and duration label filters on logfmt values.
    fx.check(
        &s,
        r#"{job="mixed"} |= "level=" | logfmt | size > 1KB"#,
        vec![(l0.clone(), ts(0), line(0))],
        1,
    );
    fx.check(
        &s,
        r#"{job="mixed"} |= "level=" | logfmt | dur >= 1500ms"#,
        vec![(l0.clone(), ts(0), line(0))],
        1,
    );
    // Selected keys only, renamed.
    fx.check(
        &s,
        r#"{job="mixed"} |= "level=" | logfmt lvl="level", msg"#,
        vec![
            (
                lbl(&[("job", "mixed"), ("lvl", "info"), ("msg", "hello world")]),
                ts(0),
                line(0),
            ),
            (
                lbl(&[("job", "mixed"), ("lvl", "error"), ("msg", "boom")]),
                ts(1),
                line(1),
            ),
            (
                lbl(&[("job", "mixed"), ("lvl", "warn"), ("msg", "a=b")]),
                ts(2),
                line(2),
            ),
        ],
        2,
    );
    // --strict: a quote inside a key is malformed, so the JSON line fails;
    // a well-formed line parses as without the flag.
    let nested = mixed[3];
    let e = lbl(&[("job", "mixed"), ("__error__", "LogfmtParserErr")]);
    fx.check(
        &s,
        r#"{job="mixed"} |= "deep" | logfmt --strict | __error__="LogfmtParserErr" | drop __error_details__"#,
        vec![(e, nested.ts, nested.line.clone())],
        1,
    );
    fx.check(
        &s,
        r#"{job="mixed"} |= "hello" | logfmt --strict"#,
        vec![(l0.clone(), ts(0), line(0))],
        1,
    );

    // regexp on Apache: two severities, two streams.
    let apache = fx.rows_of("system", "apache");
    let re =
        regex::Regex::new(r"^\[(?P<date>[^\]]+)\] \[(?P<severity>\w+)\] (?P<msg>.*)$").unwrap();
    let want: Vec<Want> = apache
        .iter()
        .filter_map(|r| {
            let c = re.captures(&r.line)?;
            let mut l = r.labels.clone();
            l.insert("severity".into(), c["severity"].to_string());
            Some((l, r.ts, r.line.clone()))
        })
        .collect();
    assert_eq!(want.len(), PER_SYSTEM);
    let sevs: std::collections::BTreeSet<&str> =
        want.iter().map(|w| w.0["severity"].as_str()).collect();
    assert_eq!(sevs.len(), 2, "{sevs:?}");
    fx.check(
        &s,
        r#"{system="apache"} | regexp `^\[(?P<date>[^\]]+)\] \[(?P<severity>\w+)\] (?P<msg>.*)$` | drop date, msg"#,
        want,
        20,
    );

    // pattern on OpenSSH, then an ip() label filter on the captured address.
    let pat = "<_> sshd[<pid>]: Failed password for <user> from <ip> port <port> ssh2";
    let ssh = fx.rows_of("system", "openssh");
    let net: Ipv4Addr = "5.188.10.0".parse().unwrap();
    let mut all = vec![];
    let mut in_net = vec![];
    for r in ssh.iter().filter(|r| r.line.contains("Failed password")) {
        let (caps, _) = pattern_captures(pat, &r.line);
        let mut l = r.labels.clone();
        for (k, v) in &caps {
            l.insert(k.clone(), v.clone());
        }
        let ip: Option<Ipv4Addr> = l.get("ip").and_then(|v| v.parse().ok());
        if ip.is_some_and(|ip| in_cidr(ip, net, 24)) {
            in_net.push((l.clone(), r.ts, r.line.clone()));
        }
        all.push((l, r.ts, r.line.clone()));
    }
    assert!(all.len() > 20 && !in_net.is_empty() && in_net.len() < all.len());
    fx.check(
        &s,
        &format!(r#"{{system="openssh"}} |= "Failed password" | pattern "{pat}""#),
        all,
        10,
    );
    fx.check(
        &s,
        &format!(r#"{{system="openssh"}} |= "Failed password" | pattern "{pat}" | ip = ip("5.188.10.0/24")"#),
        in_net,
        10,
    );

    // unpack: `_entry` becomes the line, the rest labels; `job` collides.
    fx.check(
        &s,
        r#"{job="mixed"} |= "_entry" | unpack"#,
        vec![(
            lbl(&[("job", "mixed"), ("pod", "p1"), ("job_extracted", "inner")]),
            ts(5),
            "unpacked line".to_string(),
        )],
        1,
    );
}

#[test]
fn formatting_and_label_shaping_stages() {
    let (s, fx) = setup();
    let shop = shop_rows(&fx);
    let pay: Vec<&(Row, serde_json::Value)> = shop
        .iter()
        .filter(|(r, _)| r.labels["service"] == "payment")
        .collect();
    let st = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("").to_string();

    // line_format with a pipe into ToUpper; keep narrows the labels.
    fx.check(
        &s,
        r#"{service="payment"} | json | line_format "{{.level | ToUpper}} {{.event}} took {{.duration_ms}}ms" | keep service"#,
        pay.iter()
            .map(|(r, v)| {
                (
                    lbl(&[("service", "payment")]),
                    r.ts,
                    format!(
                        "{} {} took {}ms",
                        st(v, "level").to_uppercase(),
                        st(v, "event"),
                        v["duration_ms"]
                    ),
                )
            })
            .collect(),
        7,
    );
    // __line__ inside line_format.
    fx.check(
        &s,
        r#"{service="payment"} | json | line_format "[{{.level}}] {{__line__}}" | keep job"#,
        pay.iter()
            .map(|(r, v)| {
                (
                    lbl(&[("job", "shop")]),
                    r.ts,
                    format!("[{}] {}", st(v, "level"), r.line),
                )
            })
            .collect(),
        7,
    );
    // label_format rename drops the source; template functions.
    fx.check(
        &s,
        r#"{service="payment"} | json | label_format lvl=level | label_format who=`{{printf "%s/%s" .service_extracted .lvl}}`, err=`{{ .error | default "none" }}`, short=`{{ regexReplaceAll "_.*" .event "" }}` | keep lvl, level, who, err, short"#,
        pay.iter()
            .map(|(r, v)| {
                let err = if v["error"].is_string() { st(v, "error") } else { "none".into() };
                let ev = st(v, "event");
                let short = ev.split('_').next().unwrap().to_string();
                let l = lbl(&[
                    ("lvl", &st(v, "level")),
                    ("who", &format!("payment/{}", st(v, "level"))),
                    ("err", &err),
                    ("short", &short),
                ]);
                (l, r.ts, r.line.clone())
            })
            .collect(),
        7,
    );
    // drop: plain names and conditional forms.
    fx.check(
        &s,
        r#"{job="shop"} | json | drop trace_id, span_id, timestamp, order_id, duration_ms, error, level="info", event=~"stock_.*""#,
        shop.iter()
            .map(|(r, v)| {
                let mut l = shop_parsed(r, v);
                for k in ["trace_id", "span_id", "timestamp", "order_id", "duration_ms", "error"] {
                    l.remove(k);
                }
                if l["level"] == "info" {
                    l.remove("level");
                }
                if l["event"].starts_with("stock_") {
                    l.remove("event");
                }
                (l, r.ts, r.line.clone())
            })
            .collect(),
        30,
    );
    // keep with a value condition: level kept only where it is "error".
    fx.check(
        &s,
        r#"{job="shop"} | json | keep service, level="error""#,
        shop.iter()
            .map(|(r, v)| {
                let mut l = lbl(&[("service", &r.labels["service"])]);
                if st(v, "level") == "error" {
                    l.insert("level".into(), "error".into());
                }
                (l, r.ts, r.line.clone())
            })
            .collect(),
        30,
    );
    // decolorize strips the ANSI escapes.
    let red = fx.rows_of("job", "mixed")[4];
    fx.check(
        &s,
        r#"{job="mixed"} |= "alert" | decolorize"#,
        vec![(red.labels.clone(), red.ts, "red alert green".to_string())],
        1,
    );
}

#[test]
fn structured_metadata_filters_and_encodings() {
    let (s, fx) = setup();
    let meta = fx.rows_of("job", "meta");
    let md = |r: &Row, k: &str| {
        r.md.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let with_md = |r: &Row| {
        let mut l = r.labels.clone();
        for (k, v) in &r.md {
            l.insert(k.clone(), v.clone());
        }
        l
    };
    // Label filters on structured metadata need no parser.
    fx.check(
        &s,
        r#"{job="meta"} | user="u1""#,
        meta.iter()
            .filter(|r| md(r, "user") == "u1")
            .map(|r| (with_md(r), r.ts, r.line.clone()))
            .collect(),
        3,
    );
    fx.check(
        &s,
        r#"{job="meta"} | user="u1" or pod="p0""#,
        meta.iter()
            .filter(|r| md(r, "user") == "u1" || md(r, "pod") == "p0")
            .map(|r| (with_md(r), r.ts, r.line.clone()))
            .collect(),
        3,
    );
    // A parsed key that collides with a metadata key gets `_extracted`.
    let want: Vec<Want> = meta
        .iter()
        .filter(|r| md(r, "pod") == "p1")
        .map(|r| {
            let id = r
                .line
                .split("id=")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap();
            let status = r.line.rsplit("status=").next().unwrap();
            let mut l = with_md(r);
            l.insert("id".into(), id.into());
            l.insert("status".into(), status.into());
            (l, r.ts, r.line.clone())
        })
        .collect();
    fx.check(&s, r#"{job="meta"} | pod="p1" | logfmt"#, want.clone(), 4);
    // Parsed keys colliding with metadata keys get `_extracted`; the
    // metadata labels keep their values.
    fx.check(
        &s,
        r#"{job="meta"} | pod="p1" | line_format "user=new{{.user}} pod=q" | logfmt | user_extracted=~"newu[01]""#,
        want.iter()
            .filter(|(l, _, _)| l["user"] != "u2")
            .map(|(l, ts, _)| {
                let mut l = l.clone();
                l.remove("id");
                l.remove("status");
                l.insert("user_extracted".into(), format!("new{}", l["user"]));
                l.insert("pod_extracted".into(), "q".into());
                let line = format!("user=new{} pod=q", l["user"]);
                (l, *ts, line)
            })
            .collect(),
        4,
    );

    // Categorized encoding: stream labels only, metadata and parsed apart.
    let (start, end) = fx.range();
    let r = s.get_h(
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{job="meta"} | user="u2" | logfmt"#),
            ("start", &start),
            ("end", &end),
            ("direction", "forward"),
        ],
        &[("X-Loki-Response-Encoding-Flags", "categorize-labels")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        v["data"]["encodingFlags"],
        serde_json::json!(["categorize-labels"])
    );
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{v}");
    assert_eq!(result[0]["stream"], serde_json::json!({"job": "meta"}));
    let exp: Vec<&&Row> = meta.iter().filter(|r| md(r, "user") == "u2").collect();
    let vals = result[0]["values"].as_array().unwrap();
    assert_eq!(vals.len(), exp.len());
    for (e, r) in vals.iter().zip(&exp) {
        let id = r
            .line
            .split("id=")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        let status = r.line.rsplit("status=").next().unwrap();
        assert_eq!(
            e,
            &serde_json::json!([r.ts.to_string(), r.line, {
                "structuredMetadata": {"user": "u2", "pod": md(r, "pod")},
                "parsed": {"id": id, "status": status},
            }])
        );
    }
    // Without metadata or parsed labels the third element is `{}`.
    let r = s.get_h(
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{system="apache"} |= "error""#),
            ("start", &start),
            ("end", &end),
            ("limit", "3"),
        ],
        &[("X-Loki-Response-Encoding-Flags", "categorize-labels")],
    );
    let v = r.json();
    let vals = v["data"]["result"][0]["values"].as_array().unwrap().clone();
    assert_eq!(vals.len(), 3);
    for e in vals {
        assert_eq!(e[2], serde_json::json!({}), "{e}");
    }
    // Plain encoding has no encodingFlags key at all.
    let v = s.query_range(r#"{job="meta"}"#, &[("start", &start), ("end", &end)]);
    assert!(v["data"].get("encodingFlags").is_none(), "{v}");
}

#[test]
fn limit_direction_interval_and_bounds() {
    let (s, fx) = setup();
    let hub = fx.rows_of("job", "loghub");
    // The first N overall by time, across streams, both directions.
    fx.check(&s, r#"{job="loghub"}"#, plain(&hub, |_| true), 50);
    let hub_mixed: Vec<&Row> = fx
        .rows
        .iter()
        .filter(|r| r.labels["job"] == "loghub" || r.labels["job"] == "mixed")
        .collect();
    fx.check(
        &s,
        r#"{job=~"loghub|mixed"}"#,
        plain(&hub_mixed, |_| true),
        17,
    );

    // max_entries_limit_per_query (5000 by default).
    let (start, end) = fx.range();
    let r = s.get(
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{job="loghub"}"#),
            ("start", &start),
            ("end", &end),
            ("limit", "5001"),
        ],
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body.trim(),
        "max entries limit per query exceeded, limit > max_entries_limit_per_query (5001 > 5000)"
    );

    // start inclusive, end exclusive, at exact entry timestamps.
    let apache = fx.rows_of("system", "apache");
    let (t0, t1) = (apache[10].ts, apache[20].ts);
    for dir in ["forward", "backward"] {
        let v = s.query_range(
            r#"{system="apache"}"#,
            &[
                ("start", &t0.to_string()),
                ("end", &t1.to_string()),
                ("direction", dir),
            ],
        );
        let mut got: Vec<i64> = common::all_values(&v).into_iter().map(|e| e.0).collect();
        if dir == "backward" {
            got.reverse();
        }
        let want: Vec<i64> = apache[10..20].iter().map(|r| r.ts).collect();
        assert_eq!(got, want, "{dir}");
    }

    // interval: an entry is kept only when it is at least `interval` after
    // (or before, backward) the last one kept.
    let ts: Vec<i64> = apache.iter().map(|r| r.ts).collect();
    let pick = |seq: Vec<i64>, iv: i64| {
        let mut out: Vec<i64> = vec![];
        for t in seq {
            if out.last().is_none_or(|&l| (t - l).abs() >= iv) {
                out.push(t);
            }
        }
        out
    };
    for (dir, seq) in [
        ("forward", ts.clone()),
        ("backward", ts.iter().rev().copied().collect()),
    ] {
        let v = s.query_range(
            r#"{system="apache"}"#,
            &[
                ("start", &start),
                ("end", &end),
                ("direction", dir),
                ("interval", "0.0375"),
                ("limit", "1000"),
            ],
        );
        let got: Vec<i64> = common::all_values(&v).into_iter().map(|e| e.0).collect();
        // apache entries are 1 ms apart: 37.5 ms keeps every 38th.
        let want = pick(seq, 37_500_000);
        assert_eq!(want.len(), PER_SYSTEM.div_ceil(38));
        assert_eq!(got, want, "{dir}");
    }
}

#[test]
fn head_flushed_chunks_and_restart_answer_the_same() {
    let mut s = start_server();
    let base = (common::now_ns() / 1_000_000_000 - 3600) * 1_000_000_000;
    let (rows, _) = fixture_rows(base);
    // First half flushed to chunks, second half stays in the head.
    let (a, b): (Vec<Row>, Vec<Row>) = rows
        .iter()
        .cloned()
        .partition(|r| (r.ts - base) / MS % 2 == 0);
    push_rows(&s, &a);
    s.flush();
    push_rows(&s, &b);
    let fx = Fx { base, rows };
    let hub = fx.rows_of("job", "loghub");
    let shop = shop_rows(&fx);
    let queries: Vec<(String, Vec<Want>)> = vec![
        (
            r#"{job="loghub"} |= "error""#.into(),
            plain(&hub, |l| l.contains("error")),
        ),
        (
            r#"{job="shop"} | json | level="warn""#.into(),
            shop.iter()
                .filter(|(_, v)| v["level"] == "warn")
                .map(|(r, v)| (shop_parsed(r, v), r.ts, r.line.clone()))
                .collect(),
        ),
        (r#"{job="meta"} |= "status=200" | keep job"#.into(), {
            fx.rows_of("job", "meta")
                .iter()
                .filter(|r| r.line.ends_with("status=200"))
                .map(|r| (r.labels.clone(), r.ts, r.line.clone()))
                .collect()
        }),
    ];
    let run = |s: &Server| -> Vec<Vec<Stream>> {
        let mut out = vec![];
        for (q, want) in &queries {
            fx.check(s, q, want.clone(), 11);
            out.push(fx.query(s, q, 5000, false));
        }
        out
    };
    let before = run(&s);
    s.restart_after_kill();
    assert_eq!(run(&s), before, "after WAL replay");
    s.flush();
    assert_eq!(run(&s), before, "all flushed");
    assert!(s.terminate());
    s.restart_after_kill();
    assert_eq!(run(&s), before, "after clean restart");
}

#[test]
fn errors_and_format_query() {
    let s = start_server();
    let now = common::now_ns().to_string();
    let then = (common::now_ns() - 3_600_000_000_000).to_string();
    let get = |q: &str| {
        s.get(
            "/loki/api/v1/query_range",
            &[("query", q), ("start", &then), ("end", &now)],
        )
    };
    // `{job="loghub"}` is 14 characters, ` |= "x" ` takes 15..=22: `bar`
    // starts at column 23.
    let r = get(r#"{job="loghub"} |= "x" bar"#);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body.trim(),
        "parse error at line 1, col 23: syntax error: unexpected IDENTIFIER"
    );
    let r = get(r#"{app=~".*"} |= "x""#);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body.trim(),
        r#"parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~".*" does not meet this requirement, but app=~".+" will"#
    );
    let r = get(r#"{job="x"} |~ ip("1.2.3.4")"#);
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s.get(
        "/loki/api/v1/query",
        &[("query", r#"{job="x"} |= "a""#), ("time", &now)],
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body.trim(),
        "log queries are not supported as an instant query type, please change your query to a range query type"
    );
    let r = s.get(
        "/loki/api/v1/format_query",
        &[(
            "query",
            r#"{job="x"}|="a"   |json|level="error"|line_format "{{.msg}}""#,
        )],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        serde_json::json!({"status": "success", "data": r#"{job="x"} |= "a" | json | level="error" | line_format "{{.msg}}""#})
    );
}

#[test]
fn more_filters_templates_and_label_rules() {
    let (s, fx) = setup();
    let hub = fx.rows_of("job", "loghub");
    let ssh = fx.rows_of("system", "openssh");
    // Line filter literals are not regexes; `(?i)` in regex filters.
    fx.check(
        &s,
        r#"{system="openssh"} |= "sshd[24200]""#,
        plain(&ssh, |l| l.contains("sshd[24200]")),
        3,
    );
    fx.check(
        &s,
        r#"{job="loghub"} |~ "(?i)failed PASSWORD" !~ "(?i)INVALID""#,
        plain(&hub, |l| {
            let l = l.to_lowercase();
            l.contains("failed password") && !l.contains("invalid")
        }),
        5,
    );
    fx.check(
        &s,
        r#"{job="loghub"} |~ "Accepted" or "(?i)^dec 10 07:0""#,
        plain(&hub, |l| {
            l.contains("Accepted") || l.to_lowercase().starts_with("dec 10 07:0")
        }),
        5,
    );
    fx.check(&s, r#"{job="loghub"} |= """#, plain(&hub, |_| true), 5);
    // Label filters on stream labels need no parser.
    fx.check(
        &s,
        r#"{job="loghub"} | system=~"h.*" or system="apache""#,
        plain(
            &hub.iter()
                .filter(|r| r.labels["system"] != "openssh")
                .copied()
                .collect::<Vec<_>>(),
            |_| true,
        ),
        5,
    );

    // pattern over every OpenSSH line: lines that miss a literal get the
    // partial captures Loki gives them.
    let pat = "<_> sshd[<pid>]: <what> from <ip> port <port>";
    let want: Vec<Want> = ssh
        .iter()
        .map(|r| {
            let mut l = r.labels.clone();
            for (k, v) in pattern_captures(pat, &r.line).0 {
                l.insert(k, v);
            }
            (l, r.ts, r.line.clone())
        })
        .collect();
    fx.check(
        &s,
        &format!(r#"{{system="openssh"}} | pattern "{pat}""#),
        want,
        10,
    );

    // Template functions in line_format.
    let shop = shop_rows(&fx);
    let pay: Vec<&(Row, serde_json::Value)> = shop
        .iter()
        .filter(|(r, _)| r.labels["service"] == "payment")
        .collect();
    let st = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    fx.check(
        &s,
        r#"{service="payment"} | json | line_format `{{ Replace .event "_" " " -1 }}|{{ .trace_id | trunc 8 }}|{{ __timestamp__ | unixEpoch }}|{{ if eq .level "error" }}E{{ else }}-{{ end }}|{{ div .duration_ms 10 }}|{{ .service_extracted | title }}|[{{ .nope }}]` | keep service"#,
        pay.iter()
            .map(|(r, v)| {
                let line = format!(
                    "{}|{}|{}|{}|{}|Payment|[]",
                    st(v, "event").replace('_', " "),
                    &st(v, "trace_id")[..8],
                    r.ts / 1_000_000_000,
                    if st(v, "level") == "error" { "E" } else { "-" },
                    v["duration_ms"].as_u64().unwrap() / 10,
                );
                (lbl(&[("service", "payment")]), r.ts, line)
            })
            .collect(),
        7,
    );
    // Line filters after line_format see the new line.
    fx.check(
        &s,
        r#"{service="payment"} | json | line_format "{{.event}}" |= "declined" | keep service"#,
        pay.iter()
            .filter(|(_, v)| st(v, "event").contains("declined"))
            .map(|(r, v)| (lbl(&[("service", "payment")]), r.ts, st(v, "event")))
            .collect(),
        2,
    );
    // Numeric equality and inequality.
    let d = |v: &serde_json::Value| v["duration_ms"].as_u64().unwrap();
    let some = d(&pay[0].1);
    for (op, eq) in [("==", true), ("!=", false)] {
        fx.check(
            &s,
            &format!(r#"{{service="payment"}} | json | duration_ms {op} {some} | keep service"#),
            pay.iter()
                .filter(|(_, v)| (d(v) == some) == eq)
                .map(|(r, _)| (lbl(&[("service", "payment")]), r.ts, r.line.clone()))
                .collect(),
            3,
        );
    }
    // keep never removes __error__ / __error_details__.
    let got = fx.query(
        &s,
        r#"{job="mixed"} | json | keep job | __error__!="""#,
        100,
        true,
    );
    let n: usize = got.iter().map(|s| s.1.len()).sum();
    assert_eq!(n, 5, "{got:?}");
    for (l, _) in &got {
        let keys: Vec<&str> = l.keys().map(String::as_str).collect();
        assert_eq!(keys, ["__error__", "__error_details__", "job"], "{l:?}");
    }
    // The same label twice in one label_format is a parse error.
    let (start, end) = fx.range();
    let r = s.get(
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{job="mixed"} | label_format a=b, a="x""#),
            ("start", &start),
            ("end", &end),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.starts_with("parse error"), "{}", r.body);
}

/// Every line of every loghub sample (16 systems × 2,000 lines).
fn all_loghub(base: i64) -> Vec<Row> {
    let dir = format!("{}/testdata/loghub", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with("_2k.log"))
        .collect();
    names.sort();
    let mut rows = vec![];
    for (k, name) in names.iter().enumerate() {
        let system = name.trim_end_matches("_2k.log").to_lowercase();
        let text = std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
        for (i, line) in text.lines().enumerate() {
            rows.push(Row {
                labels: lbl(&[("job", "loghub"), ("system", &system)]),
                ts: base + i as i64 * MS + k as i64 * 1000,
                line: line.trim_end_matches('\r').to_string(),
                md: vec![],
            });
        }
    }
    rows
}

#[test]
fn many_blocks_duplicates_and_interval_with_limit() {
    let mut s = start_server();
    let base = (common::now_ns() / 1_000_000_000 - 3600) * 1_000_000_000;
    let rows = all_loghub(base);
    assert!(rows.len() >= 30_000);
    let fx = Fx { base, rows };
    let refs: Vec<&Row> = fx.rows.iter().collect();
    // Pushed twice, with a flush between: the second copy sits in the head
    // over identical entries in chunks, and must not show twice.
    push_rows(&s, &fx.rows);
    s.flush();
    push_rows(&s, &fx.rows);
    let re = regex::Regex::new("(?i)error|fail").unwrap();
    let q = r#"{job="loghub"} |~ "(?i)error|fail""#;
    let want = plain(&refs, |l| re.is_match(l));
    assert!(want.len() > 1000, "{}", want.len());
    fx.check(&s, q, want.clone(), 777);
    let everything = plain(&refs, |_| true);
    fx.check(&s, r#"{job="loghub"}"#, everything, 4999);
    s.restart_after_kill();
    fx.check(&s, q, want, 1234);

    // interval skips do not count toward the limit.
    let (start, end) = fx.range();
    let hdfs: Vec<i64> = fx.rows_of("system", "hdfs").iter().map(|r| r.ts).collect();
    let v = s.query_range(
        r#"{system="hdfs"}"#,
        &[
            ("start", &start),
            ("end", &end),
            ("direction", "backward"),
            ("interval", "100ms"),
            ("limit", "3"),
        ],
    );
    let got: Vec<i64> = common::all_values(&v).into_iter().map(|e| e.0).collect();
    let last = hdfs[hdfs.len() - 1];
    assert_eq!(got, vec![last, last - 100 * MS, last - 200 * MS]);
}

#[test]
fn missing_labels_and_errors_in_label_filters() {
    let (s, fx) = setup();
    let shop = shop_rows(&fx);
    let all = |keep: &dyn Fn(&serde_json::Value) -> bool| -> Vec<Want> {
        shop.iter()
            .filter(|(_, v)| keep(v))
            .map(|(r, v)| (shop_parsed(r, v), r.ts, r.line.clone()))
            .collect()
    };
    // A missing label compares as the empty string in string filters.
    fx.check(
        &s,
        r#"{job="shop"} | json | error="""#,
        all(&|v| v.get("error").is_none()),
        9,
    );
    fx.check(
        &s,
        r#"{job="shop"} | json | error!="""#,
        all(&|v| v.get("error").is_some()),
        3,
    );
    // A numeric filter drops lines without the label, and keeps lines whose
    // value is not a number with LabelFilterErr.
    fx.check(
        &s,
        r#"{job="shop"} | json | error > 1 | drop __error_details__"#,
        shop.iter()
            .filter(|(_, v)| v.get("error").is_some())
            .map(|(r, v)| {
                let mut l = shop_parsed(r, v);
                l.insert("__error__".into(), "LabelFilterErr".into());
                (l, r.ts, r.line.clone())
            })
            .collect(),
        3,
    );
    let mixed = fx.rows_of("job", "mixed");
    let mut p = vec![];
    json_flatten(&serde_json::from_str(&mixed[3].line).unwrap(), "", &mut p);
    fx.check(
        &s,
        r#"{job="mixed"} | json | n > 1"#,
        vec![(
            with_parsed(&mixed[3].labels, p),
            mixed[3].ts,
            mixed[3].line.clone(),
        )],
        1,
    );
    // regexp captures colliding with a stream label get `_extracted`.
    let apache = fx.rows_of("system", "apache");
    let re = regex::Regex::new(r"^\[[^\]]+\] \[(\w+)\]").unwrap();
    fx.check(
        &s,
        r#"{system="apache"} | regexp `^\[[^\]]+\] \[(?P<system>\w+)\]`"#,
        apache
            .iter()
            .map(|r| {
                let mut l = r.labels.clone();
                l.insert(
                    "system_extracted".into(),
                    re.captures(&r.line).unwrap()[1].to_string(),
                );
                (l, r.ts, r.line.clone())
            })
            .collect(),
        10,
    );
}

#[test]
fn post_pipeline_label_sets_merge_split_and_categorize() {
    let (s, fx) = setup();
    let hub = fx.rows_of("job", "loghub");
    // Dropping the label that told streams apart merges them into one
    // stream, interleaved by time.
    fx.check(
        &s,
        r#"{job="loghub"} | drop system"#,
        hub.iter()
            .map(|r| (lbl(&[("job", "loghub")]), r.ts, r.line.clone()))
            .collect(),
        20,
    );
    fx.check(
        &s,
        r#"{job="loghub"} | keep nope"#,
        hub.iter()
            .map(|r| (L::new(), r.ts, r.line.clone()))
            .collect(),
        20,
    );
    fx.check(
        &s,
        r#"{job="loghub"} | label_format sys=system"#,
        hub.iter()
            .map(|r| {
                (
                    lbl(&[("job", "loghub"), ("sys", &r.labels["system"])]),
                    r.ts,
                    r.line.clone(),
                )
            })
            .collect(),
        20,
    );

    // Categorized: one stream per indexed label set, parsed labels (with
    // `_extracted`) in the third element, no structuredMetadata key.
    let shop = shop_rows(&fx);
    let (start, end) = fx.range();
    for (dir, limit) in [("forward", "5000"), ("backward", "37")] {
        let r = s.get_h(
            "/loki/api/v1/query_range",
            &[
                ("query", r#"{job="shop"} | json | level=~"warn|error""#),
                ("start", &start),
                ("end", &end),
                ("direction", dir),
                ("limit", limit),
            ],
            &[("X-Loki-Response-Encoding-Flags", "categorize-labels")],
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let mut want: Vec<&(Row, serde_json::Value)> = shop
            .iter()
            .filter(|(_, v)| v["level"] == "warn" || v["level"] == "error")
            .collect();
        want.sort_by_key(|(r, _)| r.ts);
        if dir == "backward" {
            want.reverse();
        }
        want.truncate(limit.parse().unwrap());
        let mut by_stream: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        for (r, v) in want {
            let mut p = vec![];
            json_flatten(v, "", &mut p);
            let parsed: serde_json::Map<String, serde_json::Value> = p
                .into_iter()
                .map(|(k, v)| {
                    let k = if k == "service" || k == "job" {
                        format!("{k}_extracted")
                    } else {
                        k
                    };
                    (k, serde_json::Value::String(v))
                })
                .collect();
            by_stream
                .entry(label_string(&r.labels))
                .or_default()
                .push(serde_json::json!([r.ts.to_string(), r.line, {"parsed": parsed}]));
        }
        let v = r.json();
        let got = v["data"]["result"].as_array().unwrap();
        assert_eq!(got.len(), by_stream.len(), "{dir}");
        for (g, (ls, vals)) in got.iter().zip(&by_stream) {
            let glabels: L = g["stream"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            assert_eq!(&label_string(&glabels), ls, "{dir}");
            assert_eq!(g["values"].as_array().unwrap(), vals, "{dir} {ls}");
        }
    }
}

#[test]
fn multiline_entries_and_regex_dot() {
    let (s, fx) = setup();
    let lines = [
        "java.lang.NullPointerException: boom\n\tat com.shop.Order.process(Order.java:42)\n\tat com.shop.Main.main(Main.java:7)",
        "Exception then Order on one line",
        "no match here\nOrder alone",
    ];
    let rows: Vec<Row> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| Row {
            labels: lbl(&[("job", "multi")]),
            ts: fx.base + 5 * MS + i as i64 * MS,
            line: l.to_string(),
            md: vec![],
        })
        .collect();
    push_rows(&s, &rows);
    let refs: Vec<&Row> = rows.iter().collect();
    // `.` does not cross a newline unless `(?s)`.
    type Case<'a> = (&'a str, &'a dyn Fn(&str) -> bool);
    let cases: [Case; 5] = [
        (r#"|~ "Exception.*Order""#, &|l| {
            l.lines().any(|x| {
                x.find("Exception")
                    .is_some_and(|i| x[i..].contains("Order"))
            })
        }),
        (r#"|~ "(?s)Exception.*Order""#, &|l| {
            l.find("Exception")
                .is_some_and(|i| l[i..].contains("Order"))
        }),
        (r#"|= "\tat com.shop.Main""#, &|l| {
            l.contains("\tat com.shop.Main")
        }),
        (r#"|~ "^Order""#, &|l| l.starts_with("Order")),
        (r#"|~ "(?m)^Order""#, &|l| {
            l.lines().any(|x| x.starts_with("Order"))
        }),
    ];
    for (filter, keep) in cases {
        let want = plain(&refs, keep);
        let q = format!(r#"{{job="multi"}} {filter}"#);
        if want.is_empty() {
            assert!(fx.query(&s, &q, 100, true).is_empty(), "{q}");
        } else {
            fx.check(&s, &q, want, 1);
        }
    }
}

/// Regression: `build_state` gave the ingester default limits, so the
/// ingest flags (`--discover-*`, `--max-line-size`, …) had no effect.
#[test]
fn regression_ingest_flags_were_ignored_by_build_state() {
    let ts = (common::now_ns() / 1_000_000_000 - 60) * 1_000_000_000;
    let start = (ts - 1).to_string();
    let end = (ts + 1).to_string();
    let labels_of = |s: &Server| -> L {
        let r = s.push_proto(&[("{job=\"x\"}", vec![(ts, "level=error boom", vec![])])]);
        assert_eq!(r.status, 204, "{}", r.body);
        let v = s.query_range(r#"{job="x"}"#, &[("start", &start), ("end", &end)]);
        parse_streams(&v).remove(0).0
    };
    // Loki's defaults: service_name from `job`, detected_level metadata.
    let on = Server::start();
    assert_eq!(
        labels_of(&on),
        lbl(&[
            ("job", "x"),
            ("service_name", "x"),
            ("detected_level", "error")
        ])
    );
    let off = start_server();
    assert_eq!(labels_of(&off), lbl(&[("job", "x")]));
    let small = Server::start_with(&["--max-line-size", "10"]);
    let r = small.push_proto(&[(
        "{job=\"x\"}",
        vec![(ts, "a line longer than ten bytes", vec![])],
    )]);
    assert_eq!(r.status, 400, "{}", r.body);
}

#[test]
fn logfmt_keys_regexp_groups_and_more_template_functions() {
    let (s, fx) = setup();
    let lines = [
        r#"msg="say \"hi\" ünï" a.b=1 1x=2 x-y=3 t=tab\there"#,
        "foo and nothing else",
        "bar at the start? no: a bar",
    ];
    let rows: Vec<Row> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| Row {
            labels: lbl(&[("job", "edge")]),
            ts: fx.base + 3 * MS + i as i64 * MS,
            line: l.to_string(),
            md: vec![],
        })
        .collect();
    push_rows(&s, &rows);
    // logfmt: quoted escapes decoded, keys sanitised like JSON keys;
    // an unquoted `\t` stays as the two characters.
    fx.check(
        &s,
        r#"{job="edge"} |= "msg=" | logfmt"#,
        vec![(
            lbl(&[
                ("job", "edge"),
                ("msg", "say \"hi\" ünï"),
                ("a_b", "1"),
                ("_1x", "2"),
                ("x_y", "3"),
                ("t", "tab\\there"),
            ]),
            rows[0].ts,
            rows[0].line.clone(),
        )],
        1,
    );
    // regexp: a group that did not take part gives an empty value; a line
    // that does not match gets no label at all.
    fx.check(
        &s,
        r#"{job="edge"} != "msg=" | regexp "(?P<a>foo)|(?P<b>bar)""#,
        vec![
            (
                lbl(&[("job", "edge"), ("a", "foo"), ("b", "")]),
                rows[1].ts,
                rows[1].line.clone(),
            ),
            (
                lbl(&[("job", "edge"), ("a", ""), ("b", "bar")]),
                rows[2].ts,
                rows[2].line.clone(),
            ),
        ],
        1,
    );
    fx.check(
        &s,
        r#"{job="edge"} | regexp "^(?P<first>foo) and""#,
        vec![
            (lbl(&[("job", "edge")]), rows[0].ts, rows[0].line.clone()),
            (
                lbl(&[("job", "edge"), ("first", "foo")]),
                rows[1].ts,
                rows[1].line.clone(),
            ),
            (lbl(&[("job", "edge")]), rows[2].ts, rows[2].line.clone()),
        ],
        2,
    );
    // More template functions over the first hand-written logfmt line:
    // size=2KB is 2000 bytes (KB = 1000), dur=1.5s is 1.5 seconds,
    // "hello world" has two "o". Loki's `TrimPrefix` is Go's (s, prefix);
    // sprig's `trimPrefix` takes (prefix, s), so it pipes.
    let m = fx.rows_of("job", "mixed")[0];
    let ms = m.ts / 1_000_000;
    fx.check(
        &s,
        r#"{job="mixed"} |= "hello" | logfmt | line_format `{{ bytes .size }}|{{ duration .dur }}|{{ count "o" .msg }}|{{ alignLeft 3 .level }}|{{ alignRight 6 .level }}|{{ urlencode .msg }}|{{ b64enc .level }}|{{ __timestamp__ | unixEpochMillis }}|{{ .msg | upper | trunc 5 }}|{{ substr 0 4 .msg }}|{{ TrimPrefix .msg "hel" }}|{{ .msg | trimPrefix "hel" }}` | keep job"#,
        vec![(
            lbl(&[("job", "mixed")]),
            m.ts,
            format!("2000|1.5|2|inf|  info|hello+world|aW5mbw==|{ms}|HELLO|hell|lo world|lo world"),
        )],
        1,
    );
}

#[test]
fn random_windows_over_out_of_order_pushes_and_chunks() {
    let mut s = start_server();
    // Three hours of two streams, every ~7 s, ending 10 minutes ago.
    let end_all = (common::now_ns() / 1_000_000_000 - 600) * 1_000_000_000;
    let first = end_all - 3 * 3600 * 1_000_000_000;
    let mut rows = vec![];
    let mut i = 0i64;
    let mut t = first;
    while t < end_all {
        let app = if i % 3 == 0 { "a" } else { "b" };
        rows.push(Row {
            labels: lbl(&[("job", "win"), ("app", app)]),
            ts: t + i % 1000,
            line: format!(
                "entry {i} app={app} {}",
                if i % 5 == 0 { "odd" } else { "even" }
            ),
            md: vec![],
        });
        i += 1;
        t += 7_000_000_000 + (i % 3) * 1_000_000;
    }
    // Pushed in a scrambled order over four requests, with flushes between
    // (out-of-order entries inside one stream are accepted).
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut x = 12345u64;
    for k in (1..order.len()).rev() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        order.swap(k, (x >> 33) as usize % (k + 1));
    }
    for (n, part) in order.chunks(order.len() / 4 + 1).enumerate() {
        let batch: Vec<Row> = part.iter().map(|&k| rows[k].clone()).collect();
        push_rows(&s, &batch);
        if n % 2 == 0 {
            s.flush();
        }
    }
    let fx = Fx { base: first, rows };
    let refs: Vec<&Row> = fx.rows.iter().collect();
    let mut check_windows = |s: &Server| {
        for w in 0..25u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let span = end_all - first;
            let a = first + ((x >> 20) % span as u64) as i64 - 3_600_000_000_000 / 8;
            let b = a + ((x >> 7) % (span as u64 / 2)) as i64;
            // Every fifth window starts and ends exactly on entries.
            let (a, b) = if w % 5 == 0 {
                let k = (x % (fx.rows.len() as u64 - 100)) as usize;
                (fx.rows[k].ts, fx.rows[k + 90].ts)
            } else {
                (a, b)
            };
            let limit = [10usize, 100, 5000][w as usize % 3];
            for (dir, q, keep) in [
                ("forward", r#"{job="win"}"#, false),
                ("backward", r#"{job="win"} |= "odd""#, true),
            ] {
                let v = s.query_range(
                    q,
                    &[
                        ("start", &a.to_string()),
                        ("end", &b.to_string()),
                        ("limit", &limit.to_string()),
                        ("direction", dir),
                    ],
                );
                let want = expect(
                    plain(&refs, |l| !keep || l.ends_with("odd"))
                        .into_iter()
                        .filter(|e| e.1 >= a && e.1 < b)
                        .collect(),
                    limit,
                    dir == "forward",
                );
                assert_eq!(
                    parse_streams(&v),
                    want,
                    "{q} [{a}, {b}) {dir} limit {limit}"
                );
            }
        }
    };
    check_windows(&s);
    s.restart_after_kill();
    check_windows(&s);
}

#[test]
fn many_streams_limit_picks_the_global_first_entries() {
    let s = start_server();
    let base = (common::now_ns() / 1_000_000_000 - 1800) * 1_000_000_000;
    // 400 streams; stream k's entries are at base + (j * 400 + k) µs, so
    // the globally first entries come from every stream in turn.
    let rows: Vec<Row> = (0..400i64)
        .flat_map(|k| {
            (0..25i64).map(move |j| Row {
                labels: lbl(&[("job", "many"), ("pod", &format!("pod-{k:03}"))]),
                ts: base + (j * 400 + k) * 1000 + if k % 7 == 0 { 500 } else { 0 },
                line: format!("pod {k} entry {j}"),
                md: vec![],
            })
        })
        .collect();
    push_rows(&s, &rows[..5000]);
    s.flush();
    push_rows(&s, &rows[5000..]);
    let fx = Fx { base, rows };
    let refs: Vec<&Row> = fx.rows.iter().collect();
    fx.check(&s, r#"{job="many"}"#, plain(&refs, |_| true), 333);
    fx.check(
        &s,
        r#"{job="many"} |~ "entry (1|2)$" | pod=~"pod-0.*""#,
        refs.iter()
            .filter(|r| r.line.ends_with("entry 1") || r.line.ends_with("entry 2"))
            .filter(|r| r.labels["pod"].starts_with("pod-0"))
            .map(|r| (r.labels.clone(), r.ts, r.line.clone()))
            .collect(),
        77,
    );
}

#[test]
fn parser_parameters_on_mixed_lines() {
    let (s, fx) = setup();
    let mixed = fx.rows_of("job", "mixed");
    // json with parameters: non-JSON lines fail, JSON lines get the value
    // or an empty one.
    let want: Vec<Want> = mixed
        .iter()
        .filter(|r| r.line.starts_with('{'))
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(&r.line).unwrap();
            let lvl = v["level"].as_str().unwrap_or("");
            (lbl(&[("job", "mixed"), ("lvl", lvl)]), r.ts, r.line.clone())
        })
        .collect();
    assert_eq!(want.len(), 4);
    fx.check(
        &s,
        r#"{job="mixed"} | json lvl="level" | __error__="""#,
        want,
        3,
    );
    // logfmt flags with parameters.
    fx.check(
        &s,
        r#"{job="mixed"} |= "boom" | logfmt --strict --keep-empty flag, lvl="level""#,
        vec![(
            lbl(&[("job", "mixed"), ("flag", ""), ("lvl", "error")]),
            mixed[1].ts,
            mixed[1].line.clone(),
        )],
        1,
    );
    // unpack: a JSON line without `_entry` keeps its line; a non-JSON line
    // gets JSONParserErr.
    fx.check(
        &s,
        r#"{job="mixed"} |= "debug" | unpack | drop nested_t"#,
        vec![(
            lbl(&[("job", "mixed"), ("level", "debug")]),
            mixed[7].ts,
            mixed[7].line.clone(),
        )],
        1,
    );
    fx.check(
        &s,
        r#"{job="mixed"} |= "plain text" | unpack | drop __error_details__"#,
        vec![(
            lbl(&[("job", "mixed"), ("__error__", "JSONParserErr")]),
            mixed[6].ts,
            mixed[6].line.clone(),
        )],
        1,
    );
}

/// RFC 3339 text of `ts` ns, with all nine fractional digits.
fn rfc3339_nanos(ts: i64) -> String {
    let secs = ts.div_euclid(1_000_000_000);
    let ns = ts.rem_euclid(1_000_000_000);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ns:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[test]
fn time_parameter_forms_keep_start_inclusive_end_exclusive() {
    let (s, fx) = setup();
    let apache = fx.rows_of("system", "apache");
    let ts_of = |v: &serde_json::Value| -> Vec<i64> {
        common::all_values(v).into_iter().map(|e| e.0).collect()
    };
    let between = |a: i64, b: i64| -> Vec<i64> {
        apache
            .iter()
            .map(|r| r.ts)
            .filter(|t| *t >= a && *t < b)
            .collect()
    };
    // Apache entries are at base + i ms (base is whole seconds).
    let (a, b) = (apache[5].ts, apache[17].ts);
    let forms: [(String, String); 3] = [
        (a.to_string(), b.to_string()),
        (rfc3339_nanos(a), rfc3339_nanos(b)),
        // Float seconds, to the millisecond.
        (
            format!("{}.{:03}", a / 1_000_000_000, a % 1_000_000_000 / 1_000_000),
            format!("{}.{:03}", b / 1_000_000_000, b % 1_000_000_000 / 1_000_000),
        ),
    ];
    for (start, end) in &forms {
        let v = s.query_range(
            r#"{system="apache"}"#,
            &[("start", start), ("end", end), ("direction", "FORWARD")],
        );
        assert_eq!(ts_of(&v), between(a, b), "{start} .. {end}");
    }
    // Ten digits or fewer: whole seconds. base+1 s holds no apache entry
    // (they span 300 ms), so [base, base+1s) is all of them.
    let secs = fx.base / 1_000_000_000;
    let v = s.query_range(
        r#"{system="apache"}"#,
        &[
            ("start", &secs.to_string()),
            ("end", &(secs + 1).to_string()),
            ("limit", "1000"),
            ("direction", "backward"),
        ],
    );
    let mut got = ts_of(&v);
    got.reverse();
    assert_eq!(got, between(fx.base, fx.base + 1_000_000_000));
    assert_eq!(got.len(), PER_SYSTEM);
}

#[test]
fn interval_applies_across_merged_streams() {
    let (s, fx) = setup();
    let hub = fx.rows_of("job", "loghub");
    let (start, end) = fx.range();
    for (dir, limit) in [("forward", 1000usize), ("backward", 1000), ("forward", 7)] {
        let mut all: Vec<&Row> = hub.clone();
        all.sort_by_key(|r| r.ts);
        if dir == "backward" {
            all.reverse();
        }
        let mut kept: Vec<Want> = vec![];
        let mut last: Option<i64> = None;
        for r in all {
            if last.is_none_or(|l| (r.ts - l).abs() >= 10 * MS) {
                kept.push((r.labels.clone(), r.ts, r.line.clone()));
                last = Some(r.ts);
            }
        }
        // 300 ms of data, one kept every 10 ms.
        assert_eq!(kept.len(), 30);
        let want = expect(kept, limit, dir == "forward");
        let v = s.query_range(
            r#"{job="loghub"}"#,
            &[
                ("start", &start),
                ("end", &end),
                ("direction", dir),
                ("interval", "10ms"),
                ("limit", &limit.to_string()),
            ],
        );
        assert_eq!(parse_streams(&v), want, "{dir} {limit}");
    }
}

#[test]
fn defaults_and_post_form_bodies() {
    let (s, fx) = setup();
    let apache = fx.rows_of("system", "apache");
    let (start, end) = fx.range();
    // No direction: backward. No limit: 100.
    let v = s.query_range(r#"{system="apache"}"#, &[("start", &start), ("end", &end)]);
    let got: Vec<i64> = common::all_values(&v).into_iter().map(|e| e.0).collect();
    let want: Vec<i64> = apache.iter().rev().take(100).map(|r| r.ts).collect();
    assert_eq!(got, want);
    // The same query as a form-encoded POST body (what logcli can send).
    let body = format!(
        "query={}&start={start}&end={end}&limit=3&direction=forward",
        "%7Bsystem%3D%22apache%22%7D%20%7C%3D%20%22error%22"
    );
    let r = s.post(
        "/loki/api/v1/query_range",
        "application/x-www-form-urlencoded",
        body.as_bytes(),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let got: Vec<(i64, String)> = common::all_values(&r.json());
    let want: Vec<(i64, String)> = apache
        .iter()
        .filter(|r| r.line.contains("error"))
        .take(3)
        .map(|r| (r.ts, r.line.clone()))
        .collect();
    assert_eq!(got, want);
}

/// Loki records every parsed label as extracted, and later parse stages
/// (and repeated keys in one line) skip keys already extracted: the first
/// value wins (`LabelsBuilder.Set` → `RecordExtracted`, parsers check
/// `Extracted`).
#[test]
fn first_extracted_value_wins_across_parse_stages() {
    let (s, fx) = setup();
    let rows: Vec<Row> = [r#"{"a":"1","b":{"c":"x"},"a":"2"}"#, "k=1 k=2 j=3"]
        .iter()
        .enumerate()
        .map(|(i, l)| Row {
            labels: lbl(&[("job", "dups")]),
            ts: fx.base + 2 * MS + i as i64 * MS,
            line: l.to_string(),
            md: vec![],
        })
        .collect();
    push_rows(&s, &rows);
    fx.check(
        &s,
        r#"{job="dups"} |= "a" | json"#,
        vec![(
            lbl(&[("job", "dups"), ("a", "1"), ("b_c", "x")]),
            rows[0].ts,
            rows[0].line.clone(),
        )],
        1,
    );
    fx.check(
        &s,
        r#"{job="dups"} |= "k=" | logfmt"#,
        vec![(
            lbl(&[("job", "dups"), ("k", "1"), ("j", "3")]),
            rows[1].ts,
            rows[1].line.clone(),
        )],
        1,
    );
    // A second logfmt after line_format adds new keys only.
    let m = fx.rows_of("job", "mixed")[0];
    fx.check(
        &s,
        r#"{job="mixed"} |= "hello" | logfmt | line_format "level=changed extra=1" | logfmt"#,
        vec![(
            lbl(&[
                ("job", "mixed"),
                ("level", "info"),
                ("msg", "hello world"),
                ("dur", "1.5s"),
                ("size", "2KB"),
                ("extra", "1"),
            ]),
            m.ts,
            "level=changed extra=1".to_string(),
        )],
        1,
    );
    // label_format writes a parsed label too, replacing the metadata key:
    // a later parser neither renames (`_extracted`) nor overwrites it.
    let meta = fx.rows_of("job", "meta");
    fx.check(
        &s,
        r#"{job="meta"} | pod="p1" | label_format user=`x{{.user}}` | line_format "user=new" | logfmt"#,
        meta.iter()
            .filter(|r| r.md.iter().any(|(k, v)| k == "pod" && v == "p1"))
            .map(|r| {
                let u = &r.md.iter().find(|(k, _)| k == "user").unwrap().1;
                (
                    lbl(&[("job", "meta"), ("pod", "p1"), ("user", &format!("x{u}"))]),
                    r.ts,
                    "user=new".to_string(),
                )
            })
            .collect(),
        3,
    );
}

/// Regression: `label_format` kept the category of the renamed label (or of
/// an existing destination), so a renamed stream label stayed a stream
/// label. Since Loki 3.3 (#14515) both forms write parsed labels.
#[test]
fn regression_label_format_results_are_parsed_labels() {
    let (s, fx) = setup();
    let (start, end) = fx.range();
    let apache = fx.rows_of("system", "apache");
    let r = s.get_h(
        "/loki/api/v1/query_range",
        &[
            (
                "query",
                r#"{system="apache"} |= "error" | label_format sev="x", sys=system, job="j2""#,
            ),
            ("start", &start),
            ("end", &end),
            ("limit", "2"),
            ("direction", "forward"),
        ],
        &[("X-Loki-Response-Encoding-Flags", "categorize-labels")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let want: Vec<serde_json::Value> = apache
        .iter()
        .filter(|r| r.line.contains("error"))
        .take(2)
        .map(|r| {
            serde_json::json!([r.ts.to_string(), r.line, {
                "parsed": {"sev": "x", "sys": "apache", "job": "j2"}
            }])
        })
        .collect();
    assert_eq!(
        v["data"]["result"],
        serde_json::json!([{"stream": {}, "values": want}])
    );
}

#[test]
fn json_parameters_arrays_collisions_and_overwrites() {
    let (s, fx) = setup();
    let mixed = fx.rows_of("job", "mixed");
    // An array is kept as its JSON text; a parameter named like a stream
    // label becomes `_extracted`.
    fx.check(
        &s,
        r#"{job="mixed"} |= "debug" | json list="nested.list", t="nested.t", job="level""#,
        vec![(
            lbl(&[
                ("job", "mixed"),
                ("list", "[1,2]"),
                ("t", "true"),
                ("job_extracted", "debug"),
            ]),
            mixed[7].ts,
            mixed[7].line.clone(),
        )],
        1,
    );
    // json with parameters overwrites a label parsed before (unlike the
    // other parsers, Loki's JSONExpressionParser does not skip extracted
    // keys).
    let m = fx.rows_of("job", "mixed")[0];
    fx.check(
        &s,
        r#"{job="mixed"} |= "hello" | logfmt | line_format `{"level":"json"}` | json level="level""#,
        vec![(
            lbl(&[
                ("job", "mixed"),
                ("level", "json"),
                ("msg", "hello world"),
                ("dur", "1.5s"),
                ("size", "2KB"),
            ]),
            m.ts,
            r#"{"level":"json"}"#.to_string(),
        )],
        1,
    );
}

#[test]
fn template_runtime_errors_keep_the_line() {
    let (s, fx) = setup();
    let m = fx.rows_of("job", "mixed")[0];
    // Division by zero fails at execution: TemplateFormatErr, line kept.
    fx.check(
        &s,
        r#"{job="mixed"} |= "hello" | line_format "{{ div 1 0 }}" | drop __error_details__"#,
        vec![(
            lbl(&[("job", "mixed"), ("__error__", "TemplateFormatErr")]),
            m.ts,
            m.line.clone(),
        )],
        1,
    );
    fx.check(
        &s,
        r#"{job="mixed"} |= "hello" | label_format x="{{ div 1 0 }}", y="ok" | drop __error_details__"#,
        vec![(
            lbl(&[
                ("job", "mixed"),
                ("y", "ok"),
                ("__error__", "TemplateFormatErr"),
            ]),
            m.ts,
            m.line.clone(),
        )],
        1,
    );
}

#[test]
fn unicode_lines_and_case_folding() {
    let (s, fx) = setup();
    let lines = [
        "Größe ÜBER limit",
        "grösse über",
        "plain ascii uber",
        "ÅNGSTRÖM ångström",
    ];
    let rows: Vec<Row> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| Row {
            labels: lbl(&[("job", "uni")]),
            ts: fx.base + 4 * MS + i as i64 * MS,
            line: l.to_string(),
            md: vec![],
        })
        .collect();
    push_rows(&s, &rows);
    let refs: Vec<&Row> = rows.iter().collect();
    fx.check(
        &s,
        r#"{job="uni"} |~ "(?i)über""#,
        plain(&refs, |l| l.to_lowercase().contains("über")),
        1,
    );
    fx.check(
        &s,
        r#"{job="uni"} |= "über""#,
        plain(&refs, |l| l.contains("über")),
        1,
    );
    fx.check(
        &s,
        r#"{job="uni"} |~ "(?i)ångström""#,
        plain(&refs, |l| l.to_lowercase().contains("ångström")),
        1,
    );
    fx.check(
        &s,
        r#"{job="uni"} !~ "(?i)ÜBER|ÅNGSTRÖM""#,
        plain(&refs, |l| {
            let l = l.to_lowercase();
            !l.contains("über") && !l.contains("ångström")
        }),
        1,
    );
    // line_format with ToUpper on non-ASCII text.
    fx.check(
        &s,
        r#"{job="uni"} |= "grösse" | line_format "{{ __line__ | ToUpper }}""#,
        vec![(
            rows[1].labels.clone(),
            rows[1].ts,
            "GRÖSSE ÜBER".to_string(),
        )],
        1,
    );
}

#[test]
fn flushed_chunks_of_every_encoding_answer_alike() {
    for enc in ["snappy", "none", "zstd"] {
        let s = Server::start_with(&[
            "--discover-log-levels=false",
            "--discover-service-name=",
            "--chunk-encoding",
            enc,
        ]);
        let base = (common::now_ns() / 1_000_000_000 - 3600) * 1_000_000_000;
        let (rows, _) = fixture_rows(base);
        push_rows(&s, &rows);
        s.flush();
        let fx = Fx { base, rows };
        let hub = fx.rows_of("job", "loghub");
        fx.check(
            &s,
            r#"{job="loghub"} |~ "(?i)fail" != "preauth""#,
            plain(&hub, |l| {
                l.to_lowercase().contains("fail") && !l.contains("preauth")
            }),
            13,
        );
        let shop = shop_rows(&fx);
        fx.check(
            &s,
            r#"{job="shop"} | json | level="warn""#,
            shop.iter()
                .filter(|(_, v)| v["level"] == "warn")
                .map(|(r, v)| (shop_parsed(r, v), r.ts, r.line.clone()))
                .collect(),
            9,
        );
    }
}

#[test]
fn detected_level_filters_with_default_ingestion() {
    // Default flags: service_name discovered from `service`, and the JSON
    // `level` field becomes `detected_level` structured metadata.
    let s = Server::start();
    let base = (common::now_ns() / 1_000_000_000 - 3600) * 1_000_000_000;
    let (rows, _) = fixture_rows(base);
    let shop_only: Vec<Row> = rows
        .into_iter()
        .filter(|r| r.labels["job"] == "shop")
        .collect();
    push_rows(&s, &shop_only);
    let fx = Fx {
        base,
        rows: shop_only,
    };
    let shop = shop_rows(&fx);
    for lvl in ["error", "warn", "debug"] {
        let want: Vec<Want> = shop
            .iter()
            .filter(|(_, v)| v["level"] == lvl)
            .map(|(r, _)| {
                let mut l = r.labels.clone();
                l.insert("service_name".into(), r.labels["service"].clone());
                l.insert("detected_level".into(), lvl.into());
                (l, r.ts, r.line.clone())
            })
            .collect();
        fx.check(
            &s,
            &format!(r#"{{job="shop"}} | detected_level="{lvl}""#),
            want,
            5,
        );
    }
}

/// Loki's `|>` test (`pattern.Matcher.Test`): the literals are found in
/// order, no capture may be empty, and the line must end exactly where a
/// trailing literal ends, or leave a non-empty rest for a trailing capture.
fn pattern_test(pattern: &str, line: &str) -> bool {
    // (is_capture, literal text)
    let mut parts: Vec<(bool, &str)> = vec![];
    let mut rest = pattern;
    while let Some(i) = rest.find('<') {
        let j = rest[i..].find('>').unwrap() + i;
        if i > 0 {
            parts.push((false, &rest[..i]));
        }
        parts.push((true, ""));
        rest = &rest[j + 1..];
    }
    if !rest.is_empty() {
        parts.push((false, rest));
    }
    if line.is_empty() || parts.is_empty() {
        return line.is_empty() && parts.is_empty();
    }
    let mut off = 0;
    for (i, (cap, lit)) in parts.iter().enumerate() {
        if *cap {
            continue;
        }
        let Some(j) = line[off..].find(lit) else {
            return false;
        };
        if i != 0 && j == 0 {
            return false;
        }
        off += j + lit.len();
    }
    let ends_on_capture = parts.last().unwrap().0;
    ends_on_capture == (off != line.len())
}

#[test]
fn pattern_line_filter_edge_rules() {
    let (s, fx) = setup();
    let lines = ["foo bar baz", " bar ", "xfoo bar", "foo  bar"];
    let rows: Vec<Row> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| Row {
            labels: lbl(&[("job", "pat")]),
            ts: fx.base + 6 * MS + i as i64 * MS,
            line: l.to_string(),
            md: vec![],
        })
        .collect();
    push_rows(&s, &rows);
    let refs: Vec<&Row> = rows.iter().collect();
    // Worked out by hand with the rules above: "<_> bar" needs the line to
    // end right after " bar" with something before it; "foo <_>" is not
    // anchored at the start ("xfoo bar" matches); "<_> bar <_>" rejects
    // " bar " (empty captures) while "<_>bar<_>" accepts it.
    let expect_match: [(&str, &[usize]); 6] = [
        ("<_> bar", &[2, 3]),
        ("<_> baz", &[0]),
        ("foo <_>", &[0, 2, 3]),
        ("<_> bar <_>", &[0]),
        ("<_>bar<_>", &[0, 1]),
        ("foo <_> baz", &[0]),
    ];
    for (pat, idx) in expect_match {
        let by_rule: Vec<usize> = (0..lines.len())
            .filter(|&i| pattern_test(pat, lines[i]))
            .collect();
        assert_eq!(by_rule, idx, "hand check of {pat:?}");
        for (op, neg) in [("|>", false), ("!>", true)] {
            let want = plain(&refs, |l| pattern_test(pat, l) != neg);
            let q = format!(r#"{{job="pat"}} {op} "{pat}""#);
            if want.is_empty() {
                assert!(fx.query(&s, &q, 100, true).is_empty(), "{q}");
            } else {
                fx.check(&s, &q, want, 1);
            }
        }
    }
}

/// Regression: `decolorize` used its own escape parser and cut OSC titles,
/// lone ESC bytes and two-byte escapes differently from Loki's pattern.
#[test]
fn regression_decolorize_cuts_like_lokis_pattern() {
    let (s, fx) = setup();
    let line = "\u{1b}]0;my title\u{7}done \u{1b}[?25lok\u{1b}M \u{1b}x end \u{1b}";
    let row = Row {
        labels: lbl(&[("job", "ansi")]),
        ts: fx.base + 7 * MS,
        line: line.to_string(),
        md: vec![],
    };
    push_rows(&s, std::slice::from_ref(&row));
    // By hand: `ESC ] 0 ; m` goes (then "y title" stays with its BEL),
    // `ESC [ ? 25 l` and `ESC M` go, `ESC x` and the final ESC stay.
    fx.check(
        &s,
        r#"{job="ansi"} | decolorize"#,
        vec![(
            row.labels.clone(),
            row.ts,
            "y title\u{7}done ok \u{1b}x end \u{1b}".to_string(),
        )],
        1,
    );
}

#[test]
fn bytes_and_duration_label_values() {
    let (s, fx) = setup();
    // (size text, bytes by hand; duration text, ns by hand)
    let vals: [(&str, f64, &str, f64); 7] = [
        ("2KB", 2000.0, "1h30m", 5400e9),
        ("2KiB", 2048.0, "1.5s", 1.5e9),
        ("1.5 MB", 1.5e6, "250ms", 250e6),
        ("999B", 999.0, "500us", 500e3),
        ("1000", 1000.0, "2µs", 2e3),
        ("1kb", 1000.0, "-5m", -300e9),
        ("3 GiB", 3.0 * 1024.0 * 1024.0 * 1024.0, "90s", 90e9),
    ];
    let rows: Vec<Row> = vals
        .iter()
        .enumerate()
        .map(|(i, (sz, _, d, _))| Row {
            labels: lbl(&[("job", "units")]),
            ts: fx.base + 8 * MS + i as i64 * MS,
            line: format!(r#"size="{sz}" dur={d}"#),
            md: vec![],
        })
        .collect();
    push_rows(&s, &rows);
    let with = |keep: &dyn Fn(f64, f64) -> bool| -> Vec<Want> {
        rows.iter()
            .zip(vals.iter())
            .filter(|(_, v)| keep(v.1, v.3))
            .map(|(r, v)| {
                (
                    lbl(&[("job", "units"), ("size", v.0), ("dur", v.2)]),
                    r.ts,
                    r.line.clone(),
                )
            })
            .collect()
    };
    // (label filter, predicate over (bytes, duration ns))
    type Case<'a> = (&'a str, &'a dyn Fn(f64, f64) -> bool);
    let cases: [Case; 6] = [
        ("size >= 1KB", &|b, _| b >= 1000.0),
        ("size > 1KiB", &|b, _| b > 1024.0),
        ("size < 1.5MB", &|b, _| b < 1.5e6),
        ("dur >= 90s", &|_, d| d >= 90e9),
        ("dur < 1ms", &|_, d| d < 1e6),
        ("dur > 1s and size <= 2KiB", &|b, d| d > 1e9 && b <= 2048.0),
    ];
    for (f, keep) in cases {
        fx.check(
            &s,
            &format!(r#"{{job="units"}} | logfmt | {f}"#),
            with(keep),
            2,
        );
    }
}
