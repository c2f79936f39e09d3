//! Query and metadata endpoints: `query`, `query_range`, `labels`,
//! `label/<name>/values`, `series`, `format_query`, `index/stats`, and the
//! operational ones (`ready`, `metrics`, `buildinfo`, `flush`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::api::encode::{json_labels, json_str, query_response};
use crate::api::error::ApiError;
use crate::api::params::{now_ns, Params};
use crate::api::AppState;
use crate::labels::Labels;
use crate::logql::eval::{tenants, QueryParams, QueryStats};
use crate::logql::syntax::{ast, parse_expr};
use crate::storage::Matcher;

/// A JSON response with Loki's content type.
pub fn json_response(body: String) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

/// Sets the query's cancellation flag when dropped before being disarmed:
/// axum drops the handler future when the client goes away.
struct CancelOnDrop(Arc<AtomicBool>, bool);
impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// Whether the client asked for Loki's categorized labels
/// (`X-Loki-Response-Encoding-Flags: categorize-labels`).
pub fn wants_categorized(p: &Params) -> bool {
    p.header("x-loki-response-encoding-flags").is_some_and(|v| {
        v.split(',')
            .any(|f| f.trim().eq_ignore_ascii_case("categorize-labels"))
    })
}

async fn run_query(
    st: Arc<AppState>,
    p: &Params,
    query: String,
    qp: QueryParams,
) -> Result<Response, ApiError> {
    let tenant = st.tenant(&p.headers)?;
    let categorize = wants_categorized(p);
    let ctx = st.engine.context(&tenant);
    let mut guard = CancelOnDrop(ctx.cancel.clone(), false);
    let st2 = st.clone();
    let ctx2 = ctx.clone();
    let damaged = st.store.damaged_blocks(&tenant);
    let result = st
        .run_in_pool(&tenant.clone(), &ctx, move || {
            st2.engine.query(&tenant, &query, &qp, &ctx2)
        })
        .await;
    guard.1 = true;
    let result = result??;
    let exec = ctx.started.elapsed().as_secs_f64();
    let stats: QueryStats = ctx.stats.lock().clone();
    // Blocks skipped at start-up, even when no stream of them was selected.
    for w in damaged {
        stats.read.skipped.push(w);
    }
    let warnings = stats.read.skipped.list();
    Ok(json_response(query_response(
        &result, &stats, exec, categorize, &warnings,
    )))
}

/// The `query` parameter, or Loki's 400 when it is missing.
pub fn required_query(p: &Params) -> Result<&str, ApiError> {
    p.get("query")
        .ok_or_else(|| ApiError::bad_request("query parameter is required"))
}

/// `GET|POST /loki/api/v1/query_range`
pub async fn query_range(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, ApiError> {
    let query = required_query(&p)?.to_string();
    let now = now_ns();
    let (start, end) = p.bounds(now)?;
    if end < start {
        return Err(ApiError::bad_request(
            "end timestamp must not be before or equal to start time",
        ));
    }
    let step = match p.duration("step")? {
        Some(s) => s,
        None => crate::api::params::default_step(start, end),
    };
    if step <= 0 {
        return Err(ApiError::bad_request("zero or negative query resolution step widths are not accepted. Try a positive integer"));
    }
    if (end - start) / step > 11_000 {
        return Err(ApiError::bad_request(
            "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter",
        ));
    }
    let interval = p.duration("interval")?.unwrap_or(0);
    if interval < 0 {
        return Err(ApiError::bad_request("negative interval not accepted"));
    }
    let qp = QueryParams {
        start,
        end,
        step,
        interval,
        limit: p.limit(100)?,
        direction: p.direction()?,
        instant: false,
    };
    run_query(st, &p, query, qp).await
}

/// `GET|POST /loki/api/v1/query`
pub async fn query_instant(
    State(st): State<Arc<AppState>>,
    p: Params,
) -> Result<Response, ApiError> {
    let query = required_query(&p)?.to_string();
    let t = p.time("time", now_ns())?;
    let qp = QueryParams {
        start: t,
        end: t,
        step: 0,
        interval: 0,
        limit: p.limit(100)?,
        direction: p.direction()?,
        instant: true,
    };
    run_query(st, &p, query, qp).await
}

/// Parses a `query`/`match[]` value into storage matchers; `{}` means all.
pub fn selector_matchers(q: &str) -> Result<Vec<Matcher>, ApiError> {
    if q.trim() == "{}" {
        return Ok(Vec::new());
    }
    let sel = match parse_expr(q)? {
        ast::Expr::Log(l) => l.selector,
        ast::Expr::Metric(_) => {
            return Err(ApiError::bad_request(format!(
                "parse error : expected a stream selector, got a metric query: {q}"
            )))
        }
    };
    Ok(crate::logql::eval::selector::storage_matchers(&sel)?)
}

fn list_response(items: &[String]) -> Response {
    let mut out = String::from("{\"status\":\"success\"");
    // Loki omits an empty `data` (omitempty).
    if !items.is_empty() {
        out.push_str(",\"data\":[");
        for (i, v) in items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_str(&mut out, v);
        }
        out.push(']');
    }
    out.push('}');
    json_response(out)
}

