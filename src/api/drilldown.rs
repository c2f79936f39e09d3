//! Endpoints that Grafana's Explore and the Logs Drilldown app call besides
//! queries: log volume (`index/volume`, `index/volume_range`),
//! `detected_labels`, `detected_fields`, `detected_field/<name>/values`,
//! `patterns` and `drilldown-limits`.
//!
//! Volume reads only timestamps and line sizes (no line is decompressed).
//! Field detection and pattern extraction sample lines through the log
//! query engine and hand them to `logql::analysis`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;

use crate::api::encode::{format_ts_ms, json_labels, json_str};
use crate::api::error::ApiError;
use crate::api::handlers::{json_response, required_query, selector_matchers};
use crate::api::params::{now_ns, Params};
use crate::api::AppState;
use crate::labels::Labels;
use crate::logql::analysis;
use crate::logql::eval::{tenants, QueryParams, QueryResult, ResultEntry};
use crate::storage::{Direction, Matcher, ReadColumns, ReadStats};

/// Labels Grafana hides from label pickers.
const HIDDEN: [&str; 3] = ["__aggregated_metric__", "__tenant_id__", "__stream_shard__"];

/// How volume is grouped: by the given target labels, or by the selector's
/// own label names (Loki's default), or per label name (`aggregateBy=labels`).
fn volume_key(labels: &Labels, targets: &[String], by_labels: bool) -> Vec<Labels> {
    if by_labels {
        return labels
            .iter()
            .filter(|(k, _)| !HIDDEN.contains(k))
            .map(|(k, _)| Labels::from_pairs([(k, "")]))
            .collect();
    }
    vec![Labels::from_pairs(targets.iter().filter_map(|t| {
        labels.get(t).map(|v| (t.clone(), v.to_string()))
    }))]
}

struct VolumeRequest {
    /// The whole range is older than `max_query_lookback`: nothing to read.
    too_old: bool,
    tenant: String,
    matchers: Vec<Matcher>,
    start: i64,
    end: i64,
    limit: usize,
    targets: Vec<String>,
    by_labels: bool,
}

fn volume_request(st: &AppState, p: &Params) -> Result<VolumeRequest, ApiError> {
    let tenant = st.tenant(&p.headers)?;
    let (start, end) = p.bounds(now_ns())?;
    let range = st.read_range(&tenant, start, end)?;
    let too_old = range.is_none();
    let (start, end) = range.unwrap_or((start, end));
    let q = required_query(p)?;
    let matchers = selector_matchers(q)?;
    let limit = match p.get("limit").map(|v| v.parse::<usize>()) {
        None | Some(Ok(0)) => 100,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Err(ApiError::bad_request("invalid parameter \"limit\"")),
    };
    let by_labels = match p.get("aggregateBy") {
        None | Some("series") => false,
        Some("labels") => true,
        Some(_) => return Err(ApiError::bad_request("invalid aggregation option")),
    };
    let mut targets: Vec<String> = p
        .get("targetLabels")
        .map(|t| {
            t.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if targets.is_empty() {
        let mut seen = BTreeSet::new();
        for m in &matchers {
            if seen.insert(m.name.clone()) {
                targets.push(m.name.clone());
            }
        }
    }
    Ok(VolumeRequest {
        too_old,
        tenant,
        matchers,
        start,
        end,
        limit,
        targets,
        by_labels,
    })
}

/// Sums line bytes per group and per step bucket (`step` 0: one bucket).
fn compute_volume(
    st: &AppState,
    r: &VolumeRequest,
    step: i64,
) -> Result<HashMap<Labels, BTreeMap<i64, u64>>, ApiError> {
    let mut out: HashMap<Labels, BTreeMap<i64, u64>> = HashMap::new();
    if r.too_old {
        return Ok(out);
    }
    let through = r.end.saturating_add(1);
    let series = tenants::select_series(&st.store, &r.tenant, &r.matchers, r.start, through)?;
    let mut stats = ReadStats::default();
    for s in &series {
        let keys = volume_key(s.labels(), &r.targets, r.by_labels);
        let mut buckets: BTreeMap<i64, u64> = BTreeMap::new();
        for block in st.store.read_stream(
            s.tenant,
            &s.series,
            r.start,
            through,
            Direction::Forward,
            ReadColumns::TimestampsAndSizes,
            &mut stats,
        )? {
            let block = block?;
            for (i, ts) in block.timestamps.iter().enumerate() {
                let b = if step > 0 {
                    r.start + ((ts - r.start) / step + 1) * step
                } else {
                    r.end
                };
                *buckets.entry(b.min(r.end.max(r.start))).or_default() += block.line_lens[i] as u64;
            }
        }
        if buckets.is_empty() {
            continue;
        }
        for k in keys {
            let slot = out.entry(k).or_default();
            for (b, v) in &buckets {
                *slot.entry(*b).or_default() += v;
            }
        }
    }
    Ok(out)
}

/// `GET|POST /loki/api/v1/index/volume`: bytes per group as a vector.
pub async fn volume(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, ApiError> {
    let r = volume_request(&st, &p)?;
    let st2 = st.clone();
    let tenant = r.tenant.clone();
    let (r, groups) = st
        .on_query_pool(&tenant, move || compute_volume(&st2, &r, 0).map(|g| (r, g)))
        .await??;
    let mut rows: Vec<(Labels, u64)> = groups
        .into_iter()
        .map(|(k, b)| (k, b.values().sum()))
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    rows.truncate(r.limit);
    let ts = format_ts_ms(r.end.div_euclid(1_000_000));
    let mut out =
        String::from("{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[");
    for (i, (l, v)) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"metric\":");
        json_labels(&mut out, l);
        out.push_str(&format!(",\"value\":[{ts},\"{v}\"]}}"));
    }
    out.push_str("]}}");
    Ok(json_response(out))
}

/// `GET|POST /loki/api/v1/index/volume_range`: bytes per group per step.
pub async fn volume_range(
    State(st): State<Arc<AppState>>,
    p: Params,
) -> Result<Response, ApiError> {
    let r = volume_request(&st, &p)?;
    let step = p
        .duration("step")?
        .unwrap_or_else(|| crate::api::params::default_step(r.start, r.end));
    if step <= 0 {
        return Err(ApiError::bad_request("zero or negative query resolution step widths are not accepted. Try a positive integer"));
    }
    let st2 = st.clone();
    let tenant = r.tenant.clone();
    let (r, groups) = st
        .on_query_pool(&tenant, move || {
            compute_volume(&st2, &r, step).map(|g| (r, g))
        })
        .await??;
    let mut rows: Vec<(Labels, BTreeMap<i64, u64>, u64)> = groups
        .into_iter()
        .map(|(k, b)| {
            let total = b.values().sum();
            (k, b, total)
        })
        .collect();
    rows.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    rows.truncate(r.limit);
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out =
        String::from("{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[");
    for (i, (l, buckets, _)) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"metric\":");
        json_labels(&mut out, l);
        out.push_str(",\"values\":[");
        for (j, (ts, v)) in buckets.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(&format!(
                "[{},\"{v}\"]",
                format_ts_ms(ts.div_euclid(1_000_000))
            ));
        }
        out.push_str("]}");
    }
    out.push_str("]}}");
    Ok(json_response(out))
}

