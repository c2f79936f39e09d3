//! `miniloki soak` end to end: a 3-second run at a small rate against a
//! spawned server must push, run every query kind, and report no errors.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::Server;

#[test]
fn short_soak_pushes_and_runs_every_query_kind() {
    let s = Server::start();
    let csv = s.dir.join("soak.csv");
    let pid = s.pid().expect("pid").to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_miniloki"))
        .args(["soak", "--url", &s.url(""), "--duration", "3s"])
        .args(["--report-every", "1s", "--push-rate", "2000"])
        .args(["--connections", "2", "--batch", "100", "--streams", "40"])
        .args(["--query-workers", "2", "--query-interval", "20ms"])
        .args(["--pid", &pid])
        .arg("--corpus")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/loghub"))
        .arg("--data-dir")
        .arg(&s.dir)
        .arg("--csv")
        .arg(&csv)
        .output()
        .expect("run miniloki soak");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "soak failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("no requests failed"), "{stdout}");
    // Three table rows, one per second.
    let rows = stdout.lines().filter(|l| l.starts_with("| 0:0")).count();
    assert_eq!(rows, 3, "{stdout}");

    // kind → (requests, errors, pushed lines/s of the rows) over the run.
    let text = std::fs::read_to_string(&csv).expect("csv");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("elapsed_s,kind,count,errors,lines_per_s,p50_ms,p99_ms,max_ms,rss_mb,data_mb,anon_mb")
    );
    let mut kinds: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut push_rates = vec![];
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(f.len(), 11, "{l}");
        let e = kinds.entry(f[1].to_string()).or_default();
        e.0 += f[2].parse::<u64>().expect("count");
        e.1 += f[3].parse::<u64>().expect("errors");
        if f[1] == "push" {
            push_rates.push(f[4].parse::<f64>().expect("lines/s"));
            // RSS from /proc/<pid>/status and the data dir size are filled in.
            assert!(f[8].parse::<f64>().expect("rss") > 1.0, "{l}");
            f[9].parse::<f64>().expect("data MB");
            assert!(f[10].parse::<f64>().expect("anon") > 1.0, "{l}");
        }
    }
    let names: Vec<&str> = kinds.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "label_values",
            "labels",
            "log_filter",
            "log_regex",
            "metric_instant",
            "metric_range",
            "push",
            "series"
        ]
    );
    for (kind, (count, errors)) in &kinds {
        assert!(*count > 0, "no {kind} request succeeded:\n{stdout}");
        assert_eq!(*errors, 0, "{kind} errors:\n{stdout}");
    }
    // 2,000 lines/s in 100-line batches: 20 pushes a second, 60 in 3 s
    // (a few more or less at the edges; a slow debug server may lag).
    let pushes = kinds["push"].0;
    assert!((40..=64).contains(&pushes), "{pushes} pushes:\n{stdout}");
    assert!(push_rates.iter().all(|r| *r <= 2400.0), "{push_rates:?}");

    // The pushed lines are queryable at "now".
    let r = s.get(
        "/loki/api/v1/query",
        &[("query", r#"sum(count_over_time({job="load"}[1m]))"#)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let n: f64 = v["data"]["result"][0]["value"][1]
        .as_str()
        .expect("a count")
        .parse()
        .expect("number");
    // Pushes still in flight after the last row (at most one per
    // connection) reach the server but not the CSV.
    let n = n as u64;
    assert!(
        (pushes * 100..=(pushes + 2) * 100).contains(&n),
        "{n} lines for {pushes} pushes"
    );
}
