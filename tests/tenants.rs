//! Tenants and access control, end to end against the real binary:
//! * isolation: data pushed to tenant `a` is invisible to tenant `c` on every
//!   read endpoint, and tenant `a` does not see tenant `b`'s data;
//! * multi-tenant reads (`X-Scope-OrgID: a|b`): the union, every stream and
//!   series labelled `__tenant_id__`, `__tenant_id__` matchers choose tenants;
//!   pushes naming several tenants are refused (400, Loki's text);
//! * `--auth-tokens-file`: 401 without or with a wrong token (bearer and
//!   basic), 403 for a tenant the token may not read or write, `/ready` and
//!   `/metrics` open, the same check on OTLP/gRPC;
//! * token text never appears in the server's log output.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{now_ns, Server};
use miniloki::proto::otlp::collector::logs_service_client::LogsServiceClient;
use miniloki::proto::otlp::collector::ExportLogsServiceRequest;
use miniloki::proto::otlp::common::{any_value::Value as V, AnyValue, KeyValue};
use miniloki::proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use miniloki::proto::otlp::resource::Resource;
use serde_json::{json, Value};

const MIN: i64 = 60_000_000_000;

/// Pushes `lines` (one per second from `base`) as one stream.
fn push(srv: &Server, headers: &[(&str, &str)], env: &str, base: i64, lines: &[&str]) -> u16 {
    let values: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| json!([(base + i as i64 * 1_000_000_000).to_string(), l]))
        .collect();
    let body = json!({"streams": [{"stream": {"app": "shop", "env": env}, "values": values}]});
    let r = srv.post(
        "/loki/api/v1/push",
        "application/json",
        body.to_string().as_bytes(),
        headers,
    );
    r.status
}

/// (stream labels, lines) of a streams result, in response order.
fn streams(v: &Value) -> Vec<(serde_json::Map<String, Value>, Vec<String>)> {
    v["data"]["result"]
        .as_array()
        .expect("result array")
        .iter()
        .map(|s| {
            let lines = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e[1].as_str().unwrap().to_string())
                .collect();
            (s["stream"].as_object().unwrap().clone(), lines)
        })
        .collect()
}

fn get_json(srv: &Server, path: &str, params: &[(&str, &str)], headers: &[(&str, &str)]) -> Value {
    let r = srv.get_h(path, params, headers);
    assert_eq!(r.status, 200, "{path} {headers:?}: {}", r.body);
    r.json()
}

