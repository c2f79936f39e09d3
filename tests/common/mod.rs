//! Test harness: spawns the real `miniloki` binary on a random port with a
//! temporary data directory, and talks to it over HTTP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use prost::Message;

/// A stream to push: its labels and `(ts, line, structured metadata)` entries.
pub type ProtoStream<'a> = (&'a str, Vec<(i64, &'a str, Vec<(&'a str, &'a str)>)>);

pub struct Server {
    child: Option<Child>,
    pub addr: String,
    pub grpc_addr: Option<String>,
    pub dir: PathBuf,
    /// Keeps the temporary directory alive when the server owns it.
    _tmp: Option<tempfile::TempDir>,
    extra: Vec<String>,
}

impl Server {
    /// Starts a server on a fresh temporary directory.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Server::spawn(&dir, extra);
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server on an existing data directory.
    pub fn spawn(dir: &Path, extra: &[&str]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_miniloki"));
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(dir)
            .args(extra)
            .env_remove("MINILOKI_LISTEN")
            .env_remove("MINILOKI_DATA_DIR")
            .env("MINILOKI_LOG_LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !extra.iter().any(|a| a.starts_with("--otlp-grpc-listen")) {
            cmd.arg("--otlp-grpc-listen").arg("127.0.0.1:0");
        }
        let mut child = cmd.spawn().expect("spawn miniloki");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("MINILOKI_TEST_LOGS").is_some() {
                    eprintln!("[server] {line}");
                }
                if !sent && line.contains("miniloki is ready") {
                    let _ = tx.send(line.clone());
                    sent = true;
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server did not become ready within 60 s");
        let field = |name: &str| -> Option<String> {
            let i = line.find(&format!("{name}="))? + name.len() + 1;
            let rest = &line[i..];
            let end = rest.find(' ').unwrap_or(rest.len());
            Some(rest[..end].trim_matches('"').to_string())
        };
        let addr = field("http").expect("http address in ready line");
        let grpc_addr = field("otlp_grpc").filter(|a| a != "off");
        Server {
            child: Some(child),
            addr,
            grpc_addr,
            dir: dir.to_path_buf(),
            _tmp: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Process id of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(st)) = c.try_wait() {
                    return st.success();
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    return false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        false
    }

    /// Kills (SIGKILL) and starts again on the same directory and flags.
    pub fn restart_after_kill(&mut self) {
        self.kill9();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let next = Server::spawn(&self.dir, &extra);
        self.addr = next.addr.clone();
        self.grpc_addr = next.grpc_addr.clone();
        self.child = next.child_take();
    }

    fn child_take(mut self) -> Option<Child> {
        self.child.take()
    }

    pub fn get(&self, path: &str, params: &[(&str, &str)]) -> Resp {
        get_url(&self.url(path), params, &[])
    }

    pub fn get_h(&self, path: &str, params: &[(&str, &str)], headers: &[(&str, &str)]) -> Resp {
        get_url(&self.url(path), params, headers)
    }

    pub fn post(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = agent()
            .post(&self.url(path))
            .header("Content-Type", content_type);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        finish(req.send(body))
    }

    /// Pushes a Loki JSON body.
    pub fn push_json(&self, body: &serde_json::Value) -> Resp {
        self.post(
            "/loki/api/v1/push",
            "application/json",
            body.to_string().as_bytes(),
            &[],
        )
    }

    /// Pushes streams as snappy-compressed protobuf, as promtail does.
    pub fn push_proto(&self, streams: &[ProtoStream]) -> Resp {
        let body = proto_body(streams);
        self.post("/loki/api/v1/push", "application/x-protobuf", &body, &[])
    }

    pub fn flush(&self) {
        let r = self.post("/flush", "text/plain", b"", &[]);
        assert_eq!(r.status, 204, "flush: {}", r.body);
    }

    /// query_range, asserting 200, returning the JSON body.
    pub fn query_range(&self, query: &str, params: &[(&str, &str)]) -> serde_json::Value {
        let mut p = vec![("query", query)];
        p.extend_from_slice(params);
        let r = self.get("/loki/api/v1/query_range", &p);
        assert_eq!(r.status, 200, "query_range {query}: {}", r.body);
        r.json()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub struct Resp {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn finish(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Resp {
    let mut resp = r.expect("HTTP request failed");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .unwrap_or_default();
    Resp {
        status,
        body,
        headers,
    }
}

pub fn get_url(url: &str, params: &[(&str, &str)], headers: &[(&str, &str)]) -> Resp {
    let mut req = agent().get(url);
    for (k, v) in params {
        req = req.query(*k, *v);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    finish(req.call())
}

/// A snappy block-compressed `PushRequest`.
pub fn proto_body(streams: &[ProtoStream]) -> Vec<u8> {
    use miniloki::proto::logproto::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter};
    let req = PushRequest {
        streams: streams
            .iter()
            .map(|(labels, entries)| StreamAdapter {
                labels: labels.to_string(),
                entries: entries
                    .iter()
                    .map(|(ts, line, md)| EntryAdapter {
                        timestamp: Some(prost_types::Timestamp {
                            seconds: ts.div_euclid(1_000_000_000),
                            nanos: ts.rem_euclid(1_000_000_000) as i32,
                        }),
                        line: line.to_string(),
                        structured_metadata: md
                            .iter()
                            .map(|(k, v)| LabelPairAdapter {
                                name: k.to_string(),
                                value: v.to_string(),
                            })
                            .collect(),
                        parsed: vec![],
                    })
                    .collect(),
                hash: 0,
            })
            .collect(),
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy")
}

/// Now in Unix ns.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// All (ts, line) values of a streams result, flattened in response order.
pub fn all_values(v: &serde_json::Value) -> Vec<(i64, String)> {
    let mut out = vec![];
    for s in v["data"]["result"].as_array().expect("result array") {
        for e in s["values"].as_array().expect("values") {
            out.push((
                e[0].as_str().unwrap().parse().unwrap(),
                e[1].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}
