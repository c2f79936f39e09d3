//! Grafana drop-in: replays, against the real binary, the requests Grafana's
//! Loki datasource and the Logs Drilldown app send when a user saves the
//! datasource, opens Explore, picks a label, runs a log query with the
//! log-volume histogram, opens log details and log context, runs a metric
//! query and starts live tail — with Grafana's own parameter spellings
//! (ns, seconds and ISO times, `step=<N>ms`) and headers — and checks each
//! response against the shape Grafana parses. Expected values are computed
//! here from the records pushed (`miniloki::demo::generate`).
//!
//! Grafana sources cited per check: `pkg/tsdb/loki/healthcheck.go`,
//! `pkg/tsdb/loki/api.go` (`makeDataRequest`, `RawQuery`),
//! `pkg/promlib/converter/prom.go` (response reader), `public/app/plugins/
//! datasource/loki/{datasource.ts, LanguageProvider.ts, LogContextProvider.ts,
//! shardQuerySplitting.ts, LiveStreams.ts}`, and Logs Drilldown's
//! `src/services/datasource.ts`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{now_ns, Resp, Server};
use miniloki::demo::{generate, DemoRecord};
use serde_json::{json, Value};

const SEC: i64 = 1_000_000_000;

/// Headers Grafana's backend sends on data queries (`api.go`): the
/// categorize flag (toggle `lokiStructuredMetadata`), the supporting-query
/// tag, and Grafana's own forwarded headers, which Loki ignores.
fn grafana_headers(source: &str) -> Vec<(&'static str, String)> {
    let mut h = vec![
        (
            "X-Loki-Response-Encoding-Flags",
            "categorize-labels".to_string(),
        ),
        ("X-Grafana-Org-Id", "1".to_string()),
        ("X-Grafana-Id", "eyJhbGciOiJFUzI1NiJ9.e30.sig".to_string()),
        ("User-Agent", "Grafana/12.1.0".to_string()),
    ];
    if !source.is_empty() {
        h.push(("X-Query-Tags", format!("Source={source}")));
    }
    h
}

fn get(s: &Server, path: &str, params: &[(&str, &str)], headers: &[(&str, String)]) -> Resp {
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    s.get_h(path, params, &h)
}

fn ok_json(r: &Resp, what: &str) -> Value {
    assert_eq!(r.status, 200, "{what}: {}", r.body);
    r.json()
}

/// RFC3339 with milliseconds and `Z`, as JavaScript's `toISOString` writes
/// (what Logs Drilldown sends as `start`/`end`).
fn iso(ns: i64) -> String {
    chrono::DateTime::from_timestamp(ns.div_euclid(SEC), ns.rem_euclid(SEC) as u32)
        .expect("valid time")
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The fixture: `N` demo records one second apart ending ~3 minutes ago,
/// pushed as one stream per service `{app="shop", service="<svc>"}`
/// (so the server adds `service_name`), with `trace_id`/`span_id` as
/// structured metadata. Timestamps are whole milliseconds, as Grafana's
/// log context (which works in ms) requires to find the row again.
struct Fixture {
    server: Server,
    records: Vec<DemoRecord>,
    /// Query window covering every record, ns.
    start: i64,
    end: i64,
}

const N: usize = 400;

fn fixture() -> Fixture {
    let server = Server::start();
    let now_ms = now_ns() / 1_000_000 * 1_000_000;
    let base = now_ms - 10 * 60 * SEC;
    let records = generate(7, N, base, SEC);
    let mut streams = vec![];
    for svc in miniloki::demo::SERVICES {
        let values: Vec<Value> = records
            .iter()
            .filter(|r| r.service == svc)
            .map(|r| {
                json!([r.ts.to_string(), r.line, {"trace_id": r.trace_id, "span_id": r.span_id}])
            })
            .collect();
        streams.push(json!({"stream": {"app": "shop", "service": svc}, "values": values}));
    }
    let r = server.push_json(&json!({ "streams": streams }));
    assert_eq!(r.status, 204, "push: {}", r.body);
    Fixture {
        server,
        records,
        start: base - 60 * SEC,
        end: now_ns(),
    }
}

fn count_by<'a>(
    records: impl Iterator<Item = &'a DemoRecord>,
    key: fn(&DemoRecord) -> &str,
) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for r in records {
        *m.entry(key(r).to_string()).or_insert(0) += 1;
    }
    m
}

/// "Save & test" (`pkg/tsdb/loki/healthcheck.go`): an instant query
/// `vector(1)+vector(1)` at `time=4000000000` (10 digits: seconds) that
/// must come back as one frame with one row whose value is 2.
#[test]
fn health_check_query() {
    let s = Server::start();
    let r = get(
        &s,
        "/loki/api/v1/query",
        &[
            ("direction", "backward"),
            ("query", "vector(1)+vector(1)"),
            ("time", "4000000000"),
        ],
        &grafana_headers(""),
    );
    let v = ok_json(&r, "health check");
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["resultType"], "vector");
    let result = v["data"]["result"].as_array().expect("result");
    assert_eq!(result.len(), 1, "{v}");
    assert_eq!(result[0]["value"][1], "2");
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=UTF-8")
    );
    // 4000000000 has 10 digits, so it is read as seconds (Loki's parseTimestamp).
    assert_eq!(result[0]["value"][0].as_f64(), Some(4_000_000_000.0));
    // The older health check (`health.go`): labels over the last 10 minutes.
    let now = now_ns();
    let r = s.get(
        "/loki/api/v1/labels",
        &[
            ("start", &(now - 600 * SEC).to_string()),
            ("end", &now.to_string()),
        ],
    );
    assert_eq!(ok_json(&r, "labels")["status"], "success");

    // A typo in Explore: a 400 whose plain-text body Grafana shows as is
    // (`api.go` `makeLokiError` falls back to the raw text).
    let r = get(
        &s,
        "/loki/api/v1/query_range",
        &[
            ("query", "{app=\"shop\""),
            ("direction", "backward"),
            ("limit", "1000"),
            ("start", &(now - 3600 * SEC).to_string()),
            ("end", &now.to_string()),
            ("step", "15000ms"),
        ],
        &grafana_headers(""),
    );
    assert_eq!(r.status, 400);
    assert!(r.body.starts_with("parse error"), "{}", r.body);
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain")));
}