fn data_list(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn isolation_and_multi_tenant_union() {
    let srv = Server::start_with(&["--auth-enabled"]);
    let base = now_ns() - 10 * MIN;
    assert_eq!(
        push(&srv, &[("X-Scope-OrgID", "a")], "prod", base, &["a1", "a2"]),
        204
    );
    assert_eq!(
        push(
            &srv,
            &[("X-Scope-OrgID", "b")],
            "dev",
            base + 5_000_000_000,
            &["b1"]
        ),
        204
    );
    // A push naming two tenants is refused, as Loki's distributor does.
    let r = srv.post(
        "/loki/api/v1/push",
        "application/json",
        json!({"streams": [{"stream": {"app": "x"}, "values": [[base.to_string(), "no"]]}]})
            .to_string()
            .as_bytes(),
        &[("X-Scope-OrgID", "a|b")],
    );
    assert_eq!((r.status, r.body.trim()), (400, "multiple org IDs present"));

    let start = (base - MIN).to_string();
    let end = (now_ns() + MIN).to_string();
    let at = (base + 30_000_000_000).to_string();
    let range = [("start", start.as_str()), ("end", end.as_str())];
    let sel = [
        ("query", "{app=\"shop\"}"),
        ("start", start.as_str()),
        ("end", end.as_str()),
    ];
    let qr = |org: &str, q: &str| {
        get_json(
            &srv,
            "/loki/api/v1/query_range",
            &[("query", q), ("start", &start), ("end", &end)],
            &[("X-Scope-OrgID", org)],
        )
    };

    // Tenant `c` has no data: every read endpoint answers empty.
    let c = [("X-Scope-OrgID", "c")];
    assert!(streams(&qr("c", "{app=\"shop\"}")).is_empty());
    let v = get_json(
        &srv,
        "/loki/api/v1/query",
        &[
            ("query", "count_over_time({app=\"shop\"}[1h])"),
            ("time", &at),
        ],
        &c,
    );
    assert_eq!(v["data"]["result"], json!([]));
    assert!(data_list(&get_json(&srv, "/loki/api/v1/labels", &range, &c)).is_empty());
    assert!(data_list(&get_json(&srv, "/loki/api/v1/label/app/values", &range, &c)).is_empty());
    let v = get_json(
        &srv,
        "/loki/api/v1/series",
        &[
            ("match[]", "{app=\"shop\"}"),
            ("start", &start),
            ("end", &end),
        ],
        &c,
    );
    assert_eq!(v["data"], json!([]));
    let v = get_json(&srv, "/loki/api/v1/index/stats", &sel, &c);
    assert_eq!(
        v,
        json!({"streams": 0, "chunks": 0, "entries": 0, "bytes": 0})
    );
    let v = get_json(&srv, "/loki/api/v1/index/volume", &sel, &c);
    assert_eq!(v["data"]["result"], json!([]));
    let v = get_json(&srv, "/loki/api/v1/detected_labels", &sel, &c);
    assert_eq!(v["detectedLabels"], json!([]));
    let v = get_json(&srv, "/loki/api/v1/detected_fields", &sel, &c);
    assert!(v["fields"].as_array().is_none_or(|a| a.is_empty()), "{v}");
    let v = get_json(&srv, "/loki/api/v1/patterns", &sel, &c);
    assert!(v["data"].as_array().is_none_or(|a| a.is_empty()), "{v}");

    // Tenant `a` sees exactly its own two lines (newest first).
    let a = streams(&qr("a", "{app=\"shop\"}"));
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].1, vec!["a2", "a1"]);
    assert!(
        !a[0].0.contains_key("__tenant_id__"),
        "single tenant: no label"
    );

    // `b|a`: the union, one stream per tenant, labelled.
    let u = streams(&qr("b|a", "{app=\"shop\"}"));
    let mut got: Vec<(String, String, Vec<String>)> = u
        .iter()
        .map(|(l, lines)| {
            (
                l["__tenant_id__"].as_str().unwrap().to_string(),
                l["env"].as_str().unwrap().to_string(),
                lines.clone(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("a".into(), "prod".into(), vec!["a2".into(), "a1".into()]),
            ("b".into(), "dev".into(), vec!["b1".into()]),
        ]
    );
    // A __tenant_id__ matcher chooses tenants.
    let only_b = streams(&qr("a|b", "{app=\"shop\", __tenant_id__=\"b\"}"));
    assert_eq!(only_b.len(), 1);
    assert_eq!(only_b[0].1, vec!["b1"]);
    // ... and filters on it work after selection too.
    let not_a = streams(&qr("a|b", "{app=\"shop\"} | __tenant_id__ != \"a\""));
    assert_eq!(not_a.iter().map(|s| s.1.len()).sum::<usize>(), 1);

    // Metric queries group by the tenant label: a has 2 lines, b has 1.
    let v = get_json(
        &srv,
        "/loki/api/v1/query",
        &[
            (
                "query",
                "sum by (__tenant_id__) (count_over_time({app=\"shop\"}[1h]))",
            ),
            ("time", &at),
        ],
        &[("X-Scope-OrgID", "a|b")],
    );
    let mut counts: Vec<(String, String)> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"]["__tenant_id__"].as_str().unwrap().to_string(),
                s["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        vec![("a".into(), "2".into()), ("b".into(), "1".into())]
    );
    // Without the grouping, the sum spans tenants: 3.
    let v = get_json(
        &srv,
        "/loki/api/v1/query",
        &[
            ("query", "sum(count_over_time({app=\"shop\"}[1h]))"),
            ("time", &at),
        ],
        &[("X-Scope-OrgID", "a|b")],
    );
    assert_eq!(v["data"]["result"][0]["value"][1], json!("3"));

    // Metadata endpoints.
    let ab = [("X-Scope-OrgID", "a|b")];
    let names = data_list(&get_json(&srv, "/loki/api/v1/labels", &range, &ab));
    for n in ["__tenant_id__", "app", "env"] {
        assert!(names.contains(&n.to_string()), "{names:?}");
    }
    assert_eq!(
        data_list(&get_json(
            &srv,
            "/loki/api/v1/label/__tenant_id__/values",
            &range,
            &ab
        )),
        vec!["a", "b"]
    );
    assert_eq!(
        data_list(&get_json(
            &srv,
            "/loki/api/v1/label/env/values",
            &range,
            &ab
        )),
        vec!["dev", "prod"]
    );
    assert_eq!(
        data_list(&get_json(
            &srv,
            "/loki/api/v1/label/env/values",
            &range,
            &[("X-Scope-OrgID", "b")]
        )),
        vec!["dev"]
    );
    let v = get_json(
        &srv,
        "/loki/api/v1/series",
        &[
            ("match[]", "{app=\"shop\"}"),
            ("start", &start),
            ("end", &end),
        ],
        &ab,
    );
    let mut ser: Vec<(String, String)> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["__tenant_id__"].as_str().unwrap().to_string(),
                s["env"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    ser.sort();
    assert_eq!(
        ser,
        vec![("a".into(), "prod".into()), ("b".into(), "dev".into())]
    );
    // Stats and volume of the union are the sums of each tenant's.
    let stats = |org: &str| {
        get_json(
            &srv,
            "/loki/api/v1/index/stats",
            &sel,
            &[("X-Scope-OrgID", org)],
        )
    };
    let (sa, sb, sab) = (stats("a"), stats("b"), stats("a|b"));
    assert_eq!(
        (sab["streams"].as_u64(), sab["entries"].as_u64()),
        (Some(2), Some(3))
    );
    for k in ["chunks", "bytes"] {
        assert_eq!(
            sab[k].as_u64().unwrap(),
            sa[k].as_u64().unwrap() + sb[k].as_u64().unwrap(),
            "{k}"
        );
    }
    let volume = |org: &str| -> u64 {
        let v = get_json(
            &srv,
            "/loki/api/v1/index/volume",
            &sel,
            &[("X-Scope-OrgID", org)],
        );
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["value"][1].as_str().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    // Volume counts line bytes: "a1" + "a2" = 4, "b1" = 2.
    assert_eq!((volume("a"), volume("b"), volume("a|b")), (4, 2, 6));
}

const TOKENS: &str = r#"
[[token]]
token = "tok-writer-a-7f3e"
read = ["a"]
write = ["a"]

[[token]]
token = "tok-reader-ab-91c2"
read = ["a", "b"]

[[token]]
token = "grafana:pw-55d0"
read = ["*"]
"#;
const SECRETS: [&str; 3] = ["tok-writer-a-7f3e", "tok-reader-ab-91c2", "pw-55d0"];
const WRITER: &str = "Bearer tok-writer-a-7f3e";
const READER: &str = "Bearer tok-reader-ab-91c2";
// base64("grafana:pw-55d0") = "Z3JhZmFuYTpwdy01NWQw"
const BASIC: &str = "Basic Z3JhZmFuYTpwdy01NWQw";

fn tokens_file(dir: &Path) -> String {
    let p = dir.join("tokens.toml");
    std::fs::File::create(&p)
        .and_then(|mut f| f.write_all(TOKENS.as_bytes()))
        .expect("write tokens file");
    p.to_string_lossy().into_owned()
}

fn otlp_req(line: &str, ts: i64) -> ExportLogsServiceRequest {
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(V::StringValue(v.into())),
        }),
        ..Default::default()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "grpcsvc")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: ts as u64,
                    body: Some(AnyValue {
                        value: Some(V::StringValue(line.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn auth_tokens_http_and_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let file = tokens_file(dir.path());
    let srv = Server::start_with(&["--auth-tokens-file", &file]);
    let base = now_ns() - 5 * MIN;
    let start = (base - MIN).to_string();
    let end = (now_ns() + MIN).to_string();
    let q = [
        ("query", "{app=\"shop\"}"),
        ("start", start.as_str()),
        ("end", end.as_str()),
    ];

    // Open routes.
    assert_eq!(srv.get("/ready", &[]).status, 200);
    assert_eq!(srv.get("/metrics", &[]).status, 200);

    // Writes: 401 without or with a bad token, 403 for a tenant not allowed.
    for auth in [
        None,
        Some("Bearer nope"),
        Some("tok-writer-a-7f3e"),
        Some("Bearer tok-writer-a-7f3"),
    ] {
        let mut h = vec![("X-Scope-OrgID", "a")];
        if let Some(a) = auth {
            h.push(("Authorization", a));
        }
        assert_eq!(push(&srv, &h, "prod", base, &["x"]), 401, "{auth:?}");
    }
    assert_eq!(
        push(
            &srv,
            &[("Authorization", WRITER), ("X-Scope-OrgID", "b")],
            "prod",
            base,
            &["x"]
        ),
        403
    );
    assert_eq!(
        push(
            &srv,
            &[("Authorization", READER), ("X-Scope-OrgID", "a")],
            "prod",
            base,
            &["x"]
        ),
        403
    );
    assert_eq!(
        push(
            &srv,
            &[("Authorization", BASIC), ("X-Scope-OrgID", "a")],
            "prod",
            base,
            &["x"]
        ),
        403
    );
    // The writer's single tenant is the default when the header is absent.
    assert_eq!(
        push(
            &srv,
            &[("Authorization", WRITER)],
            "prod",
            base,
            &["w1", "w2"]
        ),
        204
    );
    let r = srv.post("/flush", "text/plain", b"", &[]);
    assert_eq!(r.status, 401);
    let r = srv.post("/flush", "text/plain", b"", &[("Authorization", WRITER)]);
    assert_eq!(r.status, 204);

    // Reads: every read endpoint is closed without a token.
    for path in [
        "/loki/api/v1/query_range",
        "/loki/api/v1/query",
        "/loki/api/v1/labels",
        "/loki/api/v1/label/app/values",
        "/loki/api/v1/series",
        "/loki/api/v1/index/stats",
        "/loki/api/v1/index/volume",
        "/loki/api/v1/detected_labels",
        "/loki/api/v1/detected_fields",
        "/loki/api/v1/patterns",
        "/loki/api/v1/tail",
    ] {
        let r = srv.get_h(path, &q, &[("X-Scope-OrgID", "a")]);
        assert_eq!(r.status, 401, "{path}: {}", r.body);
        for s in SECRETS {
            assert!(!r.body.contains(s));
        }
    }
    let read = |auth: &str, org: Option<&str>| {
        let mut h = vec![("Authorization", auth)];
        if let Some(o) = org {
            h.push(("X-Scope-OrgID", o));
        }
        srv.get_h("/loki/api/v1/query_range", &q, &h)
    };
    let lines = |r: common::Resp| -> Vec<String> {
        assert_eq!(r.status, 200, "{}", r.body);
        streams(&r.json()).into_iter().flat_map(|s| s.1).collect()
    };
    assert_eq!(lines(read(WRITER, Some("a"))), vec!["w2", "w1"]);
    assert_eq!(lines(read(WRITER, None)), vec!["w2", "w1"]);
    assert_eq!(lines(read(READER, Some("a"))), vec!["w2", "w1"]);
    assert_eq!(lines(read(READER, Some("b"))), Vec::<String>::new());
    assert_eq!(lines(read(BASIC, Some("a|zzz"))), vec!["w2", "w1"]);
    assert_eq!(read(WRITER, Some("b")).status, 403);
    assert_eq!(read(WRITER, Some("a|b")).status, 403);
    assert_eq!(read(READER, Some("a|c")).status, 403);
    // Two readable tenants and no header: Loki's "no org id".
    let r = read(READER, None);
    assert_eq!((r.status, r.body.trim()), (401, "no org id"));
    // Wrong basic password.
    assert_eq!(read("Basic Z3JhZmFuYTpwdy01NWQx", Some("a")).status, 401);

    // OTLP/gRPC applies the same check.
    let addr = srv.grpc_addr.clone().expect("gRPC listener");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = LogsServiceClient::connect(format!("http://{addr}"))
            .await
            .expect("connect gRPC");
        let e = c.export(otlp_req("g0", base)).await.expect_err("no token");
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        assert!(SECRETS.iter().all(|s| !e.message().contains(s)));
        let mut r = tonic::Request::new(otlp_req("g0", base));
        r.metadata_mut()
            .insert("authorization", "Bearer wrong".parse().unwrap());
        let e = c.export(r).await.expect_err("wrong token");
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let mut r = tonic::Request::new(otlp_req("g0", base));
        r.metadata_mut()
            .insert("authorization", READER.parse().unwrap());
        r.metadata_mut()
            .insert("x-scope-orgid", "a".parse().unwrap());
        let e = c.export(r).await.expect_err("reader may not write");
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        let mut r = tonic::Request::new(otlp_req("g1", base + 1));
        r.metadata_mut()
            .insert("authorization", WRITER.parse().unwrap());
        c.export(r).await.expect("writer may write tenant a");
    });
    let r = srv.get_h(
        "/loki/api/v1/query_range",
        &[
            ("query", "{service_name=\"grpcsvc\"}"),
            ("start", &start),
            ("end", &end),
        ],
        &[("Authorization", READER), ("X-Scope-OrgID", "a")],
    );
    assert_eq!(lines(r), vec!["g1"]);
}

/// Spawns the binary with stderr to a file; returns (child, http address)
/// or the exit status when it stopped before becoming ready.
fn spawn_logged(
    data: &Path,
    log: &Path,
    tokens: &str,
) -> Result<(std::process::Child, String), std::process::ExitStatus> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_miniloki"))
        .args(["--listen", "127.0.0.1:0", "--otlp-grpc-listen", "off"])
        .arg("--data-dir")
        .arg(data)
        .args(["--auth-tokens-file", tokens])
        .env("MINILOKI_LOG_LEVEL", "trace")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(st);
        }
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("miniloki is ready")) {
            let i = line.find("http=").expect("http= in ready line") + 5;
            let addr: String = line[i..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .filter(|c| *c != '"')
                .collect();
            return Ok((child, addr));
        }
        assert!(Instant::now() < deadline, "not ready: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tokens_never_appear_in_logs() {
    let dir = tempfile::tempdir().unwrap();
    let file = tokens_file(dir.path());
    let log = dir.path().join("stderr.log");
    let (mut child, addr) = spawn_logged(&dir.path().join("data"), &log, &file).expect("starts");
    let url = |p: &str| format!("http://{addr}{p}");
    let body =
        json!({"streams": [{"stream": {"app": "shop"}, "values": [[now_ns().to_string(), "l"]]}]})
            .to_string();
    for auth in [
        WRITER,
        READER,
        BASIC,
        "Bearer tok-writer-a-7f3e-wrong",
        "Basic !!!",
    ] {
        let r = common::agent()
            .post(&url("/loki/api/v1/push"))
            .header("Content-Type", "application/json")
            .header("Authorization", auth)
            .send(body.as_bytes())
            .unwrap();
        assert!([204, 401, 403].contains(&r.status().as_u16()));
        let r = common::get_url(
            &url("/loki/api/v1/query_range"),
            &[("query", "{app=\"shop\"}")],
            &[("Authorization", auth), ("X-Scope-OrgID", "a")],
        );
        assert!([200, 401].contains(&r.status), "{}", r.body);
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("miniloki is ready"), "{text}");
    for s in SECRETS.iter().chain(&["Z3JhZmFuYTpwdy01NWQw"]) {
        assert!(!text.contains(s), "token text {s:?} in the log:\n{text}");
    }

    // A tokens file with an error stops start-up without printing tokens.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[token]]\ntoken = \"hunter2-secret\"\nreed = [\"a\"]\n",
    )
    .unwrap();
    let log2 = dir.path().join("stderr2.log");
    let st = spawn_logged(&dir.path().join("data2"), &log2, bad.to_str().unwrap())
        .map(|(mut c, _)| {
            let _ = c.kill();
            let _ = c.wait();
        })
        .expect_err("a bad tokens file must stop start-up");
    assert!(!st.success());
    let text = std::fs::read_to_string(&log2).unwrap();
    assert!(text.contains("auth tokens file"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

/// Tail serves one tenant: `a|b` is Loki's 400 before the upgrade; a single
/// tenant upgrades.
#[test]
fn tail_refuses_multiple_tenants() {
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Error};
    let srv = Server::start_with(&["--auth-enabled"]);
    let url = format!(
        "ws://{}/loki/api/v1/tail?query=%7Bapp%3D%22shop%22%7D",
        srv.addr
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = url.as_str().into_client_request().expect("request");
        req.headers_mut()
            .insert("X-Scope-OrgID", "a|b".parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Err(Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), 400);
                let body = resp.body().as_deref().unwrap_or_default();
                assert_eq!(
                    String::from_utf8_lossy(body).trim(),
                    "multiple org IDs present"
                );
            }
            Err(e) => panic!("expected an HTTP 400, got {e}"),
            Ok(_) => panic!("a|b must be refused"),
        }
        let mut req = url.as_str().into_client_request().expect("request");
        req.headers_mut()
            .insert("X-Scope-OrgID", "a".parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("single tenant upgrades");
        let _ = ws.close(None).await;
    });
}
