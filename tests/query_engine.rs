//! Query engine behaviour that crosses modules: parser hints (as Loki, a
//! metric query that needs no parsed label does not fail on unparsable
//! lines), and the block-level literal filter agreeing with a plain grep
//! over real log lines, from heads and from flushed blocks.

mod common;

use common::{all_values, now_ns, Server};

/// All entries of a result in time order (lines with different
/// `detected_level`s come back as different streams).
fn sorted(v: &serde_json::Value) -> Vec<(i64, String)> {
    let mut all = all_values(v);
    all.sort();
    all
}

/// Compares without printing thousands of lines on failure.
fn same(got: &[(i64, String)], want: &[(i64, String)], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: entry count");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!(
            "{what}: first difference at {i}: got {:?}, want {:?}",
            got[i], want[i]
        );
    }
}
use serde_json::json;

#[test]
fn parser_hints_skip_parsing_when_no_parsed_label_is_needed() {
    let s = Server::start();
    let t = (now_ns() / 60_000_000_000 - 30) * 60_000_000_000;
    // All ten entries inside the window (t, t + 60s] of the step at t + 60s.
    let values: Vec<_> = (1..=10)
        .map(|i| {
            json!([
                (t + i * 1_000_000_000).to_string(),
                format!("plain text line {i}, not json")
            ])
        })
        .collect();
    assert_eq!(
        s.push_json(&json!({"streams": [{"stream": {"app": "hints"}, "values": values}]}))
            .status,
        204
    );
    let range = [
        ("start", t.to_string()),
        ("end", (t + 60_000_000_000).to_string()),
        ("step", "60s".to_string()),
    ];
    let p: Vec<(&str, &str)> = range.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // sum(...) keeps no label: json need not run, so no JSONParserErr.
    let v = s.query_range("sum(count_over_time({app=\"hints\"} | json [1m]))", &p);
    assert_eq!(
        v["data"]["result"][0]["values"],
        json!([[(t + 60_000_000_000) / 1_000_000_000, "10"]]),
        "{}",
        v["data"]["result"]
    );
    // Without an aggregation every label matters: the parser error fails the query, as in Loki.
    let mut q = vec![("query", "count_over_time({app=\"hints\"} | json [1m])")];
    q.extend_from_slice(&p);
    let r = s.get("/loki/api/v1/query_range", &q);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body
            .starts_with("pipeline error: 'JSONParserErr' for series:"),
        "{}",
        r.body
    );
    // Grouping by a label the parser would produce needs the parser.
    let mut q = vec![(
        "query",
        "sum by (x) (count_over_time({app=\"hints\"} | json [1m]))",
    )];
    q.extend_from_slice(&p);
    assert_eq!(s.get("/loki/api/v1/query_range", &q).status, 400);
}

#[test]
fn literal_filters_match_grep_over_real_lines_from_head_and_blocks() {
    let s = Server::start();
    let t = now_ns() - 3_600_000_000_000;
    let text = std::fs::read_to_string("testdata/loghub/OpenSSH_2k.log").unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for (ci, chunk) in lines.chunks(500).enumerate() {
        let values: Vec<_> = chunk
            .iter()
            .enumerate()
            .map(|(i, l)| json!([(t + (ci * 500 + i) as i64 * 1_000_000).to_string(), l]))
            .collect();
        assert_eq!(
            s.push_json(&json!({"streams": [{"stream": {"app": "ssh"}, "values": values}]}))
                .status,
            204
        );
    }
    let check = |phase: &str| {
        for needle in [
            "Failed password",
            "Invalid user",
            "sshd",
            "no such text anywhere",
            "Accepted",
        ] {
            let q = format!("{{app=\"ssh\"}} |= \"{needle}\"");
            let got = sorted(&s.query_range(
                &q,
                &[
                    ("start", &t.to_string()),
                    ("end", &now_ns().to_string()),
                    ("limit", "5000"),
                    ("direction", "forward"),
                ],
            ));
            let want: Vec<(i64, String)> = lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l.contains(needle))
                .map(|(i, l)| (t + i as i64 * 1_000_000, l.to_string()))
                .collect();
            same(&got, &want, &format!("{phase}: {q}"));
            let q = format!("{{app=\"ssh\"}} != \"{needle}\" |= \"sshd\"");
            let got = all_values(&s.query_range(
                &q,
                &[
                    ("start", &t.to_string()),
                    ("end", &now_ns().to_string()),
                    ("limit", "5000"),
                    ("direction", "forward"),
                ],
            ));
            let want = lines
                .iter()
                .filter(|l| !l.contains(needle) && l.contains("sshd"))
                .count();
            assert_eq!(got.len(), want, "{phase}: {q}");
        }
        // limit with backward direction: the newest matches.
        let got = sorted(&s.query_range(
            "{app=\"ssh\"} |= \"Failed\"",
            &[
                ("start", &t.to_string()),
                ("end", &now_ns().to_string()),
                ("limit", "7"),
            ],
        ));
        let mut want: Vec<(i64, String)> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.contains("Failed"))
            .map(|(i, l)| (t + i as i64 * 1_000_000, l.to_string()))
            .rev()
            .take(7)
            .collect();
        want.sort();
        same(&got, &want, &format!("{phase}: backward limit"));
    };
    check("head");
    s.flush();
    check("blocks");
}

#[test]
fn query_timeout_answers_lokis_504() {
    let s = Server::start_with(&["--query-timeout", "0s"]);
    let t = now_ns() - 1_000_000_000;
    assert_eq!(
        s.push_json(
            &json!({"streams": [{"stream": {"app": "slow"}, "values": [[t.to_string(), "x"]]}]})
        )
        .status,
        204
    );
    for q in ["{app=\"slow\"}", "count_over_time({app=\"slow\"}[1m])"] {
        let r = s.get(
            "/loki/api/v1/query_range",
            &[
                ("query", q),
                ("start", &(t - 60_000_000_000).to_string()),
                ("end", &(t + 1).to_string()),
            ],
        );
        assert_eq!(r.status, 504, "{q}: {}", r.body);
        assert!(r.body.starts_with("request timed out, decrease the duration of the request or add more label matchers"), "{}", r.body);
    }
}
