//! Per-tenant limits end to end: the ingestion rate and active-stream
//! limits (429), the query length, lookback, bytes-read and tail limits,
//! overrides per tenant (and their reload), and the limits in `/metrics`.

mod common;

use std::time::{Duration, Instant};

use common::{now_ns, Server};
use serde_json::json;

const S: i64 = 1_000_000_000;
const H: i64 = 3600 * S;

fn push_as(
    s: &Server,
    tenant: &str,
    labels: serde_json::Value,
    entries: &[(i64, &str)],
) -> common::Resp {
    let values: Vec<serde_json::Value> = entries
        .iter()
        .map(|(ts, l)| json!([ts.to_string(), l]))
        .collect();
    let body = json!({"streams": [{"stream": labels, "values": values}]});
    s.post(
        "/loki/api/v1/push",
        "application/json",
        body.to_string().as_bytes(),
        &[("X-Scope-OrgID", tenant)],
    )
}

fn range_as(s: &Server, tenant: &str, query: &str, start: i64, end: i64) -> common::Resp {
    let (start, end) = (start.to_string(), end.to_string());
    s.get_h(
        "/loki/api/v1/query_range",
        &[
            ("query", query),
            ("start", &start),
            ("end", &end),
            ("limit", "1000"),
        ],
        &[("X-Scope-OrgID", tenant)],
    )
}

fn lines_of(r: &common::Resp) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.body);
    let mut out: Vec<String> = r.json()["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
        .map(|v| v[1].as_str().unwrap_or_default().to_string())
        .collect();
    out.sort();
    out
}

fn server_with_config(text: &str) -> (Server, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("miniloki.toml");
    std::fs::write(&cfg, text).expect("write config");
    let s = Server::start_with(&["--auth-enabled", "--config", cfg.to_str().unwrap()]);
    (s, dir, cfg)
}

/// `miniloki_limit` samples from `/metrics` as (kind, name, tenant, value).
fn limit_samples(s: &Server) -> Vec<(String, String, String, f64)> {
    let r = s.get("/metrics", &[]);
    assert_eq!(r.status, 200);
    r.body
        .lines()
        .filter_map(|l| l.strip_prefix("miniloki_limit{"))
        .filter_map(|l| {
            let (labels, value) = l.split_once("} ")?;
            let get = |k: &str| {
                labels
                    .split(',')
                    .find_map(|p| p.strip_prefix(&format!("{k}=")))
                    .map(|v| v.trim_matches('"').to_string())
                    .unwrap_or_default()
            };
            Some((get("kind"), get("name"), get("tenant"), value.parse().ok()?))
        })
        .collect()
}

#[test]
fn ingestion_rate_and_stream_limits_per_tenant() {
    let (s, _dir, _) = server_with_config(
        "[ingest]\nmax_global_streams_per_user = 0\n\
         [overrides.slow]\ningestion_rate_mb = 0.001\ningestion_burst_size_mb = 0.001\n\
         [overrides.few]\nmax_global_streams_per_user = 2\n",
    );
    let now = now_ns();
    // `slow` may push about 1 KiB at once; 2 KiB is refused whole.
    let big = "x".repeat(2048);
    let r = push_as(&s, "slow", json!({"app": "a"}), &[(now, &big)]);
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(
        r.body.trim(),
        "ingestion rate limit exceeded for user slow (limit: 1048 bytes/sec) while attempting to ingest '1' lines totaling '2048' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased"
    );
    // Another tenant has the default (64 MiB/s) and its own bucket.
    assert_eq!(
        push_as(&s, "other", json!({"app": "a"}), &[(now, &big)]).status,
        204
    );

    // `few` may have two streams; a third is refused, known ones still work.
    for app in ["a", "b"] {
        let r = push_as(&s, "few", json!({"app": app}), &[(now, "line")]);
        assert_eq!(r.status, 204, "{}", r.body);
    }
    let r = push_as(&s, "few", json!({"app": "c"}), &[(now, "line")]);
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(
        r.body.starts_with(
            "maximum active stream limit exceeded when trying to create stream {app=\"c\", service_name=\"c\"}"
        ) && r.body.trim().ends_with("user: 'few'"),
        "{}",
        r.body
    );
    assert_eq!(
        push_as(&s, "few", json!({"app": "a"}), &[(now + 1, "again")]).status,
        204
    );
    // The refused stream stored nothing; the accepted ones are readable.
    let r = range_as(&s, "few", "{app=~\".+\"}", now - S, now + S);
    assert_eq!(lines_of(&r), vec!["again", "line", "line"]);
    // Other tenants are not limited to two streams.
    for app in ["a", "b", "c", "d"] {
        assert_eq!(
            push_as(&s, "other", json!({"app": app}), &[(now, "l")]).status,
            204
        );
    }
}