/// `GET|POST /loki/api/v1/detected_labels`: indexed labels with their
/// cardinality, leaving out labels whose values all look like numbers or
/// UUIDs (except the ones Loki always keeps), as Loki does.
pub async fn detected_labels(
    State(st): State<Arc<AppState>>,
    p: Params,
) -> Result<Response, ApiError> {
    let tenant = st.tenant(&p.headers)?;
    let (start, end) = p.bounds(now_ns())?;
    let matchers = match p.get("query") {
        Some(q) => selector_matchers(q)?,
        None => Vec::new(),
    };
    let store = st.store.clone();
    let key = tenant.clone();
    let work = move || -> Result<Vec<(String, usize)>, ApiError> {
        let mut rows = Vec::new();
        for name in tenants::label_names(&store, &tenant, &matchers, start, end.saturating_add(1))?
        {
            if HIDDEN.contains(&name.as_str()) {
                continue;
            }
            let values = tenants::label_values(
                &store,
                &tenant,
                &name,
                &matchers,
                start,
                end.saturating_add(1),
            )?;
            let always = ["cluster", "namespace", "instance", "pod"].contains(&name.as_str());
            if !always && analysis::reject_detected_label(&values) {
                continue;
            }
            rows.push((name, values.len()));
        }
        Ok(rows)
    };
    let rows = st.on_query_pool(&key, work).await??;
    let mut out = String::from("{\"detectedLabels\":[");
    for (i, (name, card)) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"label\":");
        json_str(&mut out, name);
        out.push_str(&format!(",\"cardinality\":{card}}}"));
    }
    out.push_str("]}");
    Ok(json_response(out))
}

/// Runs the log query of a detected_* or patterns request and returns up to
/// `limit` entries, newest first.
async fn sample_entries(
    st: &Arc<AppState>,
    p: &Params,
    limit: usize,
) -> Result<Vec<ResultEntry>, ApiError> {
    let tenant = st.tenant(&p.headers)?;
    let (start, end) = p.bounds(now_ns())?;
    let query = required_query(p)?.to_string();
    let qp = QueryParams {
        start,
        end,
        step: 0,
        interval: 0,
        limit,
        direction: Direction::Backward,
        instant: false,
    };
    let st2 = st.clone();
    let ctx = st.engine.context(&tenant);
    let ctx2 = ctx.clone();
    let res = st
        .run_in_pool(&tenant.clone(), &ctx, move || {
            st2.engine.query(&tenant, &query, &qp, &ctx2)
        })
        .await??;
    match res {
        QueryResult::Streams(e) => Ok(e),
        _ => Err(ApiError::bad_request(
            "detected fields and patterns need a log query, not a metric query",
        )),
    }
}

