//! Push validation as Loki does it: each rule answers with Loki's status code
//! and message, a bad stream never disturbs stored data, and the valid part
//! of a request is kept (partial accept).

mod common;

use std::io::Write;

use common::{all_values, now_ns, Server};
use serde_json::json;

/// Everything stored for `{app="base"}`, to compare before and after.
fn baseline(s: &Server, from: i64) -> Vec<(i64, String)> {
    all_values(&s.query_range(
        "{app=\"base\"}",
        &[
            ("start", &from.to_string()),
            ("end", &now_ns().to_string()),
            ("limit", "5000"),
        ],
    ))
}

fn one(app_labels: serde_json::Value, ts: i64, line: &str) -> serde_json::Value {
    json!({"streams": [{"stream": app_labels, "values": [[ts.to_string(), line]]}]})
}

#[test]
fn every_rule_has_lokis_status_and_message_and_stored_data_is_untouched() {
    let s = Server::start();
    let t0 = now_ns() - 60_000_000_000;
    let values: Vec<_> = (0..20)
        .map(|i| json!([(t0 + i).to_string(), format!("base line {i}")]))
        .collect();
    assert_eq!(
        s.push_json(&json!({"streams": [{"stream": {"app": "base"}, "values": values}]}))
            .status,
        204
    );
    let before = baseline(&s, t0 - 1);
    assert_eq!(before.len(), 20);

    let now = now_ns();
    let many: serde_json::Map<String, serde_json::Value> =
        (0..16).map(|i| (format!("l{i:02}"), json!("v"))).collect();
    let long_name = "n".repeat(1025);
    let long_value = "v".repeat(2049);
    let big_line = "x".repeat(256 * 1024 + 1);
    // (what, request, status, expected message fragments)
    let cases: Vec<(&str, serde_json::Value, u16, Vec<String>)> = vec![
        (
            "dotted label name",
            one(json!({"a.b": "x"}), now, "l"),
            400,
            vec!["couldn't parse labels".into()],
        ),
        (
            "too many labels",
            one(serde_json::Value::Object(many), now, "l"),
            400,
            vec![
                "has 16 label names; limit 15".into(),
                "entry for stream '{l00=\"v\"".into(),
            ],
        ),
        (
            "name too long",
            one(json!({"app": "x", long_name.clone(): "v"}), now, "l"),
            400,
            vec![format!("has label name too long: '{long_name}'")],
        ),
        (
            "value too long",
            one(json!({"app": long_value.clone()}), now, "l"),
            400,
            vec![format!("has label value too long: '{long_value}'")],
        ),
        (
            "line too long",
            one(json!({"app": "big"}), now, &big_line),
            400,
            vec![
                "max entry size '262144' bytes exceeded for stream '{app=\"big\"".into(),
                "while adding an entry with length '262145' bytes".into(),
            ],
        ),
        (
            "too new",
            one(json!({"app": "future"}), now + 20 * 60 * 1_000_000_000, "l"),
            400,
            vec![
                "entry for stream '{app=\"future\"".into(),
                "has timestamp too new: ".into(),
            ],
        ),
        (
            "zero streams",
            json!({"streams": []}),
            422,
            vec!["error at least one valid stream is required for ingestion".into()],
        ),
        (
            "numeric timestamp",
            json!({"streams": [{"stream": {"app": "n"}, "values": [[now, "l"]]}]}),
            400,
            vec!["loghttp push".into()],
        ),
    ];
    for (what, body, status, parts) in cases {
        let r = s.push_json(&body);
        assert_eq!(r.status, status, "{what}: {}", r.body);
        for p in &parts {
            assert!(
                r.body.contains(p.as_str()),
                "{what}: {:?} not in {:?}",
                p,
                r.body
            );
        }
        assert!(
            r.header("content-type")
                .unwrap_or("")
                .starts_with("text/plain"),
            "{what}: errors are plain text"
        );
        assert_eq!(baseline(&s, t0 - 1), before, "{what} disturbed stored data");
    }

    // Malformed bodies of every encoding:
    // (what, content type, content encoding, body, expected message part).
    type Bad<'a> = (&'a str, &'a str, Option<&'a str>, Vec<u8>, &'a str);
    let bad: Vec<Bad> = vec![
        (
            "garbage snappy",
            "application/x-protobuf",
            None,
            b"\xff\xff\xff\xff not snappy".to_vec(),
            "snappy",
        ),
        (
            "snappy of garbage protobuf",
            "application/x-protobuf",
            None,
            snap::raw::Encoder::new()
                .compress_vec(b"\x0a\xff\xff\xff\xff\x0f")
                .unwrap(),
            "proto",
        ),
        (
            "broken JSON",
            "application/json",
            None,
            b"{\"streams\": [".to_vec(),
            "loghttp push",
        ),
        (
            "broken gzip",
            "application/json",
            Some("gzip"),
            b"\x1f\x8b not gzip at all".to_vec(),
            "",
        ),
        (
            "unknown encoding",
            "application/json",
            Some("br"),
            b"{}".to_vec(),
            "Content-Encoding \"br\" not supported",
        ),
    ];
    for (what, ct, ce, body, part) in bad {
        let headers: Vec<(&str, &str)> = ce
            .map(|e| vec![("Content-Encoding", e)])
            .unwrap_or_default();
        let r = s.post("/loki/api/v1/push", ct, &body, &headers);
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert!(
            r.body.contains(part),
            "{what}: {part:?} not in {:?}",
            r.body
        );
        assert_eq!(baseline(&s, t0 - 1), before, "{what} disturbed stored data");
    }
}

