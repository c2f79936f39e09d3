//! OTLP ingestion end to end, against the real binary: the same log records
//! sent as OTLP/HTTP protobuf, OTLP/HTTP JSON (plain and gzip) and OTLP/gRPC
//! (plain and gzip) come back from LogQL with Loki's mapping — index labels
//! from the default resource attributes, `service_name` (or
//! `unknown_service`), everything else as structured metadata, the body as
//! the line, the timestamp fallback and `detected_level`. Also: partial
//! success in every encoding, errors answered in the request's encoding
//! (400 undecodable, 400 unsupported type, 413 oversized), the 200
//! `ExportLogsServiceResponse`, and durability across SIGKILL.
//!
//! Every expected value is written out from the OTLP mapping table (Loki's
//! `pkg/loghttp/push/otlp.go`) and the records built here, never taken from
//! the server's answers.

mod common;

use std::collections::BTreeMap;
use std::io::Write;

use common::{now_ns, Server};
use miniloki::proto::otlp::collector::logs_service_client::LogsServiceClient;
use miniloki::proto::otlp::collector::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use miniloki::proto::otlp::common::{
    any_value::Value as V, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use miniloki::proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use miniloki::proto::otlp::resource::Resource;
use prost::Message;
use serde_json::json;

type Map = BTreeMap<String, String>;

/// One record as read back: stream labels, timestamp, line, metadata.
#[derive(Debug, Clone, PartialEq)]
struct Rec {
    labels: Map,
    ts: i64,
    line: String,
    md: Map,
}

fn map(pairs: &[(&str, &str)]) -> Map {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const TRACE_ID: [u8; 16] = [
    0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c,
];
const SPAN_ID: [u8; 8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74];
const LINE1: &str = "payment declined: card=<redacted> & retry";

/// Timestamps of the fixture's four records, from `base`.
fn times(base: i64) -> [i64; 4] {
    [
        base + 1,
        base + 2_000_000_007,
        base + 3_000_000_011,
        base + 4_000_000_013,
    ]
}

fn kv(k: &str, v: V) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}
fn s(v: &str) -> V {
    V::StringValue(v.into())
}
fn any(v: V) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

/// The fixture as a protobuf request. Resource A has `service.name=svc-{tag}`
/// and a scope; resource B has no `service.name` and no scope.
fn proto_req(tag: &str, base: i64) -> ExportLogsServiceRequest {
    let [t1, t2, t3, t4] = times(base);
    let rec1 = LogRecord {
        time_unix_nano: t1 as u64,
        observed_time_unix_nano: (t1 + 5) as u64,
        severity_number: 13,
        severity_text: "WARN".into(),
        body: any(s(LINE1)),
        attributes: vec![
            kv("http.method", s("POST")),
            kv("http.status_code", V::IntValue(402)),
            kv("retryable", V::BoolValue(true)),
            kv(
                "user",
                V::KvlistValue(KeyValueList {
                    values: vec![
                        kv("id", s("u-1")),
                        kv(
                            "geo",
                            V::KvlistValue(KeyValueList {
                                values: vec![kv("country", s("FR"))],
                            }),
                        ),
                    ],
                }),
            ),
            kv("ratio", V::DoubleValue(0.25)),
        ],
        trace_id: TRACE_ID.to_vec(),
        span_id: SPAN_ID.to_vec(),
        ..Default::default()
    };
    // No time_unix_nano: the observed time is the timestamp.
    let rec2 = LogRecord {
        observed_time_unix_nano: t2 as u64,
        severity_number: 17,
        body: any(V::KvlistValue(KeyValueList {
            values: vec![kv("msg", s("boom")), kv("code", V::IntValue(7))],
        })),
        ..Default::default()
    };
    let rec3 = LogRecord {
        time_unix_nano: t3 as u64,
        body: any(V::ArrayValue(ArrayValue {
            values: vec![
                AnyValue {
                    value: Some(s("a")),
                },
                AnyValue {
                    value: Some(V::IntValue(1)),
                },
                AnyValue {
                    value: Some(V::BoolValue(true)),
                },
            ],
        })),
        ..Default::default()
    };
    let rec4 = LogRecord {
        time_unix_nano: t4 as u64,
        body: any(s(&format!("no service here {tag}"))),
        ..Default::default()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![
            ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", s(&format!("svc-{tag}"))),
                        kv("deployment.environment", s("prod")),
                        kv("k8s.namespace.name", s("shop")),
                        kv("host.name", s("h1")),
                        kv("process.pid", V::IntValue(4242)),
                    ],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "io.example.payments".into(),
                        version: "1.2.3".into(),
                        attributes: vec![kv("scope.attr", s("s"))],
                        ..Default::default()
                    }),
                    log_records: vec![rec1, rec2, rec3],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            },
            ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("host.name", s(&format!("h2-{tag}")))],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: None,
                    log_records: vec![rec4],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            },
        ],
    }
}

