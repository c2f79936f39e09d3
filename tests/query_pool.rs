//! The query pool end to end: with `--query-max-concurrent 1`, many
//! parallel queries queue and all answer correctly, while pushes made at
//! the same time all succeed and are readable.

mod common;

use std::sync::Arc;

use common::{now_ns, Server};
use serde_json::json;

const LINES: i64 = 2000;

fn push_fixture(s: &Server, base: i64) {
    for app in ["a", "b", "c"] {
        let values: Vec<serde_json::Value> = (0..LINES)
            .map(|i| {
                let level = if i % 4 == 0 { "error" } else { "info" };
                json!([
                    (base + i * 1_000_000).to_string(),
                    format!("line {i} level={level}")
                ])
            })
            .collect();
        let r = s.push_json(&json!({"streams": [{"stream": {"app": app}, "values": values}]}));
        assert_eq!(r.status, 204, "push: {}", r.body);
    }
}

fn instant_value(s: &Server, query: &str) -> f64 {
    let t = now_ns().to_string();
    let r = s.get("/loki/api/v1/query", &[("query", query), ("time", &t)]);
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    let v = r.json();
    let result = v["data"]["result"].as_array().expect("vector");
    assert_eq!(result.len(), 1, "{query}: {v}");
    result[0]["value"][1]
        .as_str()
        .expect("value")
        .parse()
        .expect("number")
}

#[test]
fn parallel_queries_on_one_worker_all_answer_and_pushes_keep_working() {
    let s = Arc::new(Server::start_with(&["--query-max-concurrent", "1"]));
    let base = now_ns() - 10 * 60 * 1_000_000_000;
    push_fixture(&s, base);
    s.flush();

    let start = (base - 1).to_string();
    let end = now_ns().to_string();
    let mut queriers = Vec::new();
    for q in 0..12 {
        let (s, start, end) = (s.clone(), start.clone(), end.clone());
        queriers.push(std::thread::spawn(move || {
            for _ in 0..3 {
                // Every 4th line of 3 × 2000 is an error.
                let n = instant_value(
                    &s,
                    r#"sum(count_over_time({app=~"a|b|c"} |= "level=error" [1h]))"#,
                );
                assert_eq!(n, 1500.0, "querier {q}");
                // Lines whose number starts with 1: 1, 10-19, 100-199,
                // 1000-1999.
                let v = s.query_range(
                    r#"{app="b"} |= "line 1""#,
                    &[("start", &start), ("end", &end), ("limit", "5000")],
                );
                let got: usize = v["data"]["result"]
                    .as_array()
                    .expect("streams")
                    .iter()
                    .map(|st| st["values"].as_array().map_or(0, Vec::len))
                    .sum();
                assert_eq!(got, 1 + 10 + 100 + 1000, "querier {q}");
                let r = s.get("/loki/api/v1/labels", &[]);
                assert_eq!(r.status, 200, "labels: {}", r.body);
                assert!(r.body.contains("\"app\""), "{}", r.body);
            }
        }));
    }
    // Pushes while the queries queue: every one is accepted.
    let live_base = now_ns() - 60 * 1_000_000_000;
    for batch in 0..50i64 {
        let values: Vec<serde_json::Value> = (0..10i64)
            .map(|i| {
                json!([
                    (live_base + (batch * 10 + i) * 1_000).to_string(),
                    format!("live {batch} {i}")
                ])
            })
            .collect();
        let r = s.push_json(&json!({"streams": [{"stream": {"app": "live"}, "values": values}]}));
        assert_eq!(r.status, 204, "push during queries: {}", r.body);
    }
    for q in queriers {
        q.join().expect("querier panicked");
    }
    assert_eq!(
        instant_value(&s, r#"sum(count_over_time({app="live"}[1h]))"#),
        500.0
    );

    // A worker counts itself idle just after answering: give it a moment.
    let mut m = s.get("/metrics", &[]).body;
    for _ in 0..100 {
        if m.contains("\nminiloki_queries_running 0\n") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        m = s.get("/metrics", &[]).body;
    }
    assert!(
        m.contains(
            "\nminiloki_limit{kind=\"server\",name=\"query_max_concurrent\",tenant=\"\"} 1\n"
        ),
        "{m}"
    );
    assert!(m.contains("\nminiloki_queries_running 0\n"), "{m}");
    assert!(m.contains("\nminiloki_query_queue_length 0\n"), "{m}");
    assert!(m.contains("\nminiloki_query_rejected_total 0\n"), "{m}");
    // 12 × 3 × 3 requests plus the last count all went through the pool.
    let waited: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("miniloki_query_queue_wait_seconds_count "))
        .expect("wait histogram")
        .parse()
        .expect("count");
    assert_eq!(waited, 12 * 3 * 3 + 1);
}
