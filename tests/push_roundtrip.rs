//! Both push encodings round-trip exactly — labels, timestamps to the
//! nanosecond, lines and structured metadata — from the head, after a flush
//! to blocks, after a clean restart and after SIGKILL (WAL replay).

mod common;

use common::{all_values, now_ns, Server};
use serde_json::json;

/// Pushes a fixed set of entries with JSON and protobuf; returns what was
/// pushed as (stream selector value of `app`, ts, line, metadata).
/// (ts, line, structured metadata) of one entry to push.
type Entry = (i64, String, Vec<(String, String)>);

/// (app, ts, line, structured metadata) of one pushed entry.
type Pushed = (String, i64, String, Vec<(String, String)>);

fn push_fixture(s: &Server, base: i64) -> Vec<Pushed> {
    let mut expected = vec![];
    let json_entries: Vec<Entry> = (0..50)
        .map(|i| {
            let ts = base + i * 1_000_003 + 7; // odd nanoseconds on purpose
            let md = if i % 3 == 0 {
                vec![("trace_id".to_string(), format!("t{i:04}"))]
            } else {
                vec![]
            };
            (
                ts,
                format!("json line {i} \"quoted\" \\ tab\tend ünïcode"),
                md,
            )
        })
        .collect();
    let values: Vec<serde_json::Value> = json_entries
        .iter()
        .map(|(ts, line, md)| {
            if md.is_empty() {
                json!([ts.to_string(), line])
            } else {
                let m: serde_json::Map<String, serde_json::Value> =
                    md.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
                json!([ts.to_string(), line, m])
            }
        })
        .collect();
    let r = s.push_json(
        &json!({"streams": [{"stream": {"app": "jsonapp", "env": "dev"}, "values": values}]}),
    );
    assert_eq!(r.status, 204, "json push: {}", r.body);
    for (ts, line, md) in json_entries {
        expected.push(("jsonapp".to_string(), ts, line, md));
    }
    let proto_entries: Vec<Entry> = (0..50)
        .map(|i| {
            let ts = base + 500_000_000 + i * 999_999;
            let md = if i % 2 == 0 {
                vec![
                    ("user".to_string(), format!("u{i}")),
                    ("span_id".to_string(), "abc".to_string()),
                ]
            } else {
                vec![]
            };
            (ts, format!("proto line {i} level=info msg=\"hello\""), md)
        })
        .collect();
    let as_refs: Vec<_> = proto_entries
        .iter()
        .map(|(ts, l, md)| {
            (
                *ts,
                l.as_str(),
                md.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
            )
        })
        .collect();
    let r = s.push_proto(&[("{app=\"protoapp\", env=\"dev\"}", as_refs)]);
    assert_eq!(r.status, 204, "proto push: {}", r.body);
    for (ts, line, md) in proto_entries {
        expected.push(("protoapp".to_string(), ts, line, md));
    }
    expected
}

/// Reads everything back with categorized labels and compares exactly.
fn check_all(s: &Server, base: i64, expected: &[Pushed]) {
    for app in ["jsonapp", "protoapp"] {
        let start = (base - 1_000_000_000).to_string();
        let end = (base + 10_000_000_000).to_string();
        let r = s.get_h(
            "/loki/api/v1/query_range",
            &[
                ("query", &format!("{{app=\"{app}\"}}")),
                ("start", &start),
                ("end", &end),
                ("limit", "1000"),
                ("direction", "forward"),
            ],
            &[("X-Loki-Response-Encoding-Flags", "categorize-labels")],
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert_eq!(v["data"]["resultType"], "streams");
        assert_eq!(v["data"]["encodingFlags"][0], "categorize-labels");
        let result = v["data"]["result"].as_array().unwrap();
        assert_eq!(result.len(), 1, "one stream for {app}: {v}");
        let stream = &result[0]["stream"];
        assert_eq!(stream["app"], app);
        assert_eq!(stream["env"], "dev");
        // Loki 3 adds service_name from the `app` label.
        assert_eq!(stream["service_name"], app);
        let got = result[0]["values"].as_array().unwrap();
        let want: Vec<_> = expected.iter().filter(|e| e.0 == app).collect();
        assert_eq!(got.len(), want.len(), "entry count for {app}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(
                g[0].as_str().unwrap().parse::<i64>().unwrap(),
                w.1,
                "timestamp to the ns"
            );
            assert_eq!(g[1].as_str().unwrap(), w.2, "line");
            let sm = &g[2]["structuredMetadata"];
            for (k, val) in &w.3 {
                assert_eq!(sm[k].as_str(), Some(val.as_str()), "metadata {k} in {g}");
            }
            // Nothing but what was pushed plus detected_level.
            let n = sm
                .as_object()
                .map(|o| o.keys().filter(|k| *k != "detected_level").count())
                .unwrap_or(0);
            assert_eq!(n, w.3.len(), "metadata keys in {g}");
        }
    }
}