/// Explore's label browser and autocomplete (`LanguageProvider.ts`), the
/// query-size estimate (`datasource.ts` `getQueryStats`), shard splitting's
/// probe (`shardQuerySplitting.ts`) and Drilldown's metadata calls
/// (`logs-drilldown/src/services/datasource.ts`).
#[test]
fn explore_metadata_and_drilldown_endpoints() {
    let f = fixture();
    let s = &f.server;
    let (start, end) = (f.start.to_string(), f.end.to_string());
    let h = grafana_headers("");
    let per_service = count_by(f.records.iter(), |r| r.service);

    // LanguageProvider.start(): probes detected_labels with ns times.
    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/detected_labels",
            &[("start", &start), ("end", &end)],
            &h,
        ),
        "detected_labels",
    );
    let dl: BTreeMap<String, u64> = v["detectedLabels"]
        .as_array()
        .expect("detectedLabels array")
        .iter()
        .map(|l| {
            (
                l["label"].as_str().expect("label").to_string(),
                l["cardinality"].as_u64().expect("cardinality"),
            )
        })
        .collect();
    assert_eq!(dl.get("app"), Some(&1), "{v}");
    assert_eq!(dl.get("service"), Some(&4), "{v}");
    assert_eq!(dl.get("service_name"), Some(&4), "{v}");
    assert!(
        !dl.contains_key("trace_id"),
        "structured metadata is not a label: {v}"
    );

    // Fallback label browser: labels and values, with and without `query`.
    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/labels",
            &[("start", &start), ("end", &end)],
            &h,
        ),
        "labels",
    );
    assert_eq!(v["data"], json!(["app", "service", "service_name"]));
    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/label/service_name/values",
            &[
                ("start", &start),
                ("end", &end),
                ("query", "{app=\"shop\"}"),
            ],
            &h,
        ),
        "label values",
    );
    let mut services: Vec<&str> = miniloki::demo::SERVICES.to_vec();
    services.sort();
    assert_eq!(v["data"], json!(services));
    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/labels",
            &[
                ("start", &start),
                ("end", &end),
                ("query", "{service=\"payment\"}"),
            ],
            &h,
        ),
        "labels with query",
    );
    assert_eq!(v["data"], json!(["app", "service", "service_name"]));

    // Shard splitting: an empty `__stream_shard__` list (no `data`, or an
    // empty one) makes Grafana fall back to one plain query.
    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/label/__stream_shard__/values",
            &[
                ("query", "{app=\"shop\"}"),
                ("start", &start),
                ("end", &end),
            ],
            &h,
        ),
        "__stream_shard__ values",
    );
    assert_eq!(v["status"], "success");
    assert!(
        v.get("data")
            .is_none_or(|d| d.as_array().is_some_and(|a| a.is_empty())),
        "{v}"
    );

    // Query-size estimate: a bare object (no envelope).
    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/index/stats",
            &[
                ("query", "{app=\"shop\"}"),
                ("start", &start),
                ("end", &end),
            ],
            &h,
        ),
        "index/stats",
    );
    let line_bytes: u64 = f.records.iter().map(|r| r.line.len() as u64).sum();
    assert_eq!(v["streams"], 4, "{v}");
    assert_eq!(v["entries"].as_u64(), Some(N as u64), "{v}");
    assert!(v["bytes"].as_u64().unwrap_or(0) >= line_bytes, "{v}");
    assert!(v["chunks"].as_u64().is_some(), "{v}");

    // Drilldown's service list: index/volume with ISO times and limit=5000;
    // it reads `metric.service_name` and `value[1]` (line bytes).
    let drill = [("X-Query-Tags", "Source=grafana-lokiexplore-app".to_string())];
    let (istart, iend) = (iso(f.start), iso(f.end));
    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/index/volume",
            &[
                ("query", "{service_name=~\".+\"}"),
                ("start", &istart),
                ("end", &iend),
                ("limit", "5000"),
            ],
            &drill,
        ),
        "index/volume",
    );
    assert_eq!(v["data"]["resultType"], "vector");
    let mut bytes_per_service: BTreeMap<String, u64> = BTreeMap::new();
    for r in &f.records {
        *bytes_per_service.entry(r.service.to_string()).or_default() += r.line.len() as u64;
    }
    let got: BTreeMap<String, u64> = v["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|e| {
            (
                e["metric"]["service_name"]
                    .as_str()
                    .expect("service_name")
                    .to_string(),
                e["value"][1]
                    .as_str()
                    .expect("value string")
                    .parse()
                    .expect("int"),
            )
        })
        .collect();
    assert_eq!(got, bytes_per_service);

    // index/volume_range: the same totals spread over steps.
    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/index/volume_range",
            &[
                ("query", "{service_name=~\".+\"}"),
                ("start", &istart),
                ("end", &iend),
                ("step", "60s"),
                ("limit", "5000"),
            ],
            &drill,
        ),
        "index/volume_range",
    );
    assert_eq!(v["data"]["resultType"], "matrix");
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for series in v["data"]["result"].as_array().expect("result") {
        let svc = series["metric"]["service_name"]
            .as_str()
            .expect("service_name");
        for p in series["values"].as_array().expect("values") {
            assert!(p[0].is_number(), "timestamp is a number: {p}");
            *got.entry(svc.to_string()).or_default() +=
                p[1].as_str().expect("value").parse::<u64>().expect("int");
        }
    }
    assert_eq!(got, bytes_per_service);

    // detected_fields (LanguageProvider / Drilldown): structured metadata has
    // `"parsers": null`; json fields name the parser and carry a jsonPath
    // array.
    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/detected_fields",
            &[
                ("query", "{service_name=\"order\"}"),
                ("start", &start),
                ("end", &end),
                ("limit", "1000"),
            ],
            &h,
        ),
        "detected_fields",
    );
    assert_eq!(v["limit"], 1000);
    let fields: BTreeMap<String, Value> = v["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| (f["label"].as_str().expect("label").to_string(), f.clone()))
        .collect();
    // `detected_level` exists only as structured metadata (added at
    // ingestion): parsers null. `span_id` is structured metadata *and* in
    // the JSON line, so Loki's `ParseDetectedFields` reports ["json"].
    let order: Vec<&DemoRecord> = f.records.iter().filter(|r| r.service == "order").collect();
    let dl = &fields["detected_level"];
    assert!(dl["parsers"].is_null(), "structured metadata only: {dl}");
    assert!(dl.get("jsonPath").is_none(), "{dl}");
    let levels: BTreeSet<&str> = order.iter().map(|r| r.level).collect();
    assert_eq!(
        dl["cardinality"].as_u64(),
        Some(levels.len() as u64),
        "{dl}"
    );
    let span = &fields["span_id"];
    assert_eq!(span["parsers"], json!(["json"]), "{span}");
    assert_eq!(
        span["cardinality"].as_u64(),
        Some(order.len() as u64),
        "{span}"
    );
    // The line's "service" clashes with the indexed label `service`: Loki's
    // json parser names it `service_extracted` (path still ["service"]).
    let se = &fields["service_extracted"];
    assert_eq!(se["parsers"], json!(["json"]), "{se}");
    assert_eq!(se["jsonPath"], json!(["service"]), "{se}");
    assert_eq!(se["cardinality"], 1, "{se}");
    assert!(
        !fields.contains_key("service"),
        "indexed labels are not fields"
    );
    let dur = &fields["duration_ms"];
    assert_eq!(dur["parsers"], json!(["json"]), "{dur}");
    assert_eq!(dur["jsonPath"], json!(["duration_ms"]), "{dur}");
    assert_eq!(dur["type"], "int", "{dur}");
    let ev = &fields["event"];
    assert_eq!(ev["parsers"], json!(["json"]), "{ev}");
    assert_eq!(ev["type"], "string");
    let events: BTreeSet<&str> = order.iter().map(|r| r.event).collect();
    assert_eq!(
        ev["cardinality"].as_u64(),
        Some(events.len() as u64),
        "{ev}"
    );

    // detected_field/<name>/values: the distinct values seen.
    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/detected_field/event/values",
            &[
                ("query", "{service_name=\"order\"}"),
                ("start", &start),
                ("end", &end),
                ("limit", "1000"),
            ],
            &h,
        ),
        "detected_field values",
    );
    assert_eq!(v["values"], json!(events.iter().collect::<Vec<_>>()));

    // patterns (Drilldown's Patterns tab, ISO times and `step`): non-empty
    // for repetitive data; every line is in exactly one pattern, so the
    // sample counts add up to the number of lines.
    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/patterns",
            &[
                ("query", "{service_name=\"order\"}"),
                ("start", &istart),
                ("end", &iend),
                ("step", "60s"),
            ],
            &drill,
        ),
        "patterns",
    );
    assert_eq!(v["status"], "success");
    let pats = v["data"].as_array().expect("data");
    assert!(!pats.is_empty(), "{v}");
    assert!(
        pats.len() < order.len(),
        "lines were grouped: {}",
        pats.len()
    );
    let mut total = 0;
    for p in pats {
        assert!(p["pattern"].as_str().is_some_and(|s| !s.is_empty()), "{p}");
        // Drilldown colours patterns by level: one of the lines' levels.
        let lvl = p["level"].as_str().expect("level");
        assert!(order.iter().any(|r| r.level == lvl), "{p}");
        for smp in p["samples"].as_array().expect("samples") {
            assert!(smp[0].is_i64(), "integer seconds: {smp}");
            total += smp[1].as_u64().expect("integer count");
        }
    }
    assert_eq!(total, order.len() as u64);

    // drilldown-limits: read for feature flags.
    let v = ok_json(
        &get(s, "/loki/api/v1/drilldown-limits", &[], &drill),
        "drilldown-limits",
    );
    assert!(v["limits"].is_object(), "{v}");
    assert!(v["pattern_ingester_enabled"].is_boolean(), "{v}");
    assert!(v["version"].is_string(), "{v}");
    // index/stats per selector, as `getQueryStats` sends one per selector.
    for (svc, n) in &per_service {
        let q = format!("{{service=\"{svc}\"}}");
        let v = ok_json(
            &get(
                s,
                "/loki/api/v1/index/stats",
                &[("query", &q), ("start", &start), ("end", &end)],
                &h,
            ),
            "index/stats per service",
        );
        assert_eq!(v["streams"], 1, "{v}");
        assert_eq!(v["entries"].as_u64(), Some(*n), "{svc}: {v}");
    }
}

