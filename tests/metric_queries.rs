//! LogQL metric queries end to end, over the real binary's HTTP API: range
//! aggregations (with and without `unwrap`), window edges, step alignment,
//! offsets, vector aggregations, binary and set operators, scalars, Grafana's
//! health check and log-volume query, query limits and their exact 400
//! messages, and results that stay identical across a flush and a restart.
//!
//! The fixture is pushed with JSON at whole seconds after `T`, a minute
//! boundary two hours ago. Every expected value below is worked out by hand
//! in a comment (or computed in the test from the pushed data), never copied
//! from the server's answers.

mod common;

use std::collections::BTreeMap;

use common::{now_ns, Server};
use serde_json::{json, Value};

const NS: i64 = 1_000_000_000;

/// A minute boundary two hours ago, in Unix seconds.
fn base_secs() -> i64 {
    (now_ns() / NS - 7200) / 60 * 60
}

/// Stream `{app="m", env="a"}`: line k (k = 0..=11) at `T + 10k s`.
fn line_a(k: i64) -> String {
    format!("level=info k={k} dur={k}00ms size={k}KB v={k}")
}

/// Counter values of stream `{app="m", env="b"}`; the counter resets after
/// the fourth sample.
const CTR_B: [i64; 8] = [0, 10, 20, 30, 5, 15, 25, 35];

/// Stream `{app="m", env="b"}`: line k (k = 0..=7) at `T + 15k s`.
fn line_b(k: i64) -> String {
    format!("level=warn k={k} ctr={}", CTR_B[k as usize])
}

fn push(s: &Server, labels: Value, entries: &[(i64, String)]) {
    let values: Vec<Value> = entries
        .iter()
        .map(|(ts, l)| json!([ts.to_string(), l]))
        .collect();
    let r = s.push_json(&json!({"streams": [{"stream": labels, "values": values}]}));
    assert_eq!(r.status, 204, "push: {}", r.body);
}

fn entries_a(t: i64, ks: std::ops::RangeInclusive<i64>) -> Vec<(i64, String)> {
    ks.map(|k| ((t + 10 * k) * NS, line_a(k))).collect()
}

fn entries_b(t: i64) -> Vec<(i64, String)> {
    (0..8).map(|k| ((t + 15 * k) * NS, line_b(k))).collect()
}

/// The labels every series of stream A / B carries: stream labels, the
/// discovered `service_name`, and the `detected_level` structured metadata
/// found from the `level=` field of the line.
fn labels_a() -> String {
    lbl(&[
        ("app", "m"),
        ("detected_level", "info"),
        ("env", "a"),
        ("service_name", "m"),
    ])
}
fn labels_b() -> String {
    lbl(&[
        ("app", "m"),
        ("detected_level", "warn"),
        ("env", "b"),
        ("service_name", "m"),
    ])
}

/// A label set in a canonical text form, to compare with the response.
fn lbl(pairs: &[(&str, &str)]) -> String {
    let m: BTreeMap<&str, &str> = pairs.iter().copied().collect();
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn metric_labels(m: &Value) -> String {
    let obj = m.as_object().expect("metric object");
    let pairs: Vec<(&str, &str)> = obj
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().expect("label value string")))
        .collect();
    lbl(&pairs)
}

/// A `[<float seconds>, "<value>"]` pair as (milliseconds, value string).
fn point(p: &Value) -> (i64, String) {
    let secs = p[0].as_f64().expect("timestamp is a JSON number");
    (
        (secs * 1000.0).round() as i64,
        p[1].as_str().expect("value is a string").to_string(),
    )
}

type Series = (String, Vec<(i64, String)>);

/// A matrix result as (labels, [(ms, value)]), in response order.
fn matrix(v: &Value) -> Vec<Series> {
    assert_eq!(v["status"], "success", "{v}");
    assert_eq!(v["data"]["resultType"], "matrix", "{v}");
    v["data"]["result"]
        .as_array()
        .expect("result array")
        .iter()
        .map(|s| {
            (
                metric_labels(&s["metric"]),
                s["values"]
                    .as_array()
                    .expect("values")
                    .iter()
                    .map(point)
                    .collect(),
            )
        })
        .collect()
}

/// A vector result as [(labels, ms, value)], in response order.
fn vector(v: &Value) -> Vec<(String, i64, String)> {
    assert_eq!(v["status"], "success", "{v}");
    assert_eq!(v["data"]["resultType"], "vector", "{v}");
    v["data"]["result"]
        .as_array()
        .expect("result array")
        .iter()
        .map(|s| {
            let (t, val) = point(&s["value"]);
            (metric_labels(&s["metric"]), t, val)
        })
        .collect()
}