/// The same fixture as OTLP/JSON, written by hand: camelCase, 64-bit
/// integers as strings, ids as upper-case hex, an enum by name.
fn json_req(tag: &str, base: i64) -> serde_json::Value {
    let [t1, t2, t3, t4] = times(base);
    let sv = |v: &str| json!({"stringValue": v});
    json!({"resourceLogs": [
        {"resource": {"attributes": [
            {"key": "service.name", "value": sv(&format!("svc-{tag}"))},
            {"key": "deployment.environment", "value": sv("prod")},
            {"key": "k8s.namespace.name", "value": sv("shop")},
            {"key": "host.name", "value": sv("h1")},
            {"key": "process.pid", "value": {"intValue": "4242"}}]},
         "scopeLogs": [{
            "scope": {"name": "io.example.payments", "version": "1.2.3",
                      "attributes": [{"key": "scope.attr", "value": sv("s")}]},
            "logRecords": [
              {"timeUnixNano": t1.to_string(), "observedTimeUnixNano": (t1 + 5).to_string(),
               "severityNumber": "SEVERITY_NUMBER_WARN", "severityText": "WARN",
               "body": sv(LINE1),
               "attributes": [
                 {"key": "http.method", "value": sv("POST")},
                 {"key": "http.status_code", "value": {"intValue": "402"}},
                 {"key": "retryable", "value": {"boolValue": true}},
                 {"key": "user", "value": {"kvlistValue": {"values": [
                     {"key": "id", "value": sv("u-1")},
                     {"key": "geo", "value": {"kvlistValue": {"values": [
                         {"key": "country", "value": sv("FR")}]}}}]}}},
                 {"key": "ratio", "value": {"doubleValue": 0.25}}],
               "traceId": "5B8EFFF798038103D269B633813FC60C",
               "spanId": "EEE19B7EC3C1B174"},
              {"observedTimeUnixNano": t2.to_string(), "severityNumber": 17,
               "body": {"kvlistValue": {"values": [
                   {"key": "msg", "value": sv("boom")},
                   {"key": "code", "value": {"intValue": "7"}}]}}},
              {"timeUnixNano": t3.to_string(),
               "body": {"arrayValue": {"values": [
                   sv("a"), {"intValue": "1"}, {"boolValue": true}]}}}]}]},
        {"resource": {"attributes": [{"key": "host.name", "value": sv(&format!("h2-{tag}"))}]},
         "scopeLogs": [{"logRecords": [
              {"timeUnixNano": t4.to_string(), "body": sv(&format!("no service here {tag}"))}]}]}
    ]})
}