/// Common query_range parameters as `makeDataRequest` (`api.go`) builds them.
fn range_params<'a>(
    query: &'a str,
    direction: &'a str,
    limit: &'a str,
    start: &'a str,
    end: &'a str,
    step: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("query", query),
        ("direction", direction),
        ("limit", limit),
        ("start", start),
        ("end", end),
        ("step", step),
    ]
}

/// Explore's log query, log details, context, volume histogram and metric
/// queries, all through Grafana's backend (`api.go`, `prom.go`).
#[test]
fn explore_log_and_metric_queries() {
    let f = fixture();
    let s = &f.server;
    let (start, end) = (f.start.to_string(), f.end.to_string());
    let order: Vec<&DemoRecord> = f.records.iter().filter(|r| r.service == "order").collect();
    let q = "{service_name=\"order\"}";

    // Categorized (lokiStructuredMetadata): `encodingFlags` precedes
    // `result` in the raw text (prom.go reads it first), `stream` holds only
    // indexed labels, every value is [ts, line, {structuredMetadata,...}].
    let r = get(
        s,
        "/loki/api/v1/query_range",
        &range_params(q, "backward", "1000", &start, &end, "2000ms"),
        &grafana_headers(""),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let flags_at = r.body.find("\"encodingFlags\"").expect("encodingFlags");
    let result_at = r.body.find("\"result\"").expect("result");
    assert!(
        flags_at < result_at,
        "encodingFlags must come before result"
    );
    let v = r.json();
    assert_eq!(v["data"]["resultType"], "streams");
    assert_eq!(v["data"]["encodingFlags"], json!(["categorize-labels"]));
    let streams = v["data"]["result"].as_array().expect("result");
    assert_eq!(streams.len(), 1, "one indexed stream");
    assert_eq!(
        streams[0]["stream"],
        json!({"app": "shop", "service": "order", "service_name": "order"})
    );
    let values = streams[0]["values"].as_array().expect("values");
    assert_eq!(values.len(), order.len());
    // Backward: newest first.
    for (val, rec) in values.iter().zip(order.iter().rev()) {
        let tuple = val.as_array().expect("tuple");
        assert_eq!(tuple.len(), 3, "categorized 3-tuple: {val}");
        assert_eq!(tuple[0], rec.ts.to_string());
        assert_eq!(tuple[1], rec.line);
        let sm = &tuple[2]["structuredMetadata"];
        assert_eq!(sm["trace_id"], rec.trace_id, "{val}");
        assert_eq!(sm["span_id"], rec.span_id, "{val}");
        // Level detection from the JSON `level` field (Loki's distributor).
        assert_eq!(sm["detected_level"], rec.level, "{val}");
        assert!(
            tuple[2].get("parsed").is_none(),
            "no parser, no parsed: {val}"
        );
    }
    // Grafana copies `stats` into frame meta; Explore shows "Summary: total
    // bytes processed" and query splitting adds up "Summary: exec time"
    // (`pkg/tsdb/loki/frame.go`). Every leaf must be a number.
    let summary = &v["data"]["stats"]["summary"];
    assert_eq!(
        summary["totalEntriesReturned"].as_u64(),
        Some(order.len() as u64),
        "{summary}"
    );
    for key in [
        "bytesProcessedPerSecond",
        "linesProcessedPerSecond",
        "totalBytesProcessed",
        "totalLinesProcessed",
        "execTime",
        "queueTime",
    ] {
        assert!(summary[key].is_number(), "{key} in {summary}");
    }
    let lines_bytes: u64 = order.iter().map(|r| r.line.len() as u64).sum();
    assert!(
        summary["totalBytesProcessed"].as_u64().unwrap_or(0) >= lines_bytes,
        "{summary}"
    );

    // With a parser the parsed labels are categorized too.
    let qj = "{service_name=\"order\"} | json";
    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/query_range",
            &range_params(qj, "backward", "5", &start, &end, "2000ms"),
            &grafana_headers(""),
        ),
        "json query",
    );
    let first = &v["data"]["result"][0]["values"][0];
    let newest = order.last().expect("order records");
    assert_eq!(first[2]["parsed"]["event"], newest.event, "{first}");
    // The line's "service" clashes with the indexed label: Loki renames the
    // parsed one `service_extracted` (`pkg/logql/log/parser.go`).
    assert_eq!(first[2]["parsed"]["service_extracted"], "order", "{first}");
    assert!(first[2]["parsed"].get("service").is_none(), "{first}");
    assert_eq!(
        first[2]["parsed"]["duration_ms"],
        newest.duration_ms.to_string(),
        "{first}"
    );

    // Uncategorized (toggle off): 2-tuples, every label merged into
    // `stream`, so each distinct trace_id is its own result stream.
    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/query_range",
            &range_params(q, "backward", "1000", &start, &end, "2000ms"),
            &[("X-Query-Tags", "Source=infinitescroll".to_string())],
        ),
        "uncategorized",
    );
    assert!(v["data"].get("encodingFlags").is_none(), "{}", v["data"]);
    let streams = v["data"]["result"].as_array().expect("result");
    assert_eq!(streams.len(), order.len());
    let by_trace: BTreeMap<&str, &&DemoRecord> =
        order.iter().map(|r| (r.trace_id.as_str(), r)).collect();
    for st in streams {
        let labels = &st["stream"];
        let rec = by_trace[labels["trace_id"].as_str().expect("trace_id label")];
        assert_eq!(labels["service_name"], "order");
        assert_eq!(labels["span_id"], rec.span_id);
        assert_eq!(labels["detected_level"], rec.level);
        let vals = st["values"].as_array().expect("values");
        assert_eq!(vals.len(), 1);
        assert_eq!(vals[0].as_array().map(Vec::len), Some(2), "2-tuple");
        assert_eq!(vals[0][1], rec.line);
    }

    // Log details → "filter for value" on a structured-metadata field adds
    // `| trace_id="..."` with no parser (modifyQuery.ts).
    let target = order[order.len() / 2];
    let qf = format!("{{app=\"shop\"}} | trace_id=\"{}\"", target.trace_id);
    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/query_range",
            &range_params(&qf, "backward", "1000", &start, &end, "2000ms"),
            &grafana_headers(""),
        ),
        "structured metadata filter",
    );
    let streams = v["data"]["result"].as_array().expect("result");
    assert_eq!(streams.len(), 1, "{v}");
    assert_eq!(streams[0]["values"].as_array().map(Vec::len), Some(1));
    assert_eq!(streams[0]["values"][0][1], target.line);

    // Log context (LogContextProvider.ts): selector from the row's indexed
    // labels, limit 10, ±2 h. FORWARD: from = row time (inclusive, so the
    // row itself is first); BACKWARD: to = row time (exclusive).
    let row_idx = order.len() / 2;
    let row = order[row_idx];
    let ctx_q = "{app=\"shop\", service=\"order\", service_name=\"order\"}";
    let two_h = 2 * 3600 * SEC;
    let (fwd_s, fwd_e) = (row.ts.to_string(), (row.ts + two_h).to_string());
    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/query_range",
            &range_params(ctx_q, "FORWARD", "10", &fwd_s, &fwd_e, "28800000ms"),
            &grafana_headers(""),
        ),
        "context forward",
    );
    let got: Vec<String> = v["data"]["result"][0]["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|e| e[0].as_str().expect("ts").to_string())
        .collect();
    let want: Vec<String> = order[row_idx..]
        .iter()
        .take(10)
        .map(|r| r.ts.to_string())
        .collect();
    assert_eq!(got, want, "forward context starts with the row itself");
    let (bwd_s, bwd_e) = ((row.ts - two_h).to_string(), row.ts.to_string());
    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/query_range",
            &range_params(ctx_q, "BACKWARD", "10", &bwd_s, &bwd_e, "28800000ms"),
            &grafana_headers(""),
        ),
        "context backward",
    );
    let got: Vec<String> = v["data"]["result"][0]["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|e| e[0].as_str().expect("ts").to_string())
        .collect();
    let want: Vec<String> = order[..row_idx]
        .iter()
        .rev()
        .take(10)
        .map(|r| r.ts.to_string())
        .collect();
    assert_eq!(got, want, "backward context: the 10 rows before");

    // Logs volume histogram (datasource.ts getSupplementaryQuery): `$__auto`
    // becomes the step; limit 1000 is still sent. Windows of one step tile
    // the range, so the counts per detected_level add up to the records.
    let step_s = 10;
    let aligned_start = f.start;
    let vol_q = format!(
        "sum by (level, detected_level) (count_over_time({{app=\"shop\"}} | drop __error__[{step_s}s]))"
    );
    let step = format!("{}ms", step_s * 1000);
    let (vs, ve) = (aligned_start.to_string(), end.clone());
    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/query_range",
            &range_params(&vol_q, "backward", "1000", &vs, &ve, &step),
            &grafana_headers("logvolhist"),
        ),
        "logs volume",
    );
    assert_eq!(v["data"]["resultType"], "matrix");
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for series in v["data"]["result"].as_array().expect("result") {
        assert!(
            series["metric"].get("level").is_none(),
            "no parser, no level"
        );
        let lvl = series["metric"]["detected_level"]
            .as_str()
            .expect("detected_level");
        for p in series["values"].as_array().expect("values") {
            *got.entry(lvl.to_string()).or_default() +=
                p[1].as_str().expect("value").parse::<u64>().expect("int");
        }
    }
    assert_eq!(got, count_by(f.records.iter(), |r| r.level));

    // With a parser in the query the histogram groups by the parsed `level`
    // too: Grafana appends `| drop __error__` after the user's pipeline.
    let vol_q = format!(
        "sum by (level, detected_level) (count_over_time({{app=\"shop\"}} | json | drop __error__[{step_s}s]))"
    );
    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/query_range",
            &range_params(&vol_q, "backward", "1000", &vs, &ve, &step),
            &grafana_headers("logvolhist"),
        ),
        "logs volume with parser",
    );
    let mut got: BTreeMap<(String, String), u64> = BTreeMap::new();
    for series in v["data"]["result"].as_array().expect("result") {
        let m = &series["metric"];
        let key = (
            m["level"].as_str().expect("level").to_string(),
            m["detected_level"]
                .as_str()
                .expect("detected_level")
                .to_string(),
        );
        for p in series["values"].as_array().expect("values") {
            *got.entry(key.clone()).or_default() +=
                p[1].as_str().expect("value").parse::<u64>().expect("int");
        }
    }
    let mut want: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in &f.records {
        *want
            .entry((r.level.to_string(), r.level.to_string()))
            .or_default() += 1;
    }
    assert_eq!(got, want);

    // Metric query, range: count per service over 1-minute steps; `limit`
    // is sent and ignored. Steps tile the range, so sums are per-service
    // totals.
    let mq = "sum by (service_name) (count_over_time({app=\"shop\"}[1m]))";
    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/query_range",
            &range_params(mq, "backward", "1000", &start, &end, "60000ms"),
            &grafana_headers(""),
        ),
        "metric range",
    );
    assert_eq!(v["data"]["resultType"], "matrix");
    // Loki echoes the flags for every result type (`marshal/query.go`).
    assert_eq!(v["data"]["encodingFlags"], json!(["categorize-labels"]));
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for series in v["data"]["result"].as_array().expect("result") {
        let svc = series["metric"]["service_name"]
            .as_str()
            .expect("service_name");
        for p in series["values"].as_array().expect("values") {
            assert!(p[0].is_number());
            *got.entry(svc.to_string()).or_default() +=
                p[1].as_str().expect("value").parse::<u64>().expect("int");
        }
    }
    assert_eq!(got, count_by(f.records.iter(), |r| r.service));

    // Metric query, instant (`time` in ns, as makeDataRequest sends it).
    let iq = "sum by (service_name) (count_over_time({app=\"shop\"}[15m]))";
    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/query",
            &[
                ("query", iq),
                ("direction", "backward"),
                ("limit", "1000"),
                ("time", &end),
            ],
            &grafana_headers(""),
        ),
        "metric instant",
    );
    assert_eq!(v["data"]["resultType"], "vector");
    let got: BTreeMap<String, u64> = v["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|e| {
            (
                e["metric"]["service_name"]
                    .as_str()
                    .expect("svc")
                    .to_string(),
                e["value"][1].as_str().expect("v").parse().expect("int"),
            )
        })
        .collect();
    assert_eq!(got, count_by(f.records.iter(), |r| r.service));

    // A log query as an instant query is a 400 with Loki's text, which
    // Grafana shows as the error (api.go makeLokiError).
    let r = get(
        s,
        "/loki/api/v1/query",
        &[
            ("query", q),
            ("direction", "backward"),
            ("limit", "1000"),
            ("time", &end),
        ],
        &grafana_headers(""),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.body
            .contains("log queries are not supported as an instant query type"),
        "{}",
        r.body
    );
}