#[test]
fn query_length_limit_default_and_per_tenant() {
    let (s, _dir, _) = server_with_config("[overrides.short]\nmax_query_length = \"1h\"\n");
    let now = now_ns();
    // Loki's default: 721h.
    let r = range_as(&s, "t", "{app=\"a\"}", now - 744 * H, now);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body.trim(),
        "the query time range exceeds the limit (query length: 744h0m0s, limit: 30d1h)"
    );
    assert_eq!(
        range_as(&s, "t", "{app=\"a\"}", now - 720 * H, now).status,
        200
    );
    // Metric queries too, and labels and series requests.
    let r = range_as(
        &s,
        "short",
        "count_over_time({app=\"a\"}[1m])",
        now - 2 * H,
        now,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("(query length: 2h0m0s, limit: 1h)"),
        "{}",
        r.body
    );
    let (st, en) = ((now - 2 * H).to_string(), now.to_string());
    for path in ["/loki/api/v1/labels", "/loki/api/v1/series"] {
        let r = s.get_h(
            path,
            &[("start", &st), ("end", &en)],
            &[("X-Scope-OrgID", "short")],
        );
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(
            r.body.contains("the query time range exceeds the limit"),
            "{}",
            r.body
        );
        let r = s.get_h(
            path,
            &[("start", &st), ("end", &en)],
            &[("X-Scope-OrgID", "t")],
        );
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    // A multi-tenant query takes the smallest limit of its tenants.
    let r = range_as(&s, "t|short", "{app=\"a\"}", now - 2 * H, now);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        range_as(&s, "t|short", "{app=\"a\"}", now - H / 2, now).status,
        200
    );
}

