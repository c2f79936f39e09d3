//! The HTTP and gRPC surface: Loki's API paths, parameters, JSON shapes,
//! status codes and error texts. Handlers parse requests, call ingestion or
//! LogQL, and encode results; they hold no storage or query logic.
//!
//! * `handlers` — queries, label metadata, index stats, operational routes.
//! * `push` — the push API and OTLP/HTTP; `grpc` — OTLP/gRPC.
//! * `params` — Loki's parameter rules; `encode` — Loki's JSON shapes;
//!   `error` — status codes and plain-text errors; `metrics` — `/metrics`.
//!
//! [`serve`] runs both listeners until the shutdown future resolves, then
//! drains in-flight requests and flushes storage.

pub mod auth;
pub mod drilldown;
pub mod encode;
pub mod error;
pub mod grpc;
pub mod handlers;
pub mod metrics;
pub mod params;
pub mod push;
pub mod querypool;
pub mod tail;

use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use crate::api::error::ApiError;
use crate::api::metrics::{write_gauge, HttpMetrics};
use crate::config::Config;
use crate::ingest::Ingester;
use crate::labels::go_quote;
use crate::limits::{numeric_fields, TenantLimits};
use crate::logql::eval::Engine;
use crate::storage::Store;

/// The Loki version reported by `buildinfo` (Grafana gates features on it).
pub const LOKI_COMPAT_VERSION: &str = "3.5.0";
/// Largest accepted request body (Loki's `max_recv_msg_size`).
pub const MAX_BODY_BYTES: usize = 100 << 20;

/// Everything the handlers share.
pub struct AppState {
    pub config: Config,
    pub store: Arc<Store>,
    pub ingester: Ingester,
    pub engine: Engine,
    pub http_metrics: HttpMetrics,
    /// False until start-up (WAL replay) is complete.
    pub ready: AtomicBool,
    pub started: Instant,
    /// `--auth-tokens-file`, loaded; `None` leaves the API open.
    pub auth: Option<auth::AuthTokens>,
    /// Open tail connections per tenant (`max_concurrent_tail_requests`).
    pub active_tails: parking_lot::Mutex<std::collections::HashMap<String, usize>>,
    /// Where every query-executing endpoint runs its work.
    pub query_pool: querypool::QueryPool,
}

impl AppState {
    /// The tenant(s) of a read request: `fake` unless auth is enabled (or a
    /// tokens file is set), in which case `X-Scope-OrgID` is required (401
    /// `no org id`). `a|b` names several tenants (a multi-tenant query):
    /// see [`AppState::read_tenants`].
    pub fn tenant(&self, headers: &axum::http::HeaderMap) -> Result<String, ApiError> {
        if !self.config.auth_enabled && self.auth.is_none() {
            return Ok("fake".to_string());
        }
        match headers
            .get("x-scope-orgid")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
        {
            Some(t) if !t.is_empty() => {
                for one in t.split('|') {
                    validate_tenant(one)?;
                }
                Ok(t.to_string())
            }
            _ => Err(ApiError::new(401, "no org id")),
        }
    }

    /// A read's time range (ns) after the tenant's `max_query_lookback`
    /// (the start moves up; `None` when all of it is older) and
    /// `max_query_length` (400), as Loki's querier checks labels, series
    /// and stats requests.
    pub fn read_range(
        &self,
        org_id: &str,
        start: i64,
        end: i64,
    ) -> Result<Option<(i64, i64)>, ApiError> {
        let limits = self.engine.limits(org_id);
        let Some(start) = limits.clamp_start(start, end) else {
            return Ok(None);
        };
        limits.check_length(start, end)?;
        Ok(Some((start, end)))
    }

    /// The single tenant of a write (or single-tenant read: tail, patterns):
    /// as [`AppState::tenant`], but `a|b` is Loki's 400 `multiple org IDs
    /// present`.
    pub fn single_tenant(&self, headers: &axum::http::HeaderMap) -> Result<String, ApiError> {
        let t = self.tenant(headers)?;
        if t.contains('|') {
            return Err(ApiError::bad_request("multiple org IDs present"));
        }
        Ok(t)
    }

    /// Checks credentials against the tokens file (when one is set) and
    /// returns the `X-Scope-OrgID` value to use. Shared by HTTP and gRPC.
    pub fn authorize(
        &self,
        authorization: Option<&str>,
        org_id: Option<&str>,
        access: auth::Access,
    ) -> Result<Option<String>, ApiError> {
        match &self.auth {
            None => Ok(org_id.map(str::to_string)),
            Some(tokens) => tokens.authorize(authorization, org_id, access).map(Some),
        }
    }