fn line_limit(p: &Params) -> Result<usize, ApiError> {
    match p.get("line_limit").map(|v| v.parse::<usize>()) {
        None => Ok(1000),
        Some(Ok(n)) if n > 0 => Ok(n.min(5000)),
        _ => Err(ApiError::bad_request("line_limit must be a positive value")),
    }
}

fn field_limit(p: &Params) -> usize {
    p.get("limit")
        .or_else(|| p.get("field_limit"))
        .and_then(|v| v.parse().ok())
        .filter(|n: &usize| *n > 0)
        .unwrap_or(1000)
}

/// `GET|POST /loki/api/v1/detected_fields`
pub async fn detected_fields(
    State(st): State<Arc<AppState>>,
    p: Params,
) -> Result<Response, ApiError> {
    let limit = field_limit(&p);
    let entries = sample_entries(&st, &p, line_limit(&p)?).await?;
    let fields = analysis::detect_fields(&entries);
    let mut out = String::from("{\"fields\":[");
    for (i, f) in fields.iter().take(limit).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"label\":");
        json_str(&mut out, &f.label);
        out.push_str(",\"type\":");
        json_str(&mut out, f.kind.as_str());
        out.push_str(&format!(",\"cardinality\":{},\"parsers\":", f.cardinality));
        if f.parsers.is_empty() {
            out.push_str("null");
        } else {
            out.push('[');
            for (j, pz) in f.parsers.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                json_str(&mut out, pz);
            }
            out.push(']');
        }
        if let Some(path) = &f.json_path {
            out.push_str(",\"jsonPath\":[");
            for (j, seg) in path.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                json_str(&mut out, seg);
            }
            out.push(']');
        }
        out.push('}');
    }
    out.push_str(&format!("],\"limit\":{limit}}}"));
    Ok(json_response(out))
}

/// `GET|POST /loki/api/v1/detected_field/{name}/values`
pub async fn detected_field_values(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    p: Params,
) -> Result<Response, ApiError> {
    let limit = field_limit(&p);
    let entries = sample_entries(&st, &p, line_limit(&p)?).await?;
    let values = analysis::field_values(&entries, &name);
    let mut out = String::from("{\"values\":[");
    for (i, v) in values.iter().take(limit).enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(&mut out, v);
    }
    out.push_str(&format!("],\"limit\":{limit}}}"));
    Ok(json_response(out))
}

/// `GET|POST /loki/api/v1/patterns`: patterns mined from the matching lines,
/// with a count per step.
pub async fn patterns(State(st): State<Arc<AppState>>, p: Params) -> Result<Response, ApiError> {
    let (start, end) = p.bounds(now_ns())?;
    let step = p
        .duration("step")?
        .unwrap_or_else(|| crate::api::params::default_step(start, end).max(10_000_000_000))
        .max(1_000_000_000);
    let entries = sample_entries(&st, &p, 5000).await?;
    let found = analysis::mine_patterns(&entries, start, step);
    let mut out = String::from("{\"status\":\"success\",\"data\":[");
    for (i, pat) in found.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"pattern\":");
        json_str(&mut out, &pat.pattern);
        out.push_str(",\"level\":");
        json_str(&mut out, &pat.level);
        out.push_str(",\"samples\":[");
        for (j, (ts, n)) in pat.samples.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(&format!("[{},{n}]", ts / 1_000_000_000));
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    Ok(json_response(out))
}

/// `GET /loki/api/v1/drilldown-limits`
pub async fn drilldown_limits(
    State(st): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let org_id = st.tenant(&headers)?;
    let q = st.engine.limits(&org_id);
    // Ingestion limits of the first tenant of `a|b`.
    let first = tenants::split_tenants(&org_id)
        .first()
        .copied()
        .unwrap_or("");
    let i = st.ingester.limits(first);
    let body = serde_json::json!({
        "limits": {
            "discover_log_levels": i.discover_log_levels,
            "discover_service_name": i.discover_service_name,
            "max_entries_limit_per_query": q.max_entries_limit_per_query,
            "max_query_series": q.max_query_series,
            "query_timeout": format!("{}s", q.query_timeout.as_secs()),
            "max_query_length": crate::units::format_model_duration(
                i64::try_from(q.max_query_length.as_nanos()).unwrap_or(i64::MAX),
            ),
            "volume_enabled": true,
            "pattern_persistence_enabled": false,
            "max_line_size": i.max_line_size,
        },
        "pattern_ingester_enabled": true,
        "version": crate::api::LOKI_COMPAT_VERSION,
    });
    Ok(json_response(body.to_string()))
}