/// What the fixture must read back as (records 1–4 in time order), from
/// the mapping table; `detected_level` of record 3 (no severity) is checked
/// separately, so it is left out here.
fn expected(tag: &str, base: i64) -> Vec<Rec> {
    let [t1, t2, t3, t4] = times(base);
    let svc = format!("svc-{tag}");
    let labels_a = map(&[
        ("deployment_environment", "prod"),
        ("k8s_namespace_name", "shop"),
        ("service_name", &svc),
    ]);
    let resource_scope_md = [
        ("host_name", "h1"),
        ("process_pid", "4242"),
        ("scope_attr", "s"),
        ("scope_name", "io.example.payments"),
        ("scope_version", "1.2.3"),
    ];
    let with_rs = |extra: &[(&str, &str)]| {
        let mut m = map(&resource_scope_md);
        m.extend(map(extra));
        m
    };
    let observed = (t1 + 5).to_string();
    vec![
        Rec {
            labels: labels_a.clone(),
            ts: t1,
            line: LINE1.into(),
            md: with_rs(&[
                ("http_method", "POST"),
                ("http_status_code", "402"),
                ("retryable", "true"),
                ("user_id", "u-1"),
                ("user_geo_country", "FR"),
                ("ratio", "0.25"),
                ("observed_timestamp", &observed),
                ("severity_number", "13"),
                ("severity_text", "WARN"),
                ("trace_id", "5b8efff798038103d269b633813fc60c"),
                ("span_id", "eee19b7ec3c1b174"),
                ("detected_level", "warn"),
            ]),
        },
        Rec {
            labels: labels_a.clone(),
            ts: t2,
            // Maps render as Go's JSON: keys sorted.
            line: r#"{"code":7,"msg":"boom"}"#.into(),
            md: with_rs(&[("severity_number", "17"), ("detected_level", "error")]),
        },
        Rec {
            labels: labels_a,
            ts: t3,
            line: r#"["a",1,true]"#.into(),
            md: with_rs(&[]),
        },
        Rec {
            labels: map(&[("service_name", "unknown_service")]),
            ts: t4,
            line: format!("no service here {tag}"),
            md: map(&[("host_name", &format!("h2-{tag}"))]),
        },
    ]
}

/// `{…}` of a JSON object of strings.
fn str_map(v: &serde_json::Value) -> Map {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs a log query with categorized labels over `[start, end]`, forward,
/// returning every record in time order.
fn query_cat(srv: &Server, q: &str, start: i64, end: i64) -> Vec<Rec> {
    let (st, en) = (start.to_string(), end.to_string());
    let r = srv.get_h(
        "/loki/api/v1/query_range",
        &[
            ("query", q),
            ("start", &st),
            ("end", &en),
            ("limit", "5000"),
            ("direction", "forward"),
        ],
        &[("X-Loki-Response-Encoding-Flags", "categorize-labels")],
    );
    assert_eq!(r.status, 200, "query {q}: {}", r.body);
    let v = r.json();
    assert_eq!(v["data"]["encodingFlags"], json!(["categorize-labels"]));
    let mut out = vec![];
    for st in v["data"]["result"].as_array().expect("result") {
        let labels = str_map(&st["stream"]);
        for e in st["values"].as_array().expect("values") {
            out.push(Rec {
                labels: labels.clone(),
                ts: e[0].as_str().unwrap().parse().unwrap(),
                line: e[1].as_str().unwrap().to_string(),
                md: str_map(&e[2]["structuredMetadata"]),
            });
        }
    }
    out.sort_by(|a, b| a.ts.cmp(&b.ts).then(a.line.cmp(&b.line)));
    out
}

/// The fixture's records for `tag`, read back: resource A by its service
/// name, resource B by its host name.
fn read_fixture(srv: &Server, tag: &str, base: i64) -> Vec<Rec> {
    let end = now_ns() + 60_000_000_000;
    let mut got = query_cat(srv, &format!("{{service_name=\"svc-{tag}\"}}"), base, end);
    got.extend(query_cat(
        srv,
        &format!("{{service_name=\"unknown_service\"}} | host_name=\"h2-{tag}\""),
        base,
        end,
    ));
    got
}

/// Checks the read-back fixture against [`expected`].
fn check_fixture(srv: &Server, tag: &str, base: i64) {
    let mut got = read_fixture(srv, tag, base);
    assert_eq!(got.len(), 4, "{tag}: {got:#?}");
    // Record 3 has no severity and no level word in its line.
    assert_eq!(
        got[2].md.remove("detected_level").as_deref(),
        Some("unknown"),
        "{tag}"
    );
    // Record 4 has no severity either; its line has no level word.
    assert_eq!(
        got[3].md.remove("detected_level").as_deref(),
        Some("unknown"),
        "{tag}"
    );
    let want = expected(tag, base);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "{tag}");
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// A raw OTLP/HTTP POST: (status, content type, body bytes).
fn post_raw(
    srv: &Server,
    content_type: &str,
    encoding: Option<&str>,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut req = common::agent()
        .post(&srv.url("/otlp/v1/logs"))
        .header("Content-Type", content_type);
    if let Some(e) = encoding {
        req = req.header("Content-Encoding", e);
    }
    let mut resp = req.send(body).expect("POST /otlp/v1/logs");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = resp.body_mut().read_to_vec().unwrap_or_default();
    (status, ct, bytes)
}

fn post_proto(srv: &Server, req: &ExportLogsServiceRequest) -> ExportLogsServiceResponse {
    let (status, ct, body) = post_raw(srv, "application/x-protobuf", None, &req.encode_to_vec());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(ct, "application/x-protobuf");
    ExportLogsServiceResponse::decode(body.as_slice()).expect("ExportLogsServiceResponse")
}

/// google.rpc.Status, the body of OTLP/HTTP protobuf errors.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn base_ns() -> i64 {
    now_ns() - 120_000_000_000
}