/// Sums a matrix per value of `label`, over all points.
fn matrix_sums(v: &Value, label: &str) -> BTreeMap<String, u64> {
    assert_eq!(v["data"]["resultType"], "matrix", "{v}");
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for series in v["data"]["result"].as_array().expect("result") {
        let key = series["metric"][label]
            .as_str()
            .unwrap_or_else(|| panic!("{label} in {}", series["metric"]));
        for p in series["values"].as_array().expect("values") {
            *got.entry(key.to_string()).or_default() +=
                p[1].as_str().expect("value").parse::<u64>().expect("int");
        }
    }
    got
}

/// Logs Drilldown's own queries (`logs-drilldown` `src/services/query.ts`
/// and the breakdown scenes): backtick-quoted selectors, label breakdowns
/// by `detected_level`, field breakdowns with `| json field="[\"path\"]"`
/// or the default `| json | logfmt | drop __error__, __error_details__`
/// parser segment, and the level filter on the logs panel. All through the
/// backend with `step` = the range, so windows tile the time range.
#[test]
fn drilldown_breakdown_queries() {
    let f = fixture();
    let s = &f.server;
    let (start, end) = (f.start.to_string(), f.end.to_string());
    let h = grafana_headers("grafana-lokiexplore-app");
    let order: Vec<&DemoRecord> = f.records.iter().filter(|r| r.service == "order").collect();
    let per_event = count_by(order.iter().copied(), |r| r.event);
    let per_level = count_by(order.iter().copied(), |r| r.level);
    let run = |q: &str| {
        ok_json(
            &get(
                s,
                "/loki/api/v1/query_range",
                &range_params(q, "backward", "1000", &start, &end, "60000ms"),
                &h,
            ),
            q,
        )
    };

    // Label breakdown (by-clause after the aggregation).
    let v = run("sum(count_over_time({service_name=`order`} | detected_level != \"\" [60s])) by (detected_level)");
    assert_eq!(matrix_sums(&v, "detected_level"), per_level);

    // Field breakdown with a json path expression.
    let v = run("sum by (event) (count_over_time({service_name=`order`} | json event=\"[\\\"event\\\"]\" | drop __error__, __error_details__ | event!=\"\" [60s]))");
    assert_eq!(matrix_sums(&v, "event"), per_event);

    // Field breakdown with Drilldown's default parser segment: logfmt on a
    // JSON line fails or adds nothing, the error is dropped, json's labels
    // stay.
    let v = run("sum by (event) (count_over_time({service_name=`order`} | json | logfmt | drop __error__, __error_details__ | event!=\"\" [60s]))");
    assert_eq!(matrix_sums(&v, "event"), per_event);

    // Numeric field panel: unwrap the json duration.
    let v = run("sum by (service_name) (sum_over_time({service_name=`order`} | json duration_ms=\"duration_ms\" | drop __error__, __error_details__ | unwrap duration_ms [60s]))");
    let total_ms: u64 = order.iter().map(|r| r.duration_ms).sum();
    assert_eq!(
        matrix_sums(&v, "service_name").get("order"),
        Some(&total_ms)
    );

    // Logs panel with a level filter, categorized: only error and warn
    // lines, parsed fields in `parsed`, detected_level in metadata.
    let v = run("{service_name=`order`} | detected_level=~\"error|warn\" | json | logfmt | drop __error__, __error_details__");
    let want: BTreeSet<(String, String)> = order
        .iter()
        .filter(|r| r.level == "error" || r.level == "warn")
        .map(|r| (r.ts.to_string(), r.line.clone()))
        .collect();
    let mut got = BTreeSet::new();
    for st in v["data"]["result"].as_array().expect("result") {
        assert_eq!(st["stream"]["service_name"], "order");
        assert!(
            st["stream"].get("event").is_none(),
            "parsed labels are not in stream"
        );
        for e in st["values"].as_array().expect("values") {
            let lvl = e[2]["structuredMetadata"]["detected_level"]
                .as_str()
                .expect("level");
            assert!(lvl == "error" || lvl == "warn", "{e}");
            assert!(e[2]["parsed"]["event"].is_string(), "{e}");
            assert!(e[2]["parsed"].get("__error__").is_none(), "{e}");
            got.insert((
                e[0].as_str().expect("ts").to_string(),
                e[1].as_str().expect("line").to_string(),
            ));
        }
    }
    assert_eq!(got, want);

    // Field values under the current filters: Drilldown passes its whole
    // expression (filters and parsers) as `query`.
    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/detected_field/event/values",
            &[
                (
                    "query",
                    "{service_name=`order`} | detected_level=\"error\" | json | logfmt | drop __error__, __error_details__",
                ),
                ("start", &start),
                ("end", &end),
                ("limit", "1000"),
            ],
            &h,
        ),
        "detected_field values under filters",
    );
    let errors: BTreeSet<&str> = order
        .iter()
        .filter(|r| r.level == "error")
        .map(|r| r.event)
        .collect();
    assert!(!errors.is_empty(), "the seed yields error lines");
    assert_eq!(v["values"], json!(errors.iter().collect::<Vec<_>>()));
}