    pub fn render_metrics(&self, out: &mut String) {
        self.http_metrics.render(out);
        self.ingester.metrics().render_prometheus(out);
        crate::storage::METRICS.render(out);
        write_gauge(
            out,
            "miniloki_uptime_seconds",
            "gauge",
            "Seconds since the server started.",
            self.started.elapsed().as_secs_f64(),
        );
        if let Some((rss, peak)) = process_memory() {
            write_gauge(
                out,
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                rss,
            );
            write_gauge(
                out,
                "process_max_resident_memory_bytes",
                "gauge",
                "Peak resident memory size in bytes.",
                peak,
            );
        }
        let per_tenant: Vec<(String, usize)> = self
            .store
            .tenants()
            .into_iter()
            .map(|t| {
                let n = self.store.active_streams(&t);
                (t, n)
            })
            .collect();
        write_gauge(
            out,
            "miniloki_active_streams",
            "gauge",
            "Streams with data in memory.",
            per_tenant.iter().map(|(_, n)| *n).sum::<usize>() as f64,
        );
        let _ = writeln!(
            out,
            "# HELP loki_ingester_memory_streams Streams with data in memory, per tenant (max_global_streams_per_user counts these).\n# TYPE loki_ingester_memory_streams gauge"
        );
        for (t, n) in &per_tenant {
            let _ = writeln!(
                out,
                "loki_ingester_memory_streams{{tenant={}}} {n}",
                go_quote(t)
            );
        }
        write_gauge(
            out,
            "loki_querier_tail_active",
            "gauge",
            "Open live-tail connections.",
            self.active_tails.lock().values().sum::<usize>() as f64,
        );
        self.query_pool.render_metrics(out);
        let _ = writeln!(
            out,
            "# HELP miniloki_limit A configured limit (0 = none; durations in seconds, booleans 0/1). tenant=\"\" is the default for every tenant; other tenants list only their overridden values.\n# TYPE miniloki_limit gauge"
        );
        for (name, v) in self.query_pool.limits() {
            let _ = writeln!(
                out,
                "miniloki_limit{{kind=\"server\",name=\"{name}\",tenant=\"\"}} {v}"
            );
        }
        write_limits(out, "ingest", self.ingester.tenant_limits());
        write_limits(out, "query", self.engine.tenant_limits());
    }
}

/// One limit set's `miniloki_limit` samples: defaults, then each tenant's
/// values that differ from them.
fn write_limits<T: serde::Serialize>(out: &mut String, kind: &str, limits: &TenantLimits<T>) {
    let defaults = numeric_fields(&**limits.defaults());
    for (name, v) in &defaults {
        let _ = writeln!(
            out,
            "miniloki_limit{{kind=\"{kind}\",name=\"{name}\",tenant=\"\"}} {v}"
        );
    }
    let overrides = limits.overrides();
    let mut tenants: Vec<&String> = overrides.keys().collect();
    tenants.sort();
    for t in tenants {
        for (name, v) in numeric_fields(&*overrides[t]) {
            if defaults.iter().any(|(n, d)| *n == name && *d == v) {
                continue;
            }
            let _ = writeln!(
                out,
                "miniloki_limit{{kind=\"{kind}\",name=\"{name}\",tenant={}}} {v}",
                go_quote(t)
            );
        }
    }
}

/// (current RSS, peak RSS) of this process from /proc, in bytes.
fn process_memory() -> Option<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = |key: &str| -> Option<f64> {
        let l = status.lines().find(|l| l.starts_with(key))?;
        l.split_whitespace()
            .nth(1)?
            .parse::<f64>()
            .ok()
            .map(|v| v * 1024.0)
    };
    Some((kb("VmRSS:")?, kb("VmHWM:")?))
}

/// Loki's tenant ID rules (for each part of `a|b`): 1 to 150 characters of `[a-zA-Z0-9!-_.*'()]`,
/// not `.` or `..`.
fn validate_tenant(t: &str) -> Result<(), ApiError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "!-_.*'()".contains(c);
    if t.is_empty() || t.len() > 150 || t == "." || t == ".." || !t.chars().all(ok_char) {
        return Err(ApiError::new(401, format!("tenant ID is invalid: {t:?}")));
    }
    Ok(())
}