#[test]
fn http_protobuf_maps_like_loki() {
    let srv = Server::start();
    let base = base_ns();
    let resp = post_proto(&srv, &proto_req("pb", base));
    // Everything accepted: no partial_success at all.
    assert_eq!(resp, ExportLogsServiceResponse::default());
    check_fixture(&srv, "pb", base);
    // An empty export (zero bytes is a valid empty message) is a success.
    let (status, _, body) = post_raw(&srv, "application/x-protobuf", None, b"");
    assert_eq!((status, body.len()), (200, 0));
    let (status, _, body) = post_raw(&srv, "application/json", None, b"{}");
    assert_eq!((status, body.as_slice()), (200, &b"{}"[..]));
    // Index labels are exactly the default resource attributes present.
    let r = srv.get("/loki/api/v1/labels", &[]);
    let names = r.json()["data"].clone();
    assert_eq!(
        names,
        json!([
            "deployment_environment",
            "k8s_namespace_name",
            "service_name"
        ])
    );
}

#[test]
fn http_json_plain_gzip_zstd() {
    let srv = Server::start();
    let base = base_ns();
    let body = json_req("json", base).to_string();
    let (status, ct, resp) = post_raw(&srv, "application/json", None, body.as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    assert_eq!(ct, "application/json");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&resp).unwrap(),
        json!({})
    );
    check_fixture(&srv, "json", base);

    let body = json_req("jsongz", base).to_string();
    let (status, _, resp) = post_raw(
        &srv,
        "application/json; charset=utf-8",
        Some("gzip"),
        &gzip(body.as_bytes()),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    check_fixture(&srv, "jsongz", base);

    // zstd, as the Collector's otlphttp exporter can send.
    let body = json_req("jsonzstd", base).to_string();
    let (status, _, resp) = post_raw(
        &srv,
        "application/json",
        Some("zstd"),
        &zstd::encode_all(body.as_bytes(), 3).unwrap(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    check_fixture(&srv, "jsonzstd", base);

    // Protobuf gzip too.
    let (status, _, resp) = post_raw(
        &srv,
        "application/x-protobuf",
        Some("gzip"),
        &gzip(&proto_req("pbgz", base).encode_to_vec()),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    check_fixture(&srv, "pbgz", base);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn grpc_client(srv: &Server) -> LogsServiceClient<tonic::transport::Channel> {
    let addr = srv.grpc_addr.clone().expect("gRPC listener");
    LogsServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect gRPC")
}

#[test]
fn grpc_plain_and_gzip() {
    let srv = Server::start();
    let base = base_ns();
    runtime().block_on(async {
        let mut c = grpc_client(&srv).await;
        let r = c.export(proto_req("grpc", base)).await.expect("export");
        assert_eq!(r.into_inner(), ExportLogsServiceResponse::default());
        let mut c = c
            .send_compressed(tonic::codec::CompressionEncoding::Gzip)
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        let r = c.export(proto_req("grpcgz", base)).await.expect("export");
        assert_eq!(r.into_inner(), ExportLogsServiceResponse::default());
    });
    check_fixture(&srv, "grpc", base);
    check_fixture(&srv, "grpcgz", base);
}

/// Three records, the middle one over a 64-byte line limit.
fn partial_req(tag: &str, base: i64) -> ExportLogsServiceRequest {
    let rec = |i: i64, line: String| LogRecord {
        time_unix_nano: (base + i) as u64,
        body: any(s(&line)),
        ..Default::default()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s(tag))],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: None,
                log_records: vec![
                    rec(1, format!("{tag} first")),
                    rec(2, "x".repeat(100)),
                    rec(3, format!("{tag} third")),
                ],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// The lines stored for service `tag`.
fn lines_of(srv: &Server, tag: &str, base: i64) -> Vec<String> {
    query_cat(
        srv,
        &format!("{{service_name=\"{tag}\"}}"),
        base,
        now_ns() + 60_000_000_000,
    )
    .into_iter()
    .map(|r| r.line)
    .collect()
}

#[test]
fn partial_success_in_every_encoding() {
    let srv = Server::start_with(&["--max-line-size", "64"]);
    let base = base_ns();
    let msg = |tag: &str| {
        format!("max entry size '64' bytes exceeded for stream '{{service_name=\"{tag}\"}}' while adding an entry with length '100' bytes")
    };

    // Protobuf.
    let resp = post_proto(&srv, &partial_req("ppb", base));
    let p = resp.partial_success.expect("partial_success");
    assert_eq!(p.rejected_log_records, 1);
    assert!(p.error_message.contains(&msg("ppb")), "{}", p.error_message);

    // JSON: the response is OTLP/JSON, int64 as a string.
    let body = json!({"resourceLogs": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "pjson"}}]},
        "scopeLogs": [{"logRecords": [
            {"timeUnixNano": (base + 1).to_string(), "body": {"stringValue": "pjson first"}},
            {"timeUnixNano": (base + 2).to_string(), "body": {"stringValue": "x".repeat(100)}},
            {"timeUnixNano": (base + 3).to_string(), "body": {"stringValue": "pjson third"}}]}]}]});
    let (status, ct, resp) = post_raw(&srv, "application/json", None, body.to_string().as_bytes());
    assert_eq!(status, 200);
    assert_eq!(ct, "application/json");
    let v: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedLogRecords"], json!("1"));
    let m = v["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(m.contains(&msg("pjson")), "{m}");

    // gRPC.
    runtime().block_on(async {
        let mut c = grpc_client(&srv).await;
        let r = c
            .export(partial_req("pgrpc", base))
            .await
            .expect("export")
            .into_inner();
        let p = r.partial_success.expect("partial_success");
        assert_eq!(p.rejected_log_records, 1);
        assert!(
            p.error_message.contains(&msg("pgrpc")),
            "{}",
            p.error_message
        );
    });

    // The accepted records are stored; the rejected one is not.
    for tag in ["ppb", "pjson", "pgrpc"] {
        assert_eq!(
            lines_of(&srv, tag, base),
            vec![format!("{tag} first"), format!("{tag} third")]
        );
    }
    // Counted as Loki counts discards: 3 requests × 1 line of 100 bytes;
    // 9 lines received.
    let m = srv.get("/metrics", &[]).body;
    for want in [
        "loki_discarded_samples_total{reason=\"line_too_long\",tenant=\"fake\"} 3\n",
        "loki_discarded_bytes_total{reason=\"line_too_long\",tenant=\"fake\"} 300\n",
        "loki_distributor_lines_received_total{tenant=\"fake\"} 9\n",
    ] {
        assert!(m.contains(want), "{want} not in:\n{m}");
    }
}