/// Drilldown on logfmt lines: its default parser segment
/// `| json | logfmt | drop __error__, __error_details__` must count lines
/// where json fails (JSONParserErr, dropped) and logfmt succeeds, and
/// `detected_fields` must name `logfmt` with Loki's value types.
#[test]
fn drilldown_on_logfmt_lines() {
    let s = Server::start();
    let base = now_ns() / 1_000_000 * 1_000_000 - 300 * SEC;
    let statuses = [200, 200, 404, 500, 200, 503, 404, 200];
    let mut values = vec![];
    for (i, st) in statuses.iter().enumerate() {
        let took = 5 + i * 3;
        values.push(json!([
            (base + i as i64 * SEC).to_string(),
            format!("level=info method=GET path=/api/items status={st} took={took}ms msg=\"handled request\"")
        ]));
    }
    let r = s.push_json(&json!({"streams": [{"stream": {"app": "gateway"}, "values": values}]}));
    assert_eq!(r.status, 204, "{}", r.body);
    let (start, end) = ((base - 60 * SEC).to_string(), now_ns().to_string());
    let h = grafana_headers("grafana-lokiexplore-app");

    let v = ok_json(
        &get(
            &s,
            "/loki/api/v1/detected_fields",
            &[
                ("query", "{service_name=\"gateway\"}"),
                ("start", &start),
                ("end", &end),
            ],
            &h,
        ),
        "detected_fields",
    );
    let fields: BTreeMap<String, Value> = v["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| (f["label"].as_str().expect("label").to_string(), f.clone()))
        .collect();
    let status = &fields["status"];
    assert_eq!(status["parsers"], json!(["logfmt"]), "{status}");
    assert_eq!(status["type"], "int");
    assert_eq!(status["cardinality"], 4, "200, 404, 500, 503");
    assert!(status.get("jsonPath").is_none(), "{status}");
    assert_eq!(fields["took"]["type"], "duration", "{}", fields["took"]);
    assert_eq!(fields["msg"]["type"], "string");

    let q = "sum by (status) (count_over_time({service_name=`gateway`} | json | logfmt | drop __error__, __error_details__ | status!=\"\" [60s]))";
    let v = ok_json(
        &get(
            &s,
            "/loki/api/v1/query_range",
            &range_params(q, "backward", "1000", &start, &end, "60000ms"),
            &h,
        ),
        "status breakdown",
    );
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for st in statuses {
        *want.entry(st.to_string()).or_default() += 1;
    }
    assert_eq!(matrix_sums(&v, "status"), want);
}

/// Query splitting (`querySplitting.ts`): one panel becomes adjacent
/// sub-range queries. With Loki's inclusive start and exclusive end, a split
/// exactly on an entry's timestamp neither loses nor repeats it; the series
/// call (`LanguageProvider.ts` with `lokiLabelNamesQueryApi` off) lists the
/// streams.
#[test]
fn query_splitting_and_series() {
    let f = fixture();
    let s = &f.server;
    let order: Vec<&DemoRecord> = f.records.iter().filter(|r| r.service == "order").collect();
    let q = "{service_name=\"order\"}";
    let cut = order[order.len() / 3].ts; // exactly an entry's timestamp
    let mut seen: Vec<String> = vec![];
    // Grafana runs the newest chunk first for backward log queries.
    for (a, b) in [(cut, f.end), (f.start, cut)] {
        let v = ok_json(
            &get(
                s,
                "/loki/api/v1/query_range",
                &range_params(
                    q,
                    "backward",
                    "1000",
                    &a.to_string(),
                    &b.to_string(),
                    "1000ms",
                ),
                &grafana_headers(""),
            ),
            "split",
        );
        for e in v["data"]["result"][0]["values"].as_array().expect("values") {
            seen.push(e[0].as_str().expect("ts").to_string());
        }
    }
    let want: Vec<String> = order.iter().rev().map(|r| r.ts.to_string()).collect();
    assert_eq!(seen, want);

    let v = ok_json(
        &get(
            s,
            "/loki/api/v1/series",
            &[
                ("match[]", "{app=\"shop\"}"),
                ("start", &f.start.to_string()),
                ("end", &f.end.to_string()),
            ],
            &grafana_headers(""),
        ),
        "series",
    );
    let got: BTreeSet<String> = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|l| {
            assert_eq!(l["app"], "shop");
            assert_eq!(l["service"], l["service_name"]);
            l["service_name"]
                .as_str()
                .expect("service_name")
                .to_string()
        })
        .collect();
    let want: BTreeSet<String> = miniloki::demo::SERVICES
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
}