async fn record_metrics(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    st.http_metrics.observe(
        &route,
        &method,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

/// Access control for HTTP (a no-op without a tokens file): every route but
/// `/ready` and `/metrics` needs credentials; pushes need write access, the
/// rest read access (`/flush` needs a token that may write some tenant). On
/// success `X-Scope-OrgID` is set to the authorised tenant(s).
async fn check_auth(State(st): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    if st.auth.is_none() || matches!(req.uri().path(), "/ready" | "/metrics") {
        return next.run(req).await;
    }
    let path = req.uri().path().to_string();
    let access = if matches!(
        path.as_str(),
        "/loki/api/v1/push" | "/api/prom/push" | "/otlp/v1/logs" | "/flush"
    ) {
        auth::Access::Write
    } else {
        auth::Access::Read
    };
    let result = {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let org = if path == "/flush" {
            None
        } else {
            header("x-scope-orgid")
        };
        st.authorize(header("authorization"), org, access)
    };
    match result {
        Ok(Some(tenant)) if path != "/flush" => {
            match axum::http::HeaderValue::from_str(&tenant) {
                Ok(v) => {
                    req.headers_mut().insert("x-scope-orgid", v);
                }
                Err(_) => return ApiError::bad_request("invalid X-Scope-OrgID").into_response(),
            }
            next.run(req).await
        }
        Ok(_) => next.run(req).await,
        // A token that may write some tenant may flush: "no org id" just
        // means it has several.
        Err(e) if path == "/flush" && e.status == 401 && e.message == "no org id" => {
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// All HTTP routes.
pub fn router(state: Arc<AppState>) -> Router {
    use handlers::*;
    Router::new()
        .route("/loki/api/v1/push", post(push::push))
        .route("/api/prom/push", post(push::push))
        .route("/otlp/v1/logs", post(push::otlp_logs))
        .route("/loki/api/v1/query", get(query_instant).post(query_instant))
        .route(
            "/loki/api/v1/query_range",
            get(query_range).post(query_range),
        )
        .route("/loki/api/v1/labels", get(labels).post(labels))
        .route(
            "/loki/api/v1/label/{name}/values",
            get(label_values).post(label_values),
        )
        .route("/loki/api/v1/series", get(series).post(series))
        .route(
            "/loki/api/v1/index/stats",
            get(index_stats).post(index_stats),
        )
        .route(
            "/loki/api/v1/format_query",
            get(format_query).post(format_query),
        )
        .route("/loki/api/v1/status/buildinfo", get(buildinfo))
        .route(
            "/loki/api/v1/index/volume",
            get(drilldown::volume).post(drilldown::volume),
        )
        .route(
            "/loki/api/v1/index/volume_range",
            get(drilldown::volume_range).post(drilldown::volume_range),
        )
        .route(
            "/loki/api/v1/detected_labels",
            get(drilldown::detected_labels).post(drilldown::detected_labels),
        )
        .route(
            "/loki/api/v1/detected_fields",
            get(drilldown::detected_fields).post(drilldown::detected_fields),
        )
        .route(
            "/loki/api/v1/detected_field/{name}/values",
            get(drilldown::detected_field_values).post(drilldown::detected_field_values),
        )
        .route(
            "/loki/api/v1/patterns",
            get(drilldown::patterns).post(drilldown::patterns),
        )
        .route(
            "/loki/api/v1/drilldown-limits",
            get(drilldown::drilldown_limits),
        )
        .route("/loki/api/v1/tail", get(tail::tail))
        .route("/api/prom/tail", get(tail::tail))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/flush", post(flush))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), check_auth))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_metrics,
        ))
        // One byte over the push limit, so that ingestion answers with
        // Loki's own 413 text.
        .layer(DefaultBodyLimit::max(
            state.config.ingest.max_recv_msg_size.saturating_add(1),
        ))
        .with_state(state)
}

/// Builds the state: opens storage (replaying the WAL) and the engines.
pub fn build_state(config: Config) -> anyhow::Result<Arc<AppState>> {
    config
        .otlp
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid [otlp] config: {e}"))?;
    let store = Store::open(config.storage.clone())?;
    let ingest_limits = Arc::new(TenantLimits::new(config.ingest.clone()));
    ingest_limits.set_overrides(config.overrides.ingest.clone());
    let query_limits = Arc::new(TenantLimits::new(config.query.clone()));
    query_limits.set_overrides(config.overrides.query.clone());
    let ingester = Ingester::new(store.clone(), ingest_limits, config.otlp.clone());
    let engine = Engine::new(store.clone(), query_limits);
    let auth = match &config.auth_tokens_file {
        Some(path) => Some(auth::AuthTokens::load(path)?),
        None => None,
    };
    let query_pool = querypool::QueryPool::new(config.query_pool.clone())?;
    Ok(Arc::new(AppState {
        config,
        store,
        ingester,
        engine,
        http_metrics: HttpMetrics::default(),
        ready: AtomicBool::new(false),
        started: Instant::now(),
        auth,
        active_tails: Default::default(),
        query_pool,
    }))
}

/// How often the config file is checked for `[overrides]` changes (Loki's
/// `runtime_config.period`). SIGHUP checks at once.
const OVERRIDES_RELOAD_PERIOD: std::time::Duration = std::time::Duration::from_secs(10);

/// Watches the config file (when there is one) and applies changed
/// `[overrides]` to the running limits. A broken file is logged and the
/// limits in force are kept.
fn spawn_overrides_reloader(state: Arc<AppState>) -> Option<tokio::task::JoinHandle<()>> {
    let path = state.config.config_file.clone()?;
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some(tokio::spawn(async move {
        let mut last = modified(&path);
        let mut tick = tokio::time::interval(OVERRIDES_RELOAD_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            let sighup = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            let forced = tokio::select! {
                _ = tick.tick() => false,
                Some(()) = sighup => true,
            };
            let now = modified(&path);
            if !forced && now == last {
                continue;
            }
            last = now;
            let c = &state.config;
            match crate::config::reload_overrides(&path, &c.ingest, &c.query) {
                Ok(o) => {
                    let tenants: std::collections::BTreeSet<&String> =
                        o.ingest.keys().chain(o.query.keys()).collect();
                    tracing::info!(
                        message = "Limit overrides reloaded.",
                        path = %path.display(),
                        tenants = tenants.len()
                    );
                    state.ingester.tenant_limits().set_overrides(o.ingest);
                    state.engine.tenant_limits().set_overrides(o.query);
                }
                Err(error) => tracing::warn!(
                    message = "Config file not reloaded; the limits in force are kept.",
                    %error
                ),
            }
        }
    }))
}

/// Serves HTTP on `listener` (and OTLP/gRPC on `grpc`, when given) until
/// `shutdown` resolves; then drains requests and flushes storage.
pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    grpc: Option<tokio::net::TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let grpc_task = grpc.map(|l| {
        let mut rx = rx.clone();
        let svc = grpc::service(state.clone());
        tokio::spawn(async move {
            let incoming = tokio_stream_from(l);
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = rx.wait_for(|v| *v).await;
                })
                .await
        })
    });
    let reloader = spawn_overrides_reloader(state.clone());
    state.ready.store(true, Ordering::Relaxed);
    let app = router(state.clone());
    let mut rx_http = rx.clone();
    let http = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = rx_http.wait_for(|v| *v).await;
    });
    let signal = tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    http.await?;
    signal.abort();
    if let Some(r) = reloader {
        r.abort();
    }
    if let Some(t) = grpc_task {
        match t.await {
            Ok(Err(error)) => {
                tracing::warn!(message = "OTLP/gRPC server stopped with an error.", %error)
            }
            Err(error) => tracing::warn!(message = "OTLP/gRPC task failed.", %error),
            Ok(Ok(())) => {}
        }
    }
    state.ready.store(false, Ordering::Relaxed);
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || store.shutdown()).await??;
    tracing::info!(message = "Shut down cleanly; heads flushed.");
    Ok(())
}

/// Adapts a bound listener into the stream of connections tonic serves.
fn tokio_stream_from(
    l: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(l, |l| async move {
        let r = l.accept().await.map(|(s, _)| s);
        Some((r, l))
    })
}

#[cfg(test)]
mod tests {
    use super::validate_tenant;

    #[test]
    fn empty_tenant_in_multi_tenant_header_is_invalid() {
        // `a||b` and `a|` name an empty tenant: refused, as dskit does.
        assert!(validate_tenant("").is_err());
        assert!(validate_tenant("a|b").is_err(), "`|` is a separator only");
        assert!(validate_tenant("team-a_1.(x)*").is_ok());
        assert!(validate_tenant(&"x".repeat(151)).is_err());
    }
}