#[test]
fn errors_answer_in_the_request_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("miniloki.toml");
    std::fs::write(
        &cfg,
        "[ingest]\nmax_recv_msg_size = 4096\nmax_decompressed_size = 8192\n",
    )
    .unwrap();
    let srv = Server::start_with(&["--config", cfg.to_str().unwrap()]);

    // Undecodable protobuf → 400, google.rpc.Status INVALID_ARGUMENT (3).
    let (status, ct, body) = post_raw(&srv, "application/x-protobuf", None, b"\xff\xff\xff\xff");
    assert_eq!(status, 400);
    assert_eq!(ct, "application/x-protobuf");
    let st = RpcStatus::decode(body.as_slice()).expect("google.rpc.Status");
    assert_eq!(st.code, 3);
    assert!(st.message.contains("protobuf"), "{}", st.message);

    // Undecodable JSON → 400, the Status as JSON.
    let (status, ct, body) = post_raw(&srv, "application/json", None, b"{\"resourceLogs\": [");
    assert_eq!(status, 400);
    assert_eq!(ct, "application/json");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], json!(3));
    assert!(v["message"].as_str().unwrap().contains("JSON"), "{v}");

    // A JSON body that is valid JSON but not OTLP (bad hex id) → 400.
    let bad = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"zz"}]}]}]}"#;
    let (status, _, _) = post_raw(&srv, "application/json", None, bad);
    assert_eq!(status, 400);

    // Unsupported content type → 400.
    let (status, _, body) = post_raw(&srv, "text/plain", None, b"hello");
    assert_eq!(status, 400);
    let st = RpcStatus::decode(body.as_slice()).expect("google.rpc.Status");
    assert_eq!(st.message, "content type: text/plain is not supported");

    // Unsupported content encoding → 400.
    let (status, _, _) = post_raw(&srv, "application/x-protobuf", Some("br"), b"x");
    assert_eq!(status, 400);

    // Oversized request (a 5000-byte body over a 4096-byte limit) → 413,
    // still answered in the request's encoding.
    let big = proto_req("big", base_ns()).encode_to_vec();
    let mut padded = big.clone();
    while padded.len() <= 5000 {
        padded.extend_from_slice(&big);
    }
    let (status, ct, body) = post_raw(&srv, "application/x-protobuf", None, &padded);
    assert_eq!(status, 413);
    assert_eq!(ct, "application/x-protobuf");
    assert!(RpcStatus::decode(body.as_slice()).is_ok());
    let (status, ct, _) = post_raw(&srv, "application/json", None, &[b' '; 5000]);
    assert_eq!(status, 413);
    assert_eq!(ct, "application/json");

    // A small gzip body that inflates past 8192 bytes → 413.
    let bomb = gzip(&[b' '; 100_000]);
    assert!(bomb.len() < 4096);
    let (status, _, _) = post_raw(&srv, "application/json", Some("gzip"), &bomb);
    assert_eq!(status, 413);

    // Over gRPC the same limit applies to the decoded message.
    let mut req = partial_req("grpcbig", base_ns());
    req.resource_logs[0].scope_logs[0].log_records[1].body = any(s(&"y".repeat(5000)));
    runtime().block_on(async {
        let mut c = grpc_client(&srv).await;
        let e = c.export(req).await.expect_err("over max_recv_msg_size");
        assert_eq!(e.code(), tonic::Code::OutOfRange, "{e}");
    });

    // Nothing of the above was stored; a good request still works.
    let base = base_ns();
    let resp = post_proto(&srv, &partial_req("after", base));
    assert_eq!(resp, ExportLogsServiceResponse::default());
    assert_eq!(
        lines_of(&srv, "after", base),
        vec![
            "after first".to_string(),
            "x".repeat(100),
            "after third".into()
        ]
    );
}