#[test]
fn lookback_limit_cuts_old_data_without_an_error() {
    let (s, _dir, _) = server_with_config("[overrides.recent]\nmax_query_lookback = \"1h\"\n");
    let now = now_ns();
    for t in ["recent", "all"] {
        let r = push_as(
            &s,
            t,
            json!({"app": "a"}),
            &[(now - 2 * H, "old"), (now - 60 * S, "new")],
        );
        assert_eq!(r.status, 204, "{}", r.body);
    }
    assert_eq!(
        lines_of(&range_as(&s, "recent", "{app=\"a\"}", now - 3 * H, now)),
        vec!["new"]
    );
    assert_eq!(
        lines_of(&range_as(&s, "all", "{app=\"a\"}", now - 3 * H, now)),
        vec!["new", "old"]
    );
    // Entirely before the lookback: an empty answer, not an error.
    assert!(lines_of(&range_as(
        &s,
        "recent",
        "{app=\"a\"}",
        now - 3 * H,
        now - 2 * H + S
    ))
    .is_empty());
    let (st, en) = ((now - 3 * H).to_string(), (now - 2 * H + S).to_string());
    let r = s.get_h(
        "/loki/api/v1/labels",
        &[("start", &st), ("end", &en)],
        &[("X-Scope-OrgID", "recent")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Loki leaves out an empty `data`.
    assert_eq!(r.json()["data"], json!(null));
    let r = s.get_h(
        "/loki/api/v1/labels",
        &[("start", &st), ("end", &en)],
        &[("X-Scope-OrgID", "all")],
    );
    assert!(
        r.json()["data"].as_array().is_some_and(|a| !a.is_empty()),
        "{}",
        r.body
    );
}

#[test]
fn bytes_read_limit_counts_what_the_index_says() {
    let (s, _dir, _) = server_with_config("[overrides.frugal]\nmax_query_bytes_read = \"4KiB\"\n");
    let now = now_ns();
    let line = "y".repeat(500);
    let entries: Vec<(i64, &str)> = (0..20)
        .map(|i| (now - 100 * S + i * S, line.as_str()))
        .collect();
    for t in ["frugal", "free"] {
        assert_eq!(push_as(&s, t, json!({"app": "big"}), &entries).status, 204);
        assert_eq!(
            push_as(&s, t, json!({"app": "small"}), &[(now - 10 * S, "tiny")]).status,
            204
        );
    }
    let (st, en) = ((now - H).to_string(), now.to_string());
    let stats = s.get_h(
        "/loki/api/v1/index/stats",
        &[("query", "{app=\"big\"}"), ("start", &st), ("end", &en)],
        &[("X-Scope-OrgID", "frugal")],
    );
    assert_eq!(stats.status, 200, "{}", stats.body);
    let bytes = stats.json()["bytes"].as_u64().expect("bytes");
    assert!(bytes >= 10_000, "{}", stats.body);
    let r = range_as(&s, "frugal", "{app=\"big\"}", now - H, now);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body.trim(),
        format!(
            "the query would read too many bytes (query: {}, limit: 4.0 KiB); consider adding more specific stream selectors or reduce the time range of the query",
            miniloki::units::format_ibytes(bytes)
        )
    );
    // Every selector of a metric query counts, each over its own window.
    let q = "sum(count_over_time({app=\"small\"}[5m])) + sum(count_over_time({app=\"big\"}[5m]))";
    let r = s.get_h(
        "/loki/api/v1/query",
        &[("query", q), ("time", &now.to_string())],
        &[("X-Scope-OrgID", "frugal")],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // A selective query passes; the tenant without the limit reads all.
    assert_eq!(
        lines_of(&range_as(&s, "frugal", "{app=\"small\"}", now - H, now)),
        vec!["tiny"]
    );
    assert_eq!(
        lines_of(&range_as(&s, "free", "{app=\"big\"}", now - H, now)).len(),
        20
    );
}

#[test]
fn overrides_reload_on_sighup_and_show_in_metrics() {
    let (s, _dir, cfg) = server_with_config(
        "[query]\nmax_query_series = 400\n[overrides.a]\nmax_query_series = 2\nmax_line_size = 8\n",
    );
    let m = limit_samples(&s);
    let find = |m: &[(String, String, String, f64)], kind: &str, name: &str, tenant: &str| {
        m.iter()
            .find(|(k, n, t, _)| k == kind && n == name && t == tenant)
            .map(|x| x.3)
    };
    assert_eq!(find(&m, "query", "max_query_series", ""), Some(400.0));
    assert_eq!(find(&m, "query", "max_query_series", "a"), Some(2.0));
    assert_eq!(find(&m, "ingest", "max_line_size", "a"), Some(8.0));
    assert_eq!(find(&m, "ingest", "max_line_size", ""), Some(262144.0));
    assert_eq!(
        find(&m, "query", "max_query_length", ""),
        Some(721.0 * 3600.0)
    );
    // Values equal to the defaults are not repeated per tenant.
    assert_eq!(find(&m, "query", "query_timeout", "a"), None);

    let now = now_ns();
    let r = push_as(&s, "a", json!({"app": "x"}), &[(now, "longer than eight")]);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("max entry size '8' bytes exceeded"),
        "{}",
        r.body
    );

    // Raise tenant a's line limit; a broken file in between is ignored.
    std::fs::write(&cfg, "[overrides.a]\nmax_line_sise = 1\n").unwrap();
    let pid = s.pid().expect("pid") as i32;
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        find(&limit_samples(&s), "ingest", "max_line_size", "a"),
        Some(8.0)
    );
    std::fs::write(&cfg, "[overrides.a]\nmax_line_size = 100\n").unwrap();
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while find(&limit_samples(&s), "ingest", "max_line_size", "a") != Some(100.0) {
        assert!(Instant::now() < deadline, "overrides not reloaded");
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = push_as(&s, "a", json!({"app": "x"}), &[(now, "longer than eight")]);
    assert_eq!(r.status, 204, "{}", r.body);
    // The defaults of the running server stay as started.
    assert_eq!(
        find(&limit_samples(&s), "query", "max_query_series", ""),
        Some(400.0)
    );
    assert_eq!(
        find(&limit_samples(&s), "query", "max_query_series", "a"),
        None
    );
}

#[test]
fn tail_connections_are_limited_per_tenant() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
    let (s, _dir, _) = server_with_config("[overrides.one]\nmax_concurrent_tail_requests = 1\n");
    let url = format!("ws://{}/loki/api/v1/tail?query=%7Bapp%3D%22x%22%7D", s.addr);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let open = |tenant: &'static str| {
            let mut req = url.as_str().into_client_request().expect("request");
            req.headers_mut()
                .insert("X-Scope-OrgID", tenant.parse().unwrap());
            tokio_tungstenite::connect_async(req)
        };
        let (mut first, _) = open("one").await.expect("first tail");
        // Wait for the first tail's ping: it holds its slot by then.
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), first.next())
                .await
                .expect("a frame")
                .expect("open")
                .expect("frame");
            if matches!(msg, Message::Ping(_)) {
                break;
            }
        }
        // The second of tenant `one` is closed with 1011 and Loki's text.
        let (mut second, _) = open("one").await.expect("upgrade");
        let closed = loop {
            match tokio::time::timeout(Duration::from_secs(10), second.next())
                .await
                .expect("a frame")
            {
                Some(Ok(Message::Close(Some(f)))) => break f,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        assert_eq!(u16::from(closed.code), 1011);
        assert_eq!(
            closed.reason.as_str(),
            "max concurrent tail requests limit exceeded, count > limit (2 > 1)"
        );
        // Another tenant (default limit 10) is not affected.
        let (mut other, _) = open("two").await.expect("other tenant");
        let msg = tokio::time::timeout(Duration::from_secs(10), other.next())
            .await
            .expect("a frame")
            .expect("open")
            .expect("frame");
        assert!(!matches!(msg, Message::Close(_)), "{msg:?}");
        // Closing the first frees the slot.
        let _ = first.close(None).await;
        drop(first);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (mut again, _) = open("one").await.expect("upgrade");
            let msg = tokio::time::timeout(Duration::from_secs(10), again.next())
                .await
                .expect("a frame");
            if !matches!(msg, Some(Ok(Message::Close(_)))) {
                break;
            }
            assert!(Instant::now() < deadline, "slot never freed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}