#[test]
fn empty_label_set_gets_unknown_service_or_is_rejected_without_discovery() {
    // Loki 3 adds service_name="unknown_service" before validating, so `{}`
    // is a valid stream; with discovery off it has no labels at all.
    let s = Server::start();
    let t = now_ns() - 1_000_000_000;
    assert_eq!(s.push_json(&one(json!({}), t, "l")).status, 204);
    let v = s.query_range(
        "{service_name=\"unknown_service\"}",
        &[
            ("start", &(t - 1).to_string()),
            ("end", &(t + 1).to_string()),
        ],
    );
    assert_eq!(all_values(&v), vec![(t, "l".to_string())]);
    let s = Server::start_with(&["--discover-service-name="]);
    let r = s.push_json(&one(json!({}), t, "l"));
    assert_eq!(
        (r.status, r.body.trim()),
        (400, "error at least one label pair is required per stream")
    );
}

#[test]
fn valid_streams_of_a_rejected_request_are_kept() {
    let s = Server::start();
    let t = now_ns() - 1_000_000_000;
    let body = json!({"streams": [
        {"stream": {"app": "good"}, "values": [[t.to_string(), "kept"]]},
        {"stream": {"app": "bad"}, "values": [[t.to_string(), "x".repeat(300 * 1024)]]},
        {"stream": {"app": "good2"}, "values": [[(t + 1).to_string(), "kept too"]]},
    ]});
    let r = s.push_json(&body);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("max entry size"), "{}", r.body);
    let range = [
        ("start", (t - 1).to_string()),
        ("end", (t + 10).to_string()),
    ];
    let p: Vec<(&str, &str)> = range.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        all_values(&s.query_range("{app=\"good\"}", &p)),
        vec![(t, "kept".to_string())]
    );
    assert_eq!(
        all_values(&s.query_range("{app=\"good2\"}", &p)),
        vec![(t + 1, "kept too".to_string())]
    );
    assert!(all_values(&s.query_range("{app=\"bad\"}", &p)).is_empty());
}

#[test]
fn truncation_setting_and_gzip_and_deflate_bodies() {
    let s = Server::start_with(&["--max-line-size", "100", "--max-line-size-truncate"]);
    let t = now_ns() - 1_000_000_000;
    let long = "abcdefghij".repeat(30);
    let body = one(json!({"app": "trunc"}), t, &long).to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(body.as_bytes()).unwrap();
    let r = s.post(
        "/loki/api/v1/push",
        "application/json",
        &gz.finish().unwrap(),
        &[("Content-Encoding", "gzip")],
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let got = all_values(&s.query_range(
        "{app=\"trunc\"}",
        &[
            ("start", &(t - 1).to_string()),
            ("end", &(t + 1).to_string()),
        ],
    ));
    assert_eq!(got.len(), 1);
    assert!(
        got[0].1.len() <= 100 + 20 && got[0].1.starts_with(&long[..90]),
        "truncated to the limit: {:?}",
        got[0].1
    );
    let body = one(json!({"app": "deflate"}), t, "zlib body").to_string();
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(body.as_bytes()).unwrap();
    let r = s.post(
        "/loki/api/v1/push",
        "application/json; charset=utf-8",
        &z.finish().unwrap(),
        &[("Content-Encoding", "deflate")],
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        all_values(&s.query_range(
            "{app=\"deflate\"}",
            &[
                ("start", &(t - 1).to_string()),
                ("end", &(t + 1).to_string())
            ]
        ))
        .len(),
        1
    );
}

#[test]
fn out_of_order_entries_are_accepted_and_exact_duplicates_dropped() {
    let s = Server::start();
    let t = now_ns() - 30 * 60 * 1_000_000_000;
    let push = |vals: Vec<(i64, &str)>| {
        let v: Vec<_> = vals
            .iter()
            .map(|(ts, l)| json!([ts.to_string(), l]))
            .collect();
        assert_eq!(
            s.push_json(&json!({"streams": [{"stream": {"app": "ooo"}, "values": v}]}))
                .status,
            204
        );
    };
    push(vec![(t + 100, "c"), (t + 300, "e")]);
    push(vec![(t + 50, "a"), (t + 200, "d"), (t + 100, "c")]); // (t+100, "c") is an exact duplicate
    push(vec![(t + 100, "c2")]); // same timestamp, other line: kept
    let got = all_values(&s.query_range(
        "{app=\"ooo\"}",
        &[
            ("start", &t.to_string()),
            ("end", &(t + 1000).to_string()),
            ("direction", "forward"),
        ],
    ));
    let want: Vec<(i64, String)> = vec![
        (t + 50, "a"),
        (t + 100, "c"),
        (t + 100, "c2"),
        (t + 200, "d"),
        (t + 300, "e"),
    ]
    .into_iter()
    .map(|(a, b)| (a, b.to_string()))
    .collect();
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, want);
    assert!(
        got.windows(2).all(|w| w[0].0 <= w[1].0),
        "forward order: {got:?}"
    );
}

#[test]
fn reject_old_samples_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("miniloki.toml");
    std::fs::write(
        &cfg,
        "version = 1\n[ingest]\nreject_old_samples = true\nreject_old_samples_max_age = \"1h\"\n",
    )
    .unwrap();
    let s = Server::start_with(&["--config", cfg.to_str().unwrap()]);
    let old = now_ns() - 2 * 3600 * 1_000_000_000;
    let r = s.push_json(&one(json!({"app": "old"}), old, "l"));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("has timestamp too old: ")
            && r.body.contains("oldest acceptable timestamp is: "),
        "{}",
        r.body
    );
    assert_eq!(
        s.push_json(&one(
            json!({"app": "old"}),
            now_ns() - 1_000_000_000,
            "recent"
        ))
        .status,
        204
    );
}