/// Multi-tenancy as Grafana is usually set up against Loki with
/// `auth_enabled`: the datasource carries `X-Scope-OrgID` as a custom HTTP
/// header on every backend and resource call. Without it Loki answers 401
/// `no org id`, which "Save & test" shows.
#[test]
fn tenant_header_from_datasource_settings() {
    let s = Server::start_with(&["--auth-enabled"]);
    let ts = now_ns() - 5 * SEC;
    let body = json!({"streams": [{"stream": {"app": "billing"}, "values": [[ts.to_string(), "level=info msg=paid"]]}]});
    let r = s.post(
        "/loki/api/v1/push",
        "application/json",
        body.to_string().as_bytes(),
        &[("X-Scope-OrgID", "team-a")],
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let with = |t: &str| {
        let mut h = grafana_headers("");
        h.push(("X-Scope-OrgID", t.to_string()));
        h
    };
    let health = [
        ("direction", "backward"),
        ("query", "vector(1)+vector(1)"),
        ("time", "4000000000"),
    ];
    let r = get(&s, "/loki/api/v1/query", &health, &grafana_headers(""));
    assert_eq!(r.status, 401);
    assert_eq!(r.body.trim_end(), "no org id");
    let v = ok_json(
        &get(&s, "/loki/api/v1/query", &health, &with("team-a")),
        "health",
    );
    assert_eq!(v["data"]["result"][0]["value"][1], "2");

    let (start, end) = ((ts - 60 * SEC).to_string(), now_ns().to_string());
    let range = [("start", start.as_str()), ("end", end.as_str())];
    let v = ok_json(
        &get(&s, "/loki/api/v1/detected_labels", &range, &with("team-a")),
        "dl",
    );
    assert_eq!(v["detectedLabels"][0]["label"], "app", "{v}");
    let v = ok_json(
        &get(&s, "/loki/api/v1/detected_labels", &range, &with("team-b")),
        "dl",
    );
    assert_eq!(v["detectedLabels"], json!([]), "other tenant sees nothing");
    let r = get(
        &s,
        "/loki/api/v1/detected_labels",
        &range,
        &grafana_headers(""),
    );
    assert_eq!(r.status, 401);
}

/// `detected_labels` leaves out labels whose values all look like IDs
/// (numbers, UUIDs), but keeps a 0/1 boolean and Loki's always-shown
/// labels (`pkg/querier/querier.go` `shouldRejectLabel`); Grafana's label
/// browser and Drilldown's label tabs only offer what comes back.
#[test]
fn detected_labels_drop_id_like_labels() {
    let s = Server::start();
    let ts = now_ns() - 5 * SEC;
    let mut streams = vec![];
    for (i, (canary, build, pod)) in [("0", "41", "7"), ("1", "42", "8")].iter().enumerate() {
        streams.push(
            json!({"stream": {"app": "flags", "canary": canary, "build": build, "pod": pod},
            "values": [[(ts + i as i64).to_string(), "x"]]}),
        );
    }
    let r = s.push_json(&json!({ "streams": streams }));
    assert_eq!(r.status, 204, "{}", r.body);
    let v = ok_json(
        &get(
            &s,
            "/loki/api/v1/detected_labels",
            &[
                ("query", "{app=\"flags\"}"),
                ("start", &(ts - 60 * SEC).to_string()),
                ("end", &now_ns().to_string()),
            ],
            &grafana_headers(""),
        ),
        "detected_labels",
    );
    let got: BTreeMap<String, u64> = v["detectedLabels"]
        .as_array()
        .expect("detectedLabels")
        .iter()
        .map(|l| {
            (
                l["label"].as_str().expect("label").to_string(),
                l["cardinality"].as_u64().expect("n"),
            )
        })
        .collect();
    // app: one value; canary: boolean; pod: always kept; build: numeric IDs.
    let want: BTreeMap<String, u64> = [("app", 1), ("canary", 2), ("pod", 2), ("service_name", 1)]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
    assert_eq!(got, want, "{v}");
}

/// Live tail (`datasource.ts` createLiveTarget, `LiveStreams.ts`; or the
/// backend's `streaming.go` with `lokiExperimentalStreaming`): it opens
/// `/loki/api/v1/tail?query=<expr>` (only `query`) and reads `streams` from
/// each text frame. `delay_for` > 5 is a 400 before upgrade.
#[test]
fn live_tail_over_websocket() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Error, Message};

    let s = Server::start();
    // Grafana's backend streaming (`pkg/tsdb/loki/streaming.go`) first probes
    // `/loki/api/v2alpha/tail`: a 400 would mean "v2 exists"; anything else
    // makes it use v1, which is the only tail here.
    let r = s.get("/loki/api/v2alpha/tail", &[]);
    assert_eq!(r.status, 404, "{}", r.body);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let q = "{app=\"tailed\"} |= \"needle\"";
        let url = format!("ws://{}/loki/api/v1/tail?query={}", s.addr, url_encode(q));
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("websocket handshake");
        // The server polls once, then pings: after the first ping the
        // initial (empty) batch is done.
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(15), ws.next())
                .await
                .expect("a ping within 15 s")
                .expect("socket open")
                .expect("frame");
            if matches!(msg, Message::Ping(_)) {
                break;
            }
        }
        // Push after connecting: one matching line, one filtered out,
        // stamped 2 s ago as an agent that batches would (regression: the
        // tail used to skip entries older than its last poll).
        let ts = now_ns() - 2 * SEC;
        let r = s.push_json(
            &json!({"streams": [{"stream": {"app": "tailed"}, "values": [
                [ts.to_string(), "haystack only"],
                [(ts + 1).to_string(), "a needle here"],
            ]}]}),
        );
        assert_eq!(r.status, 204, "{}", r.body);
        let mut got = vec![];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while got.is_empty() {
            let msg = tokio::time::timeout_at(deadline, ws.next())
                .await
                .expect("a tail frame within 15 s")
                .expect("socket open")
                .expect("frame");
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON frame");
                for st in v["streams"].as_array().expect("streams") {
                    assert_eq!(st["stream"]["app"], "tailed");
                    for e in st["values"].as_array().expect("values") {
                        assert_eq!(
                            e.as_array().map(Vec::len),
                            Some(2),
                            "browser: uncategorized"
                        );
                        got.push((e[0].as_str().expect("ts").to_string(), e[1].clone()));
                    }
                }
            }
        }
        assert_eq!(got, vec![((ts + 1).to_string(), json!("a needle here"))]);
        let _ = ws.close(None).await;

        // delay_for > 5: Loki's 400, before the upgrade.
        let bad = format!(
            "ws://{}/loki/api/v1/tail?query={}&delay_for=6",
            s.addr,
            url_encode("{app=\"tailed\"}")
        );
        let req = bad.into_client_request().expect("request");
        match tokio_tungstenite::connect_async(req).await {
            Err(Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), 400);
                let body = resp.body().as_deref().unwrap_or_default();
                // Plain text, newline-terminated like Go's http.Error.
                assert_eq!(
                    String::from_utf8_lossy(body),
                    "delay_for can't be greater than 5\n"
                );
            }
            Err(e) => panic!("expected an HTTP 400, got {e}"),
            Ok(_) => panic!("delay_for=6 must be refused"),
        }
    });
}

/// Percent-encodes a query-string value.
fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