#[test]
fn both_encodings_round_trip_through_head_flush_and_restarts() {
    let mut s = Server::start();
    let base = now_ns() - 60_000_000_000;
    let expected = push_fixture(&s, base);
    check_all(&s, base, &expected);

    // From blocks on disk.
    s.flush();
    check_all(&s, base, &expected);

    // A clean restart (SIGTERM flushes), then a kill -9 restart with new
    // data that only the WAL holds.
    assert!(s.terminate(), "clean exit on SIGTERM");
    s.restart_after_kill();
    check_all(&s, base, &expected);
    let base2 = base + 20_000_000_000;
    let expected2 = push_fixture(&s, base2);
    s.restart_after_kill();
    check_all(&s, base2, &expected2);
    check_all(&s, base, &expected);
}

#[test]
fn labels_values_and_series_endpoints() {
    let s = Server::start();
    let t = now_ns() - 10_000_000_000;
    for (app, env) in [("a", "dev"), ("b", "prod"), ("c", "prod")] {
        let r = s.push_json(&json!({"streams": [{"stream": {"app": app, "env": env}, "values": [[t.to_string(), "x"]]}]}));
        assert_eq!(r.status, 204, "{}", r.body);
    }
    let r = s.get("/loki/api/v1/labels", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"], json!(["app", "env", "service_name"]));
    let r = s.get("/loki/api/v1/label/env/values", &[]);
    assert_eq!(r.json()["data"], json!(["dev", "prod"]));
    let r = s.get(
        "/loki/api/v1/label/app/values",
        &[("query", "{env=\"prod\"}")],
    );
    assert_eq!(r.json()["data"], json!(["b", "c"]));
    let r = s.get(
        "/loki/api/v1/series",
        &[("match[]", "{env=\"prod\"}"), ("match[]", "{app=\"a\"}")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let data = r.json()["data"].clone();
    assert_eq!(data.as_array().unwrap().len(), 3, "{data}");
    let r = s.get("/loki/api/v1/series", &[("match", "{app=~\"b|c\"}")]);
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 2);
    // No labels at all in the range: `data` is omitted, as in Loki.
    let r = s.get("/loki/api/v1/label/nope/values", &[]);
    assert_eq!(r.json(), json!({"status": "success"}));
    // Regex and negative matchers.
    let v = s.query_range(
        "{env=~\"pr.*\", app!=\"b\"}",
        &[
            ("start", &(t - 1).to_string()),
            ("end", &(t + 1).to_string()),
        ],
    );
    assert_eq!(all_values(&v).len(), 1);
}

#[test]
fn ready_buildinfo_metrics_and_unknown_paths() {
    let s = Server::start();
    let r = s.get("/ready", &[]);
    assert_eq!((r.status, r.body.trim()), (200, "ready"));
    let r = s.get("/loki/api/v1/status/buildinfo", &[]);
    assert!(r.json()["version"].as_str().unwrap().starts_with('3'));
    let t = now_ns().to_string();
    s.push_json(&json!({"streams": [{"stream": {"app": "m"}, "values": [[t, "hello"]]}]}));
    let r = s.get("/metrics", &[]);
    assert_eq!(r.status, 200);
    assert!(
        r.body
            .contains("miniloki_request_duration_seconds_bucket{route=\"/loki/api/v1/push\""),
        "{}",
        r.body
    );
    let value = |body: &str, name: &str| -> f64 {
        body.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
    };
    assert!(value(&r.body, "miniloki_wal_bytes_written_total ") > 0.0);
    assert!(
        value(&r.body, "miniloki_wal_fsyncs_total ") >= 1.0,
        "a 204 in batch mode waited for an fsync"
    );
    assert!(value(&r.body, "loki_distributor_lines_received_total") >= 1.0);
    assert_eq!(value(&r.body, "miniloki_active_streams "), 1.0);
    assert!(value(&r.body, "process_resident_memory_bytes ") > 0.0);
    // A rejected line is counted by reason.
    let big = "x".repeat(300 * 1024);
    let bad =
        json!({"streams": [{"stream": {"app": "m"}, "values": [[now_ns().to_string(), big]]}]});
    assert_eq!(s.push_json(&bad).status, 400);
    let r = s.get("/metrics", &[]);
    assert!(
        r.body
            .lines()
            .any(|l| l.starts_with("loki_discarded_samples_total") && l.contains("line_too_long")),
        "{}",
        r.body
    );
    let r = s.get("/no/such/path", &[]);
    assert_eq!((r.status, r.body.as_str()), (404, "404 page not found\n"));
}