#[test]
fn records_survive_sigkill() {
    let mut srv = Server::start();
    let base = base_ns();
    assert_eq!(
        post_proto(&srv, &proto_req("durable", base)),
        ExportLogsServiceResponse::default()
    );
    let body = json_req("durablejson", base).to_string();
    let (status, _, _) = post_raw(&srv, "application/json", None, body.as_bytes());
    assert_eq!(status, 200);
    runtime().block_on(async {
        let mut c = grpc_client(&srv).await;
        c.export(proto_req("durablegrpc", base))
            .await
            .expect("export");
    });
    srv.restart_after_kill();
    check_fixture(&srv, "durable", base);
    check_fixture(&srv, "durablejson", base);
    check_fixture(&srv, "durablegrpc", base);
}

/// Regression (build_state ignored the `[ingest]` and `[otlp]` sections):
/// `[otlp]` rules from the config file change the mapping — a log attribute
/// promoted to an index label (its own stream), resource and log attributes
/// dropped by name and by anchored regex, a resource attribute promoted,
/// `severity_text_as_label` — while the defaults still come first.
#[test]
fn configured_otlp_rules_apply() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("miniloki.toml");
    std::fs::write(
        &cfg,
        r#"
[otlp]
severity_text_as_label = true
log_attributes = [
  { action = "index_label", attributes = ["tenant.id"] },
  { action = "drop", regex = "secret\\..*" },
]
scope_attributes = [{ action = "drop", attributes = ["noisy"] }]

[otlp.resource_attributes]
attributes_config = [
  { action = "index_label", attributes = ["host.name"] },
  { action = "drop", regex = "k8s\\..*" },
]
"#,
    )
    .unwrap();
    let srv = Server::start_with(&["--config", cfg.to_str().unwrap()]);
    let base = base_ns();
    let rec = |i: i64, tenant: &str| LogRecord {
        time_unix_nano: (base + i) as u64,
        severity_text: "INFO".into(),
        body: any(s(&format!("line {i}"))),
        attributes: vec![
            kv("tenant.id", s(tenant)),
            kv("secret.token", s("hunter2")),
            kv("not.secret.x", s("kept")),
        ],
        ..Default::default()
    };
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s("rules")),
                    // In the default list, so still an index label.
                    kv("k8s.pod.name", s("pod-1")),
                    kv("k8s.node.name", s("node-1")),
                    kv("host.name", s("h1")),
                    kv("os.type", s("linux")),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "sc".into(),
                    attributes: vec![kv("noisy", s("1")), kv("quiet", s("2"))],
                    ..Default::default()
                }),
                log_records: vec![rec(1, "a"), rec(2, "b"), rec(3, "a")],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    assert_eq!(post_proto(&srv, &req), ExportLogsServiceResponse::default());
    let got = query_cat(
        &srv,
        r#"{service_name="rules"}"#,
        base,
        now_ns() + 60_000_000_000,
    );
    let labels = |t: &str| {
        map(&[
            ("host_name", "h1"),
            ("k8s_pod_name", "pod-1"),
            ("service_name", "rules"),
            ("severity_text", "INFO"),
            ("tenant_id", t),
        ])
    };
    // severity_text is also an index label here, so at query time the
    // metadata copy is `severity_text_extracted` (Loki's LabelsBuilder.Add).
    let md = map(&[
        ("not_secret_x", "kept"),
        ("os_type", "linux"),
        ("quiet", "2"),
        ("scope_name", "sc"),
        ("severity_text_extracted", "INFO"),
        ("detected_level", "info"),
    ]);
    let want: Vec<Rec> = [(1, "a"), (2, "b"), (3, "a")]
        .iter()
        .map(|(i, t)| Rec {
            labels: labels(t),
            ts: base + i,
            line: format!("line {i}"),
            md: md.clone(),
        })
        .collect();
    assert_eq!(got, want);
    // Two streams, split by the promoted log attribute.
    let r = srv.get(
        "/loki/api/v1/series",
        &[("match[]", r#"{service_name="rules"}"#)],
    );
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 2, "{}", r.body);
}