/// `GET|POST /loki/api/v1/labels`
pub async fn labels(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, ApiError> {
    let tenant = st.tenant(&p.headers)?;
    let (start, end) = p.bounds(now_ns())?;
    let matchers = match p.get("query") {
        Some(q) => selector_matchers(q)?,
        None => Vec::new(),
    };
    let Some((start, end)) = st.read_range(&tenant, start, end)? else {
        return Ok(list_response(&[]));
    };
    let store = st.store.clone();
    let names = st
        .on_query_pool(&tenant.clone(), move || {
            tenants::label_names(&store, &tenant, &matchers, start, end.saturating_add(1))
        })
        .await??;
    Ok(list_response(&names))
}

/// `GET|POST /loki/api/v1/label/{name}/values`
pub async fn label_values(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    p: Params,
) -> Result<Response, ApiError> {
    let tenant = st.tenant(&p.headers)?;
    let (start, end) = p.bounds(now_ns())?;
    let matchers = match p.get("query") {
        Some(q) => selector_matchers(q)?,
        None => Vec::new(),
    };
    let Some((start, end)) = st.read_range(&tenant, start, end)? else {
        return Ok(list_response(&[]));
    };
    let store = st.store.clone();
    let values = st
        .on_query_pool(&tenant.clone(), move || {
            tenants::label_values(
                &store,
                &tenant,
                &name,
                &matchers,
                start,
                end.saturating_add(1),
            )
        })
        .await??;
    Ok(list_response(&values))
}

/// `GET|POST /loki/api/v1/series` with `match[]` and/or `match` (unioned).
pub async fn series(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, ApiError> {
    let tenant = st.tenant(&p.headers)?;
    let (start, end) = p.bounds(now_ns())?;
    let mut selectors: Vec<Vec<Matcher>> = Vec::new();
    for q in p.all("match[]").into_iter().chain(p.all("match")) {
        if !q.is_empty() {
            selectors.push(selector_matchers(q)?);
        }
    }
    if selectors.is_empty() {
        selectors.push(Vec::new());
    }
    let Some((start, end)) = st.read_range(&tenant, start, end)? else {
        return Ok(json_response(
            "{\"status\":\"success\",\"data\":[]}".to_string(),
        ));
    };
    let store = st.store.clone();
    let key = tenant.clone();
    let work = move || -> Result<Vec<Labels>, ApiError> {
        let mut all = std::collections::BTreeSet::new();
        for m in &selectors {
            for s in tenants::select_series(&store, &tenant, m, start, end.saturating_add(1))? {
                all.insert(s.labels().clone());
            }
        }
        Ok(all.into_iter().collect())
    };
    let found = st.on_query_pool(&key, work).await??;
    let mut out = String::from("{\"status\":\"success\",\"data\":[");
    for (i, l) in found.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_labels(&mut out, l);
    }
    out.push_str("]}");
    Ok(json_response(out))
}

/// `GET|POST /loki/api/v1/index/stats`: a bare object, no envelope.
pub async fn index_stats(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, ApiError> {
    let tenant = st.tenant(&p.headers)?;
    let (start, end) = p.bounds(now_ns())?;
    let matchers = selector_matchers(required_query(&p)?)?;
    let s = match st.read_range(&tenant, start, end)? {
        None => Default::default(),
        Some((start, end)) => {
            let store = st.store.clone();
            st.on_query_pool(&tenant.clone(), move || {
                tenants::index_stats(&store, &tenant, &matchers, start, end.saturating_add(1))
            })
            .await??
        }
    };
    Ok(json_response(format!(
        "{{\"streams\":{},\"chunks\":{},\"entries\":{},\"bytes\":{}}}",
        s.streams, s.chunks, s.entries, s.bytes
    )))
}

/// `GET|POST /loki/api/v1/format_query`
pub async fn format_query(p: Params) -> Result<Response, ApiError> {
    let q = required_query(&p)?;
    let expr = parse_expr(q)?;
    let printed = expr.to_string();
    let mut out = String::from("{\"status\":\"success\",\"data\":");
    json_str(&mut out, &printed);
    out.push('}');
    Ok(json_response(out))
}

/// `GET /ready`
pub async fn ready(State(st): State<Arc<AppState>>) -> Response {
    if st.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        crate::api::error::text_response(503, "not ready: replaying the write-ahead log\n".into())
    }
}

/// `GET /loki/api/v1/status/buildinfo`. Reports a Loki version so that
/// Grafana enables the features it gates on the version.
pub async fn buildinfo() -> Response {
    let body = serde_json::json!({
        "version": crate::api::LOKI_COMPAT_VERSION,
        "revision": concat!("miniloki-", env!("CARGO_PKG_VERSION")),
        "branch": "miniloki",
        "buildUser": "miniloki",
        "buildDate": "",
        "goVersion": "",
    });
    json_response(body.to_string())
}

/// `POST /flush`: cut every head and write all chunks to blocks now.
pub async fn flush(State(st): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let store = st.store.clone();
    tokio::task::spawn_blocking(move || store.flush()).await??;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /metrics`
pub async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let mut out = String::with_capacity(8192);
    st.render_metrics(&mut out);
    let mut r = (StatusCode::OK, out).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// Unknown paths: Go's mux answer.
pub async fn not_found() -> Response {
    crate::api::error::text_response(404, "404 page not found\n".into())
}