/// Go's `FormatFloat(v, 'f', -1, 64)`; Rust's `Display` is also the
/// shortest round-trip form without an exponent.
fn fmt(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn close(got: &str, want: f64) -> bool {
    let g: f64 = got.parse().unwrap_or(f64::NAN);
    (g - want).abs() <= 1e-9 * want.abs().max(1.0)
}

fn instant(s: &Server, q: &str, t: i64) -> Value {
    let r = s.get(
        "/loki/api/v1/query",
        &[("query", q), ("time", &t.to_string())],
    );
    assert_eq!(r.status, 200, "query {q}: {}", r.body);
    r.json()
}

fn range(s: &Server, q: &str, start: i64, end: i64, step: &str) -> Value {
    s.query_range(
        q,
        &[
            ("start", &start.to_string()),
            ("end", &end.to_string()),
            ("step", step),
        ],
    )
}

/// One instant sample `(labels, value)` at `t`, asserting its timestamp.
fn one(s: &Server, q: &str, t: i64) -> (String, String) {
    let v = vector(&instant(s, q, t));
    assert_eq!(v.len(), 1, "{q}: {v:?}");
    let (l, ts, val) = v.into_iter().next().unwrap_or_default();
    assert_eq!(ts, t * 1000, "{q}");
    (l, val)
}

/// Pushes streams A and B, with a flush in the middle of A so the data spans
/// on-disk blocks and the head.
fn fixture(s: &Server, t: i64) {
    push(s, json!({"app": "m", "env": "a"}), &entries_a(t, 0..=5));
    push(s, json!({"app": "m", "env": "b"}), &entries_b(t));
    s.flush();
    push(s, json!({"app": "m", "env": "a"}), &entries_a(t, 6..=11));
}

/// Line bytes of stream A's lines in `(lo, hi]` seconds after T.
fn bytes_a(lo: i64, hi: i64) -> usize {
    (0..=11)
        .filter(|k| 10 * k > lo && 10 * k <= hi)
        .map(|k| line_a(k).len())
        .sum()
}

#[test]
fn count_rate_bytes_and_window_edges() {
    let s = Server::start();
    let t = base_secs();
    fixture(&s, t);

    // Steps T, T+60, T+120 with [1m]; a window is (t-60s, t].
    // A (every 10 s, k=0..11): (T-60,T]={0} → 1; (T,T+60]={10..60} → 6 (the
    // line at T is on the exclusive lower edge, the one at T+60 on the
    // inclusive upper edge); (T+60,T+120]={70..110} → 5.
    // B (every 15 s, k=0..7): {0} → 1; {15,30,45,60} → 4; {75,90,105} → 3.
    let ms = |d: i64| (t + d) * 1000;
    let v = matrix(&range(
        &s,
        r#"count_over_time({app="m"}[1m])"#,
        t,
        t + 120,
        "60",
    ));
    assert_eq!(
        v,
        vec![
            (
                labels_a(),
                vec![
                    (ms(0), "1".into()),
                    (ms(60), "6".into()),
                    (ms(120), "5".into())
                ]
            ),
            (
                labels_b(),
                vec![
                    (ms(0), "1".into()),
                    (ms(60), "4".into()),
                    (ms(120), "3".into())
                ]
            ),
        ]
    );

    // rate = count / 60 s.
    let v = matrix(&range(
        &s,
        r#"rate({app="m", env="a"}[1m])"#,
        t,
        t + 120,
        "60s",
    ));
    assert_eq!(
        v,
        vec![(
            labels_a(),
            vec![
                (ms(0), fmt(1.0 / 60.0)),
                (ms(60), "0.1".into()),
                (ms(120), fmt(5.0 / 60.0)),
            ]
        )]
    );

    // bytes_over_time / bytes_rate: line lengths of the lines in the window.
    let v = matrix(&range(
        &s,
        r#"bytes_over_time({app="m", env="a"}[1m])"#,
        t,
        t + 120,
        "60",
    ));
    let want: Vec<(i64, String)> = [0, 60, 120]
        .iter()
        .map(|&d| (ms(d), bytes_a(d - 60, d).to_string()))
        .collect();
    // Hand check of one window: lines k=1..6 are 37 bytes each
    // ("level=info k=1 dur=100ms size=1KB v=1").
    assert_eq!(bytes_a(0, 60), 6 * 37);
    assert_eq!(v, vec![(labels_a(), want)]);
    let v = matrix(&range(
        &s,
        r#"bytes_rate({app="m", env="a"}[1m])"#,
        t,
        t + 120,
        "60",
    ));
    let want: Vec<(i64, String)> = [0, 60, 120]
        .iter()
        .map(|&d| (ms(d), fmt(bytes_a(d - 60, d) as f64 / 60.0)))
        .collect();
    assert_eq!(v, vec![(labels_a(), want)]);

    // Instant: the same windows. At T+60: 6 and 4.
    let v = vector(&instant(&s, r#"count_over_time({app="m"}[1m])"#, t + 60));
    assert_eq!(
        v,
        vec![
            (labels_a(), ms(60), "6".to_string()),
            (labels_b(), ms(60), "4".to_string())
        ]
    );
    // A [10s] window at T+60 holds exactly the line at T+60 (the line at
    // T+50 sits on the exclusive edge).
    assert_eq!(
        one(&s, r#"count_over_time({app="m", env="a"}[10s])"#, t + 60).1,
        "1"
    );
    // A [9s] window at T+59 holds nothing: no sample at all.
    assert!(vector(&instant(
        &s,
        r#"count_over_time({app="m", env="a"}[9s])"#,
        t + 59
    ))
    .is_empty());

    // offset 1m at T+120 reads the window (T, T+60], stamped T+120.
    assert_eq!(
        one(
            &s,
            r#"count_over_time({app="m", env="a"}[1m] offset 1m)"#,
            t + 120
        ),
        (labels_a(), "6".to_string())
    );
    let v = matrix(&range(
        &s,
        r#"count_over_time({app="m", env="b"}[1m] offset 1m)"#,
        t + 60,
        t + 180,
        "60",
    ));
    // B shifted by 60 s: T+60 → (T-60,T]=1, T+120 → 4, T+180 → 3.
    assert_eq!(
        v,
        vec![(
            labels_b(),
            vec![
                (ms(60), "1".into()),
                (ms(120), "4".into()),
                (ms(180), "3".into())
            ]
        )]
    );

    // absent_over_time: 1 labelled with the selector's equality matchers
    // when the window is empty, nothing when it is not.
    let v = matrix(&range(
        &s,
        r#"absent_over_time({app="m", env="zzz"}[1m])"#,
        t,
        t + 60,
        "60",
    ));
    assert_eq!(
        v,
        vec![(
            lbl(&[("app", "m"), ("env", "zzz")]),
            vec![(ms(0), "1".into()), (ms(60), "1".into())]
        )]
    );
    // A's last line is at T+110: (T+60,T+120] has 5 lines; (T+120,T+180]
    // and (T+180,T+240] are empty.
    let v = matrix(&range(
        &s,
        r#"absent_over_time({app="m", env="a"}[1m])"#,
        t + 120,
        t + 240,
        "60",
    ));
    assert_eq!(
        v,
        vec![(
            lbl(&[("app", "m"), ("env", "a")]),
            vec![(ms(180), "1".into()), (ms(240), "1".into())]
        )]
    );
    assert!(vector(&instant(
        &s,
        r#"absent_over_time({app="m", env="a"}[1m])"#,
        t + 60
    ))
    .is_empty());

    // Empty ranges: a matrix/vector with no series, not an error.
    let empty = range(
        &s,
        r#"count_over_time({app="m"}[1m])"#,
        t - 3600,
        t - 1800,
        "60",
    );
    assert_eq!(empty["data"]["resultType"], "matrix");
    assert_eq!(empty["data"]["result"], json!([]));
    let empty = instant(&s, r#"count_over_time({app="nope"}[1m])"#, t + 60);
    assert_eq!(empty["data"]["resultType"], "vector");
    assert_eq!(empty["data"]["result"], json!([]));
}

#[test]
fn step_alignment_and_uneven_steps() {
    let s = Server::start();
    let t = base_secs();
    fixture(&s, t);
    let ms = |d: i64| (t + d) * 1000;

    // start=T+5, end=T+100, step=30s: T is a multiple of 60, so the start
    // floors to T and the end ceils to T+120. Steps T..T+120 every 30 s.
    // A [1m]: (T-60,T]={0}=1; (T-30,T+30]={0,10,20,30}=4; (T,T+60]=6;
    // (T+30,T+90]={40..90}=6; (T+60,T+120]={70..110}=5.
    let v = matrix(&range(
        &s,
        r#"count_over_time({app="m", env="a"}[1m])"#,
        t + 5,
        t + 100,
        "30s",
    ));
    assert_eq!(
        v,
        vec![(
            labels_a(),
            vec![
                (ms(0), "1".into()),
                (ms(30), "4".into()),
                (ms(60), "6".into()),
                (ms(90), "6".into()),
                (ms(120), "5".into()),
            ]
        )]
    );

    // A step (25 s) that does not divide the range (1m): windows overlap
    // unevenly. The start floors to a multiple of 25 s; counts come from a
    // model of the (t-60, t] window over A's timestamps.
    let start = t + 3;
    let end = t + 130;
    let first = start.div_euclid(25) * 25;
    let last = if end % 25 == 0 {
        end
    } else {
        end - end % 25 + 25
    };
    let mut want = vec![];
    let mut at = first;
    while at <= last {
        let n = (0..=11)
            .filter(|k| t + 10 * k > at - 60 && t + 10 * k <= at)
            .count();
        if n > 0 {
            want.push((at * 1000, n.to_string()));
        }
        at += 25;
    }
    assert!(want.len() >= 5, "{want:?}");
    let v = matrix(&range(
        &s,
        r#"count_over_time({app="m", env="a"}[1m])"#,
        start,
        end,
        "25",
    ));
    assert_eq!(v, vec![(labels_a(), want)]);

    // A span shorter than the step still widens to whole steps:
    // [T+5, T+10] with step 60 becomes [T, T+60]: A = 1, then 6.
    let v = matrix(&range(
        &s,
        r#"count_over_time({app="m", env="a"}[1m])"#,
        t + 5,
        t + 10,
        "60",
    ));
    assert_eq!(
        v,
        vec![(labels_a(), vec![(ms(0), "1".into()), (ms(60), "6".into())])]
    );
    // Grafana's `step=<N>ms` form: 60000ms is 60 s.
    let v = matrix(&range(
        &s,
        r#"count_over_time({app="m", env="b"}[1m])"#,
        t,
        t + 120,
        "60000ms",
    ));
    assert_eq!(
        v,
        vec![(
            labels_b(),
            vec![
                (ms(0), "1".into()),
                (ms(60), "4".into()),
                (ms(120), "3".into())
            ]
        )]
    );
}

#[test]
fn unwrap_range_functions() {
    let s = Server::start();
    let t = base_secs();
    fixture(&s, t);
    let at = t + 60;
    // (T, T+60] holds A's lines k=1..6: v = 1..6, dur = 100..600 ms,
    // size = 1..6 KB. `logfmt v` extracts only v, so all six lines are one
    // series and `unwrap` removes v from its labels.
    let q = |f: &str| format!(r#"{f}({{app="m", env="a"}} | logfmt v | unwrap v [1m])"#);
    let cases: [(&str, f64); 8] = [
        ("sum_over_time", 21.0),          // 1+2+…+6
        ("avg_over_time", 3.5),           // 21/6
        ("min_over_time", 1.0),           //
        ("max_over_time", 6.0),           //
        ("first_over_time", 1.0),         // the line at T+10
        ("last_over_time", 6.0),          // the line at T+60
        ("rate", 0.35),                   // 21 / 60 s
        ("stdvar_over_time", 17.5 / 6.0), // Σ(v-3.5)² = 2·(6.25+2.25+0.25) = 17.5, /n
    ];
    for (f, want) in cases {
        let (l, val) = one(&s, &q(f), at);
        assert_eq!(l, labels_a(), "{f}");
        assert!(close(&val, want), "{f}: got {val}, want {want}");
    }
    let (_, val) = one(&s, &q("stddev_over_time"), at);
    assert!(close(&val, (17.5f64 / 6.0).sqrt()), "stddev: {val}");
    // quantile: rank φ·(n−1); 0.5 → 2.5 → between 3 and 4 = 3.5;
    // 0.9 → 4.5 → between 5 and 6 = 5.5; 0 → 1; 1 → 6.
    for (phi, want) in [("0.5", "3.5"), ("0.9", "5.5"), ("0", "1"), ("1", "6")] {
        let qq = format!(
            r#"quantile_over_time({phi}, {{app="m", env="a"}} | logfmt v | unwrap v [1m])"#
        );
        assert_eq!(one(&s, &qq, at), (labels_a(), want.to_string()), "{qq}");
    }
    // Grouping inside the range aggregation: max by (env) over both streams.
    let v = vector(&instant(
        &s,
        r#"max_over_time({app="m"} | logfmt v, ctr | unwrap v [1m]) by (env)"#,
        at,
    ));
    // B's lines have no v: Loki skips a line whose unwrapped label is absent
    // (grafana/loki#6713), so only env=a remains, max 6.
    assert_eq!(v, vec![(lbl(&[("env", "a")]), at * 1000, "6".to_string())]);

    // unwrap duration(): seconds. 0.1+…+0.6 = 2.1; max 0.6.
    let (_, val) = one(
        &s,
        r#"sum_over_time({app="m", env="a"} | logfmt dur | unwrap duration(dur) [1m])"#,
        at,
    );
    assert!(close(&val, 2.1), "duration sum {val}");
    assert_eq!(
        one(
            &s,
            r#"max_over_time({app="m", env="a"} | logfmt dur | unwrap duration(dur) [1m])"#,
            at
        ),
        (labels_a(), "0.6".to_string())
    );
    // unwrap bytes(): humanized, KB = 1000. max 6KB = 6000; sum 21000.
    assert_eq!(
        one(
            &s,
            r#"max_over_time({app="m", env="a"} | logfmt size | unwrap bytes(size) [1m])"#,
            at
        )
        .1,
        "6000"
    );
    assert_eq!(
        one(
            &s,
            r#"sum_over_time({app="m", env="a"} | logfmt size | unwrap bytes(size) [1m])"#,
            at
        )
        .1,
        "21000"
    );

    // rate_counter (Prometheus' extrapolated counter rate) on B's counter.
    let rc = r#"rate_counter({app="m", env="b"} | logfmt ctr | unwrap ctr [1m])"#;
    let v = matrix(&range(&s, rc, t, t + 120, "60"));
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].0, labels_b());
    let pts = &v[0].1;
    assert_eq!(pts.len(), 3, "{pts:?}");
    // (T-60,T] holds one sample: too few for a rate, Loki answers 0 (and
    // keeps the point).
    assert_eq!(pts[0], (t * 1000, "0".to_string()));
    let pts = &pts[1..];
    // (T,T+60]: samples at 15,30,45,60 s = 10,20,30,5. Increase 5−10 = −5
    // plus the reset correction 30 → 25. To the start: 15 s (< 1.1 × the 15 s
    // spacing, kept; the zero point 45·10/25 = 18 s is farther), to the end:
    // 0 s. 25 × (45+15)/45 = 33.33…, / 60 s = 0.5555…
    assert_eq!(pts[0].0, (t + 60) * 1000);
    assert!(close(&pts[0].1, 25.0 * 60.0 / 45.0 / 60.0), "{pts:?}");
    // (T+60,T+120]: 75,90,105 s = 15,25,35: increase 20, 15 s to each edge
    // (zero point 30·15/20 = 22.5 s is farther): 20 × 60/30 / 60 = 0.666…
    assert_eq!(pts[1].0, (t + 120) * 1000);
    assert!(close(&pts[1].1, 20.0 * 60.0 / 30.0 / 60.0), "{pts:?}");
}

#[test]
fn conversion_errors_are_pipeline_errors_unless_filtered() {
    let s = Server::start();
    let t = base_secs();
    push(
        &s,
        json!({"app": "bad"}),
        &[
            ((t + 10) * NS, "v=abc".to_string()),
            ((t + 20) * NS, "v=5".to_string()),
            ((t + 30) * NS, "v=7".to_string()),
        ],
    );
    let q = r#"sum_over_time({app="bad"} | logfmt | unwrap v [1m])"#;
    let r = s.get(
        "/loki/api/v1/query",
        &[("query", q), ("time", &(t + 60).to_string())],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body
            .starts_with("pipeline error: 'SampleExtractionErr' for series: '{"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("Use a label filter to intentionally skip this error."),
        "{}",
        r.body
    );
    // The same through query_range.
    let r = s.get(
        "/loki/api/v1/query_range",
        &[
            ("query", q),
            ("start", &t.to_string()),
            ("end", &(t + 60).to_string()),
            ("step", "60"),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.starts_with("pipeline error: 'SampleExtractionErr'"),
        "{}",
        r.body
    );

    // Filtering the error out keeps the two good lines: 5 + 7 = 12. The line
    // "v=5" has no level, so its detected_level is "unknown".
    let (l, val) = one(
        &s,
        r#"sum_over_time({app="bad"} | logfmt | unwrap v | __error__="" [1m])"#,
        t + 60,
    );
    assert_eq!(val, "12");
    assert_eq!(
        l,
        lbl(&[
            ("app", "bad"),
            ("detected_level", "unknown"),
            ("service_name", "bad")
        ])
    );
    // Grouping by __error__ makes the error data instead of a failure: the
    // good lines sum to 12, the errored one ("abc") counts as 0.
    let v = vector(&instant(
        &s,
        r#"sum by (__error__) (sum_over_time({app="bad"} | logfmt | unwrap v [1m]))"#,
        t + 60,
    ));
    assert_eq!(
        v,
        vec![
            (lbl(&[]), (t + 60) * 1000, "12".to_string()),
            (
                lbl(&[("__error__", "SampleExtractionErr")]),
                (t + 60) * 1000,
                "0".to_string()
            ),
        ]
    );
}

#[test]
fn vector_aggregations_sort_and_topk_ties() {
    let s = Server::start();
    let t = base_secs();
    fixture(&s, t);
    let at = t + 60;
    let tms = at * 1000;
    let cot = r#"count_over_time({app="m"}[1m])"#;
    // At T+60: A = 6, B = 4.
    assert_eq!(one(&s, &format!("sum({cot})"), at), (lbl(&[]), "10".into()));
    assert_eq!(
        vector(&instant(&s, &format!("sum by (env) ({cot})"), at)),
        vec![
            (lbl(&[("env", "a")]), tms, "6".into()),
            (lbl(&[("env", "b")]), tms, "4".into())
        ]
    );
    assert_eq!(one(&s, &format!("avg({cot})"), at).1, "5");
    assert_eq!(one(&s, &format!("count({cot})"), at).1, "2");
    assert_eq!(one(&s, &format!("max({cot})"), at).1, "6");
    assert_eq!(one(&s, &format!("min({cot})"), at).1, "4");
    assert_eq!(one(&s, &format!("stddev({cot})"), at).1, "1"); // mean 5, ±1
    assert_eq!(one(&s, &format!("stdvar({cot})"), at).1, "1");
    // A bare range aggregation groups by the full label set, including the
    // detected_level structured metadata.
    assert_eq!(
        vector(&instant(
            &s,
            &format!("sum by (detected_level) ({cot})"),
            at
        )),
        vec![
            (lbl(&[("detected_level", "info")]), tms, "6".into()),
            (lbl(&[("detected_level", "warn")]), tms, "4".into())
        ]
    );
    // sort ascending puts B (4) before A (6), against the label order;
    // sort_desc gives A, B.
    assert_eq!(
        vector(&instant(&s, &format!("sort({cot})"), at)),
        vec![(labels_b(), tms, "4".into()), (labels_a(), tms, "6".into())]
    );
    assert_eq!(
        vector(&instant(&s, &format!("sort_desc({cot})"), at)),
        vec![(labels_a(), tms, "6".into()), (labels_b(), tms, "4".into())]
    );
    assert_eq!(
        vector(&instant(&s, &format!("topk(1, {cot})"), at)),
        vec![(labels_a(), tms, "6".into())]
    );
    assert_eq!(
        vector(&instant(&s, &format!("bottomk(1, {cot})"), at)),
        vec![(labels_b(), tms, "4".into())]
    );

    // Ties: streams x and y have 2 lines in (T, T+60], z has 1.
    for (env, n) in [("x", 2), ("y", 2), ("z", 1)] {
        let e: Vec<(i64, String)> = (0..n)
            .map(|i| ((t + 20 + 10 * i) * NS, format!("level=info tie {i}")))
            .collect();
        push(&s, json!({"app": "t", "env": env}), &e);
    }
    let tie = r#"sum by (env) (count_over_time({app="t"}[1m]))"#;
    // topk(2): both 2s, no ambiguity; instant vectors are sorted by labels.
    assert_eq!(
        vector(&instant(&s, &format!("topk(2, {tie})"), at)),
        vec![
            (lbl(&[("env", "x")]), tms, "2".into()),
            (lbl(&[("env", "y")]), tms, "2".into())
        ]
    );
    // topk(1) with a tie at the top: exactly one of x and y, value 2.
    let v = vector(&instant(&s, &format!("topk(1, {tie})"), at));
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0].0 == lbl(&[("env", "x")]) || v[0].0 == lbl(&[("env", "y")]),
        "{v:?}"
    );
    assert_eq!(v[0].2, "2");
    // bottomk(2): z (1) and one of x/y (2).
    let v = vector(&instant(&s, &format!("bottomk(2, {tie})"), at));
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(
        v.iter()
            .any(|(l, _, val)| l == &lbl(&[("env", "z")]) && val == "1"),
        "{v:?}"
    );
    // topk over a range query keeps the top k at each step separately.
    let v = matrix(&range(&s, &format!("topk(1, {cot})"), t, t + 120, "60"));
    // T: A=1, B=1 tie → one of them; T+60: A; T+120: A (5 > 3).
    let total: usize = v.iter().map(|(_, p)| p.len()).sum();
    assert_eq!(total, 3, "{v:?}");
    let a = v.iter().find(|(l, _)| l == &labels_a()).expect("A in topk");
    assert!(a.1.contains(&((t + 60) * 1000, "6".into())), "{v:?}");
    assert!(a.1.contains(&((t + 120) * 1000, "5".into())), "{v:?}");
}

#[test]
fn binary_operators_and_scalars() {
    let s = Server::start();
    let t = base_secs();
    fixture(&s, t);
    let at = t + 60;
    let tms = at * 1000;
    let cot = r#"count_over_time({app="m"}[1m])"#;
    let cot_a = r#"count_over_time({app="m", env="a"}[1m])"#;
    // At T+60: A = 6, B = 4.
    // Comparison filters; with `bool` it returns 0/1 for every sample.
    assert_eq!(
        vector(&instant(&s, &format!("{cot} > 5"), at)),
        vec![(labels_a(), tms, "6".into())]
    );
    assert_eq!(
        vector(&instant(&s, &format!("{cot} > bool 5"), at)),
        vec![(labels_a(), tms, "1".into()), (labels_b(), tms, "0".into())]
    );
    // With the scalar on the left the kept value is still the sample's:
    // 4 < 6 keeps A with 6; 4 < 4 drops B.
    assert_eq!(
        vector(&instant(&s, &format!("4 < {cot}"), at)),
        vec![(labels_a(), tms, "6".into())]
    );
    assert_eq!(
        vector(&instant(&s, &format!("4 < bool {cot}"), at)),
        vec![(labels_a(), tms, "1".into()), (labels_b(), tms, "0".into())]
    );
    // Arithmetic with a scalar: 6·2+1 = 13, 4·2+1 = 9.
    assert_eq!(
        vector(&instant(&s, &format!("{cot} * 2 + 1"), at)),
        vec![
            (labels_a(), tms, "13".into()),
            (labels_b(), tms, "9".into())
        ]
    );
    // One-to-one `on(env)`: result keeps only the `on` labels. 6·6, 4·4.
    assert_eq!(
        vector(&instant(
            &s,
            &format!("sum by (env) ({cot}) * on (env) sum by (env, app) ({cot})"),
            at
        )),
        vec![
            (lbl(&[("env", "a")]), tms, "36".into()),
            (lbl(&[("env", "b")]), tms, "16".into())
        ]
    );
    // `ignoring(app)`: {env} vs {app, env} match on env; result labels are
    // the left side's minus app. 6−6 = 0, 4−4 = 0.
    assert_eq!(
        vector(&instant(
            &s,
            &format!("sum by (env) ({cot}) - ignoring (app) sum by (env, app) ({cot})"),
            at
        )),
        vec![
            (lbl(&[("env", "a")]), tms, "0".into()),
            (lbl(&[("env", "b")]), tms, "0".into())
        ]
    );
    // group_left: each stream's share of its app's total (10):
    // A 6/10 = 0.6, B 4/10 = 0.4, with the left side's full labels.
    assert_eq!(
        vector(&instant(
            &s,
            &format!("{cot} / on (app) group_left sum by (app) ({cot})"),
            at
        )),
        vec![
            (labels_a(), tms, "0.6".into()),
            (labels_b(), tms, "0.4".into())
        ]
    );
    // group_left(label) copies a label from the one side.
    assert_eq!(
        vector(&instant(
            &s,
            &format!(
                r#"sum by (env) ({cot}) * on (env) group_left (detected_level) max by (env, detected_level) ({cot})"#
            ),
            at
        )),
        vec![
            (
                lbl(&[("detected_level", "info"), ("env", "a")]),
                tms,
                "36".into()
            ),
            (
                lbl(&[("detected_level", "warn"), ("env", "b")]),
                tms,
                "16".into()
            )
        ]
    );
    // Set operators.
    assert_eq!(
        vector(&instant(&s, &format!("{cot} and {cot_a}"), at)),
        vec![(labels_a(), tms, "6".into())]
    );
    assert_eq!(
        vector(&instant(&s, &format!("{cot} unless {cot_a}"), at)),
        vec![(labels_b(), tms, "4".into())]
    );
    assert_eq!(
        vector(&instant(&s, &format!("{cot_a} or {cot}"), at)),
        vec![(labels_a(), tms, "6".into()), (labels_b(), tms, "4".into())]
    );

    // Scalars: a literal-only instant query is a scalar.
    let v = instant(&s, "1+1", at);
    assert_eq!(v["data"]["resultType"], "scalar", "{v}");
    assert_eq!(point(&v["data"]["result"]), (tms, "2".to_string()));
    let v = instant(&s, "2 ^ 3 * 2 - 1", at); // (8·2)−1 = 15
    assert_eq!(point(&v["data"]["result"]), (tms, "15".to_string()));
    // On query_range a literal becomes a matrix: one unlabelled series with
    // the value at every step.
    let v = matrix(&range(&s, "1+1", t, t + 120, "60"));
    assert_eq!(
        v,
        vec![(
            lbl(&[]),
            vec![
                (t * 1000, "2".into()),
                ((t + 60) * 1000, "2".into()),
                ((t + 120) * 1000, "2".into())
            ]
        )]
    );
    // Special values are encoded as Go does: "+Inf", "-Inf", "NaN".
    // Loki guards division by zero: x/0 is NaN, not ±Inf (syntax/ast.go,
    // the OpTypeDiv merger).
    assert_eq!(point(&instant(&s, "1/0", at)["data"]["result"]).1, "NaN");
    assert_eq!(
        point(&instant(&s, "2 ^ 10000", at)["data"]["result"]).1,
        "+Inf"
    );
    assert_eq!(
        point(&instant(&s, "0 - 2 ^ 10000", at)["data"]["result"]).1,
        "-Inf"
    );
    assert_eq!(
        vector(&instant(&s, "vector(0) / 0", at)),
        vec![(lbl(&[]), tms, "NaN".into())]
    );
    assert_eq!(
        one(
            &s,
            r#"quantile_over_time(1.5, {app="m", env="a"} | logfmt v | unwrap v [1m])"#,
            at
        ),
        (labels_a(), "+Inf".into())
    );
    assert_eq!(
        one(
            &s,
            r#"quantile_over_time(1.5, {app="m", env="a"} | logfmt v | unwrap v [1m]) * -1"#,
            at
        ),
        (labels_a(), "-Inf".into())
    );
    // Unlike Prometheus, Loki folds a comparison of two literals at parse
    // time to 0 or 1, with or without `bool` (syntax/ast.go reduceBinOp).
    assert_eq!(point(&instant(&s, "1 > 2", at)["data"]["result"]).1, "0");
    assert_eq!(point(&instant(&s, "2 > 1", at)["data"]["result"]).1, "1");
    assert_eq!(
        point(&instant(&s, "1 > bool 2", at)["data"]["result"]).1,
        "0"
    );
    // vector() on a range query: one series with no labels, every step.
    let v = matrix(&range(&s, "vector(3) / 2", t, t + 120, "60"));
    assert_eq!(
        v,
        vec![(
            lbl(&[]),
            vec![
                (t * 1000, "1.5".into()),
                ((t + 60) * 1000, "1.5".into()),
                ((t + 120) * 1000, "1.5".into())
            ]
        )]
    );
    // A metric query compared with a vector() result.
    assert_eq!(
        vector(&instant(
            &s,
            &format!("sum({cot}) > bool on() vector(9)"),
            at
        )),
        vec![(lbl(&[]), tms, "1".into())]
    );
}

#[test]
fn grafana_health_check_and_log_volume() {
    let s = Server::start();
    // Grafana's CheckHealth: time=4000000000 is 10 digits, so seconds.
    let r = s.get(
        "/loki/api/v1/query",
        &[
            ("direction", "backward"),
            ("query", "vector(1)+vector(1)"),
            ("time", "4000000000"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["resultType"], "vector");
    let res = v["data"]["result"].as_array().expect("result");
    assert_eq!(res.len(), 1, "{v}");
    assert_eq!(res[0]["metric"], json!({}));
    assert_eq!(res[0]["value"], json!([4000000000u64, "2"]));

    // Logs volume: Grafana's supplementary query, sent with limit=1000 and a
    // millisecond step. Stream A says level=info, B level=warn, and a third
    // stream has an indexed level label.
    let t = base_secs();
    fixture(&s, t);
    push(
        &s,
        json!({"app": "m", "env": "c", "level": "error"}),
        &[((t + 30) * NS, "boom".to_string())],
    );
    let q = r#"sum by (level, detected_level) (count_over_time({app="m"} | drop __error__ [1m]))"#;
    let v = s.query_range(
        q,
        &[
            ("start", &(t * NS).to_string()),
            ("end", &((t + 120) * NS).to_string()),
            ("step", "60000ms"),
            ("limit", "1000"),
            ("direction", "backward"),
        ],
    );
    let ms = |d: i64| (t + d) * 1000;
    // The indexed `level` wins as detected_level; A/B from their lines.
    // C: one line at T+30 → only the T+60 window.
    assert_eq!(
        matrix(&v),
        vec![
            (
                lbl(&[("detected_level", "error"), ("level", "error")]),
                vec![(ms(60), "1".into())]
            ),
            (
                lbl(&[("detected_level", "info")]),
                vec![
                    (ms(0), "1".into()),
                    (ms(60), "6".into()),
                    (ms(120), "5".into())
                ]
            ),
            (
                lbl(&[("detected_level", "warn")]),
                vec![
                    (ms(0), "1".into()),
                    (ms(60), "4".into()),
                    (ms(120), "3".into())
                ]
            ),
        ]
    );
}

#[test]
fn request_errors_have_lokis_messages() {
    let s = Server::start();
    let t = base_secs();
    let q = r#"count_over_time({app="m"}[1m])"#;
    // 11,000 points: (end − start) / step = 11001 > 11000.
    let r = s.get(
        "/loki/api/v1/query_range",
        &[
            ("query", q),
            ("start", &t.to_string()),
            ("end", &(t + 11_001).to_string()),
            ("step", "1"),
        ],
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body.trim_end(),
        "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter"
    );
    // Exactly 11,000 is allowed.
    let r = s.get(
        "/loki/api/v1/query_range",
        &[
            ("query", q),
            ("start", &t.to_string()),
            ("end", &(t + 11_000).to_string()),
            ("step", "1"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // `limit` above max_entries_limit_per_query (5000) only limits log
    // queries; a metric query ignores it.
    let r = s.get(
        "/loki/api/v1/query_range",
        &[
            ("query", q),
            ("start", &t.to_string()),
            ("end", &(t + 60).to_string()),
            ("step", "60"),
            ("limit", "10000"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // end < start.
    let r = s.get(
        "/loki/api/v1/query_range",
        &[
            ("query", q),
            ("start", &(t + 60).to_string()),
            ("end", &t.to_string()),
        ],
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body.trim_end(),
        "end timestamp must not be before or equal to start time"
    );
    // Invalid range aggregations are 400s naming the problem.
    for (q, msg) in [
        (
            r#"quantile_over_time(0.5, {app="m"}[1m])"#,
            "invalid aggregation quantile_over_time without unwrap",
        ),
        (
            r#"sum_over_time({app="m"} | logfmt | unwrap v [1m]) by (app)"#,
            "grouping not allowed for sum_over_time aggregation",
        ),
    ] {
        let r = s.get(
            "/loki/api/v1/query",
            &[("query", q), ("time", &t.to_string())],
        );
        assert_eq!(r.status, 400, "{q}: {}", r.body);
        assert!(r.body.contains(msg), "{q}: {}", r.body);
    }
    // A log query on the instant endpoint.
    let r = s.get(
        "/loki/api/v1/query",
        &[("query", r#"{app="m"}"#), ("time", &t.to_string())],
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body.trim_end(),
        "log queries are not supported as an instant query type, please change your query to a range query type"
    );
}

#[test]
fn max_query_series_from_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("miniloki.toml");
    std::fs::write(&cfg, "[query]\nmax_query_series = 2\n").expect("write config");
    let cfg = cfg.to_string_lossy().into_owned();
    let s = Server::start_with(&["--config", &cfg]);
    let t = base_secs();
    for env in ["x", "y", "z"] {
        push(
            &s,
            json!({"app": "s", "env": env}),
            &[((t + 10) * NS, "level=info hello".to_string())],
        );
    }
    let q = r#"count_over_time({app="s"}[1m])"#;
    let want = "maximum number of series (2) reached for a single query; consider reducing query cardinality by adding more specific stream selectors, reducing the time range, or aggregating results with functions like sum(), count() or topk()";
    let r = s.get(
        "/loki/api/v1/query",
        &[("query", q), ("time", &(t + 60).to_string())],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body.trim_end(), want);
    let r = s.get(
        "/loki/api/v1/query_range",
        &[
            ("query", q),
            ("start", &t.to_string()),
            ("end", &(t + 120).to_string()),
            ("step", "60"),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body.trim_end(), want);
    // Aggregated to one series, the query is fine: 3 lines.
    assert_eq!(one(&s, &format!("sum({q})"), t + 60).1, "3");
    // Two series are within the limit.
    let v = vector(&instant(
        &s,
        r#"count_over_time({app="s", env=~"x|y"}[1m])"#,
        t + 60,
    ));
    assert_eq!(v.len(), 2, "{v:?}");
}

#[test]
fn results_identical_across_flush_and_restart() {
    let mut s = Server::start();
    let t = base_secs();
    // All of A and B in the head (no flush yet).
    push(&s, json!({"app": "m", "env": "a"}), &entries_a(t, 0..=11));
    push(&s, json!({"app": "m", "env": "b"}), &entries_b(t));
    let queries = [
        r#"count_over_time({app="m"}[1m])"#,
        r#"sum by (env) (bytes_rate({app="m"}[30s]))"#,
        r#"quantile_over_time(0.5, {app="m", env="a"} | logfmt v | unwrap v [1m])"#,
        r#"rate_counter({app="m", env="b"} | logfmt ctr | unwrap ctr [1m])"#,
        r#"sum by (level, detected_level) (count_over_time({app="m"} | drop __error__ [1m]))"#,
        r#"count_over_time({app="m"}[1m] offset 30s) > bool 3"#,
    ];
    let snapshot = |s: &Server| -> Vec<(Value, Value)> {
        queries
            .iter()
            .map(|q| {
                let r = range(s, q, t, t + 180, "20");
                let i = instant(s, q, t + 60);
                (r["data"]["result"].clone(), i["data"]["result"].clone())
            })
            .collect()
    };
    let before = snapshot(&s);
    // Sanity: the head answers with the hand-computed count at T+60.
    assert_eq!(
        vector(&instant(&s, queries[0], t + 60)),
        vec![
            (labels_a(), (t + 60) * 1000, "6".into()),
            (labels_b(), (t + 60) * 1000, "4".into())
        ]
    );
    for (q, (r, i)) in queries.iter().zip(&before) {
        assert!(
            !r.as_array().is_some_and(|a| a.is_empty()),
            "{q}: empty range result"
        );
        assert!(
            !i.as_array().is_some_and(|a| a.is_empty()),
            "{q}: empty instant result"
        );
    }
    s.flush();
    assert_eq!(snapshot(&s), before, "after flush");
    s.restart_after_kill();
    assert_eq!(snapshot(&s), before, "after restart");
}

/// Prometheus' quantile: sort, rank φ·(n−1), linear interpolation.
fn prom_quantile(phi: f64, mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let rank = phi * (n as f64 - 1.0);
    let lo = rank.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let w = rank - rank.floor();
    v[lo] * (1.0 - w) + v[hi] * w
}

#[test]
fn demo_quantile_by_service_matches_computed() {
    let s = Server::start();
    let t = base_secs();
    let recs = miniloki::demo::generate(11, 400, t * NS, 250_000_000); // 100 s
    let entries: Vec<(i64, String)> = recs.iter().map(|r| (r.ts, r.line.clone())).collect();
    push(&s, json!({"app": "demo"}), &entries);
    let q =
        r#"quantile_over_time(0.95, {app="demo"} | json | unwrap duration_ms [5m]) by (service)"#;
    let at = t + 200; // (T−100, T+200] covers every record.
    let got = vector(&instant(&s, q, at));
    let mut want = vec![];
    for svc in miniloki::demo::SERVICES {
        let d: Vec<f64> = recs
            .iter()
            .filter(|r| r.service == svc)
            .map(|r| r.duration_ms as f64)
            .collect();
        if !d.is_empty() {
            want.push((lbl(&[("service", svc)]), prom_quantile(0.95, d)));
        }
    }
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got.len(), want.len(), "{got:?}");
    for ((gl, gt, gv), (wl, wv)) in got.iter().zip(&want) {
        assert_eq!(gl, wl);
        assert_eq!(*gt, at * 1000);
        assert!(close(gv, *wv), "{wl}: got {gv}, want {wv}");
    }
    // Sanity of the model itself on a hand example: {1,2,3,4,5}, φ=0.4 →
    // rank 1.6 → 2·0.4 + 3·0.6 = 2.6.
    assert!((prom_quantile(0.4, vec![5.0, 1.0, 4.0, 2.0, 3.0]) - 2.6).abs() < 1e-12);
}

#[test]
fn gaps_fractional_times_and_label_shaping() {
    let s = Server::start();
    let t = base_secs();
    fixture(&s, t);
    let ms = |d: i64| (t + d) * 1000;

    // A [10s] range with a 30 s step leaves gaps between windows:
    // (T-10,T]={0}, (T+20,T+30]={30}, (T+50,T+60]={60}, (T+80,T+90]={90},
    // (T+110,T+120]={} (the last line, at T+110, is on the open edge).
    let v = matrix(&range(
        &s,
        r#"count_over_time({app="m", env="a"}[10s])"#,
        t,
        t + 120,
        "30",
    ));
    assert_eq!(
        v,
        vec![(
            labels_a(),
            vec![
                (ms(0), "1".into()),
                (ms(30), "1".into()),
                (ms(60), "1".into()),
                (ms(90), "1".into())
            ]
        )]
    );

    // An instant query at a fractional second: (T+0.5, T+60.5] holds k=1..6,
    // and the sample's time is T+60.5 s, a JSON float.
    let tns = ((t + 60) * NS + 500_000_000).to_string();
    let r = s.get(
        "/loki/api/v1/query",
        &[
            ("query", r#"count_over_time({app="m", env="a"}[1m])"#),
            ("time", &tns),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = vector(&r.json());
    assert_eq!(v, vec![(labels_a(), ms(60) + 500, "6".into())]);

    // bytes_over_time counts the line as the pipeline leaves it: after
    // line_format "xy", six 2-byte lines in (T,T+60].
    assert_eq!(
        one(
            &s,
            r#"bytes_over_time({app="m", env="a"} | line_format "xy" [1m])"#,
            t + 60
        )
        .1,
        "12"
    );
    // Sub-second steps: timestamps are float seconds. [1s] windows at
    // T+10 → (T+9,T+10] = {k=1}, T+10.5 → (T+9.5,T+10.5] = {k=1},
    // T+11 → (T+10,T+11] = {} (no point).
    let v = range(
        &s,
        r#"count_over_time({app="m", env="a"}[1s])"#,
        t + 10,
        t + 11,
        "0.5",
    );
    assert_eq!(
        matrix(&v),
        vec![(
            labels_a(),
            vec![(ms(10), "1".into()), (ms(10) + 500, "1".into())]
        )]
    );
    assert_eq!(
        v["data"]["result"][0]["values"][1][0].as_f64(),
        Some((t + 10) as f64 + 0.5)
    );
    // A line filter: "k=1" matches k=1, 10 and 11; (T,T+120] holds all three.
    assert_eq!(
        one(
            &s,
            r#"count_over_time({app="m", env="a"} |= "k=1" [2m])"#,
            t + 120
        )
        .1,
        "3"
    );
    // `without` drops the named labels from the full label set.
    assert_eq!(
        vector(&instant(
            &s,
            r#"sum without (detected_level, service_name) (count_over_time({app="m"}[1m]))"#,
            t + 60
        )),
        vec![
            (lbl(&[("app", "m"), ("env", "a")]), ms(60), "6".into()),
            (lbl(&[("app", "m"), ("env", "b")]), ms(60), "4".into())
        ]
    );
    // absent_over_time labels come from equality matchers only.
    assert_eq!(
        one(
            &s,
            r#"absent_over_time({app="m", env=~"zz.*"}[1m])"#,
            t + 60
        ),
        (lbl(&[("app", "m")]), "1".into())
    );
    // label_replace: copy env into a new label.
    assert_eq!(
        vector(&instant(
            &s,
            r#"label_replace(sum by (env) (count_over_time({app="m"}[1m])), "e", "x-$1", "env", "(.*)")"#,
            t + 60
        )),
        vec![
            (lbl(&[("e", "x-a"), ("env", "a")]), ms(60), "6".into()),
            (lbl(&[("e", "x-b"), ("env", "b")]), ms(60), "4".into())
        ]
    );
    // Parsed keys that collide with a stream label or a structured-metadata
    // key get the `_extracted` suffix, in metric queries too.
    push(
        &s,
        json!({"app": "c", "env": "prod"}),
        &[(
            (t + 30) * NS,
            "level=info env=dev detected_level=x".to_string(),
        )],
    );
    assert_eq!(
        one(
            &s,
            r#"sum by (env, env_extracted, level, detected_level, detected_level_extracted) (count_over_time({app="c"} | logfmt [1m]))"#,
            t + 60
        ),
        (
            lbl(&[
                ("detected_level", "info"),
                ("detected_level_extracted", "x"),
                ("env", "prod"),
                ("env_extracted", "dev"),
                ("level", "info")
            ]),
            "1".into()
        )
    );
    // quantile_over_time by (env) over a range: only A has v (B's lines are
    // skipped); (T,T+60]: v=1..6 → median 3.5, (T+60,T+120]: 7..11 → 9.
    let v = matrix(&range(
        &s,
        r#"quantile_over_time(0.5, {app="m"} | logfmt v | unwrap v [1m]) by (env)"#,
        t + 60,
        t + 120,
        "60",
    ));
    assert_eq!(
        v,
        vec![(
            lbl(&[("env", "a")]),
            vec![(ms(60), "3.5".into()), (ms(120), "9".into())]
        )]
    );
}

#[test]
fn equal_size_lines_at_one_timestamp_across_a_flush_all_count() {
    let mut s = Server::start();
    let t = base_secs();
    let ts = (t + 10) * NS;
    // Three different 2-byte lines at the same nanosecond: one flushed to a
    // block, two still in the head. None is a duplicate of another.
    push(&s, json!({"app": "d"}), &[(ts, "aa".to_string())]);
    s.flush();
    push(
        &s,
        json!({"app": "d"}),
        &[(ts, "bb".to_string()), (ts, "cc".to_string())],
    );
    let q = r#"sum(count_over_time({app="d"}[1m]))"#;
    let b = r#"sum(bytes_over_time({app="d"}[1m]))"#;
    assert_eq!(one(&s, q, t + 60).1, "3");
    assert_eq!(one(&s, b, t + 60).1, "6");
    // An exact duplicate push is dropped: still 3.
    push(&s, json!({"app": "d"}), &[(ts, "aa".to_string())]);
    assert_eq!(one(&s, q, t + 60).1, "3");
    s.flush();
    assert_eq!(one(&s, q, t + 60).1, "3");
    s.restart_after_kill();
    assert_eq!(one(&s, q, t + 60).1, "3");
    assert_eq!(one(&s, b, t + 60).1, "6");
}

#[test]
fn out_of_order_entries_across_a_flush() {
    let mut s = Server::start();
    let t = base_secs();
    // Pushed newest first, with a flush in between, so a block holds the
    // later samples and the head the earlier ones.
    push(
        &s,
        json!({"app": "o"}),
        &[((t + 40) * NS, "v=4".into()), ((t + 50) * NS, "v=5".into())],
    );
    s.flush();
    push(
        &s,
        json!({"app": "o"}),
        &[((t + 10) * NS, "v=1".into()), ((t + 45) * NS, "v=9".into())],
    );
    push(&s, json!({"app": "o"}), &[((t + 20) * NS, "v=2".into())]);
    let u = |f: &str| format!(r#"{f}({{app="o"}} | logfmt | unwrap v [1m])"#);
    // In time order (T,T+60]: 1@10, 2@20, 4@40, 9@45, 5@50.
    let check = |s: &Server| {
        assert_eq!(one(s, &u("first_over_time"), t + 60).1, "1");
        assert_eq!(one(s, &u("last_over_time"), t + 60).1, "5");
        assert_eq!(one(s, &u("sum_over_time"), t + 60).1, "21");
        assert_eq!(one(s, &u("max_over_time"), t + 60).1, "9");
        // (T+15,T+45]: 2, 4, 9 → first 2, last 9.
        let f = r#"first_over_time({app="o"} | logfmt | unwrap v [30s])"#;
        let l = r#"last_over_time({app="o"} | logfmt | unwrap v [30s])"#;
        assert_eq!(one(s, f, t + 45).1, "2");
        assert_eq!(one(s, l, t + 45).1, "9");
        assert_eq!(
            one(s, r#"sum(count_over_time({app="o"}[1m]))"#, t + 60).1,
            "5"
        );
    };
    check(&s);
    s.flush();
    check(&s);
    s.restart_after_kill();
    check(&s);
}