/// With auth enabled the tenant comes from `X-Scope-OrgID` (HTTP header or
/// gRPC metadata); without it the export is refused (401 in the request's
/// encoding, gRPC UNAUTHENTICATED); tenants do not see each other's logs.
#[test]
fn tenants_over_http_and_grpc() {
    let srv = Server::start_with(&["--auth-enabled"]);
    let base = base_ns();
    let body = partial_req("t", base).encode_to_vec();

    let (status, ct, resp) = post_raw(&srv, "application/x-protobuf", None, &body);
    assert_eq!(status, 401);
    assert_eq!(ct, "application/x-protobuf");
    assert_eq!(
        RpcStatus::decode(resp.as_slice()).unwrap(),
        RpcStatus {
            code: 16,
            message: "no org id".into()
        }
    );

    let r = common::agent()
        .post(&srv.url("/otlp/v1/logs"))
        .header("Content-Type", "application/x-protobuf")
        .header("X-Scope-OrgID", "team-a")
        .send(&body[..])
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    runtime().block_on(async {
        let mut c = grpc_client(&srv).await;
        let e = c
            .export(partial_req("g", base))
            .await
            .expect_err("no tenant");
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let mut r = tonic::Request::new(partial_req("g", base));
        r.metadata_mut()
            .insert("x-scope-orgid", "team-b".parse().unwrap());
        c.export(r).await.expect("export with tenant");
    });

    let end = (now_ns() + 60_000_000_000).to_string();
    let st = base.to_string();
    let lines = |tenant: &str| -> Vec<String> {
        let r = srv.get_h(
            "/loki/api/v1/query_range",
            &[
                ("query", r#"{service_name=~"t|g"}"#),
                ("start", &st),
                ("end", &end),
                ("direction", "forward"),
            ],
            &[("X-Scope-OrgID", tenant)],
        );
        assert_eq!(r.status, 200, "{}", r.body);
        common::all_values(&r.json())
            .into_iter()
            .map(|(_, l)| l)
            .collect()
    };
    // Default max line size: all three records of each request are stored.
    let long = "x".repeat(100);
    assert_eq!(
        lines("team-a"),
        vec!["t first".to_string(), long.clone(), "t third".into()]
    );
    assert_eq!(
        lines("team-b"),
        vec!["g first".to_string(), long, "g third".into()]
    );
    assert!(lines("team-c").is_empty());
}

/// Without `service.name`, `service_name` comes from the first index label
/// in Loki's discovery list (`k8s.container.name` → `k8s_container_name`);
/// a record with neither time nor observed time gets the arrival time.
#[test]
fn service_name_discovery_and_arrival_time() {
    let srv = Server::start();
    let before = now_ns();
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("k8s.namespace.name", s("ns1")),
                    kv("k8s.container.name", s("cart-container")),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: None,
                log_records: vec![LogRecord {
                    body: any(s("no time at all")),
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    assert_eq!(post_proto(&srv, &req), ExportLogsServiceResponse::default());
    let after = now_ns();
    let got = query_cat(
        &srv,
        r#"{k8s_namespace_name="ns1"}"#,
        before - 1_000_000_000,
        after + 1_000_000_000,
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0].labels,
        map(&[
            ("k8s_container_name", "cart-container"),
            ("k8s_namespace_name", "ns1"),
            ("service_name", "cart-container"),
        ])
    );
    assert!(
        (before..=after).contains(&got[0].ts),
        "{} not in [{before}, {after}]",
        got[0].ts
    );
    assert_eq!(got[0].line, "no time at all");
    // No observed_timestamp (neither time was set), no severity fields.
    assert_eq!(got[0].md, map(&[("detected_level", "unknown")]));
}

/// Over the tenant's ingestion rate the whole export is refused as
/// retryable: HTTP 429 with `Retry-After` and RESOURCE_EXHAUSTED (8) in the
/// request's encoding, gRPC `RESOURCE_EXHAUSTED`; nothing is stored, and a
/// small export within the burst still goes through.
#[test]
fn rate_limited_exports_are_retryable() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("miniloki.toml");
    // 0.001 MiB ≈ 1 KiB per second and of burst.
    std::fs::write(
        &cfg,
        "[ingest]\ningestion_rate_mb = 0.001\ningestion_burst_size_mb = 0.001\n",
    )
    .unwrap();
    let srv = Server::start_with(&["--config", cfg.to_str().unwrap()]);
    let base = base_ns();
    let mut big = partial_req("rl", base);
    big.resource_logs[0].scope_logs[0].log_records[1].body = any(s(&"z".repeat(4000)));
    let prefix = "ingestion rate limit exceeded for user fake";

    // (`Content-Encoding: identity` is accepted as no encoding.)
    let mut r = common::agent()
        .post(&srv.url("/otlp/v1/logs"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "identity")
        .send(&big.encode_to_vec()[..])
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body = r.body_mut().read_to_vec().unwrap();
    let st = RpcStatus::decode(body.as_slice()).unwrap();
    assert_eq!(st.code, 8);
    assert!(st.message.starts_with(prefix), "{}", st.message);

    let json_big = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"timeUnixNano": base.to_string(), "body": {"stringValue": "z".repeat(4000)}}]}]}]});
    let (status, ct, body) = post_raw(
        &srv,
        "application/json",
        None,
        json_big.to_string().as_bytes(),
    );
    assert_eq!((status, ct.as_str()), (429, "application/json"));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], json!(8));

    runtime().block_on(async {
        let mut c = grpc_client(&srv).await;
        let e = c.export(big.clone()).await.expect_err("rate limited");
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().starts_with(prefix), "{}", e.message());
    });

    let small = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s("rl"))],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: None,
                log_records: vec![LogRecord {
                    time_unix_nano: (base + 9) as u64,
                    body: any(s("small")),
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    assert_eq!(
        post_proto(&srv, &small),
        ExportLogsServiceResponse::default()
    );
    assert_eq!(lines_of(&srv, "rl", base), vec!["small".to_string()]);
}
