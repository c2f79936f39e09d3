//! The query entry point: parse, check limits, and dispatch to log or
//! metric evaluation.

use std::sync::Arc;
use std::time::Duration;

use crate::limits::{smallest_positive, TenantLimits};
use crate::logql::eval::context::QueryContext;
use crate::logql::eval::logs::eval_logs;
use crate::logql::eval::store_source::StoreSource;
use crate::logql::eval::tenants::{self, split_tenants};
use crate::logql::eval::{EvalError, QueryParams, QueryResult};
use crate::logql::syntax::ast::{Expr, LogExpr};
use crate::logql::syntax::parse_expr;
use crate::storage::Store;
use crate::units::{format_go_duration, format_ibytes, format_model_duration, now_ns};

/// A tenant's query limits, with Loki's defaults. `[query]` in the config
/// file sets them for every tenant; `[overrides.<tenant>]` per tenant.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryLimits {
    /// Largest `limit` of a log query; 0 = none.
    pub max_entries_limit_per_query: usize,
    /// Most series a metric query may return; 0 = none.
    pub max_query_series: usize,
    #[serde(with = "crate::units::serde_duration")]
    pub query_timeout: Duration,
    /// Longest time range of a query, labels or series request; 0 = none.
    #[serde(with = "crate::units::serde_duration")]
    pub max_query_length: Duration,
    /// How far back data may be read; older parts of a request's range are
    /// cut off (not an error). 0 = no limit.
    #[serde(with = "crate::units::serde_duration")]
    pub max_query_lookback: Duration,
    /// Most bytes (uncompressed lines, from the index) a query may read;
    /// 0 = none. Loki's default is 0 too.
    #[serde(with = "crate::units::serde_bytes")]
    pub max_query_bytes_read: u64,
    /// Most live tail connections per tenant; 0 = none.
    pub max_concurrent_tail_requests: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_entries_limit_per_query: 5000,
            max_query_series: 500,
            query_timeout: Duration::from_secs(60),
            max_query_length: Duration::from_secs(721 * 3600),
            max_query_lookback: Duration::ZERO,
            max_query_bytes_read: 0,
            max_concurrent_tail_requests: 10,
        }
    }
}

impl QueryLimits {
    /// The limits of a multi-tenant request: for each limit the smallest
    /// one any of the tenants sets (Loki's rule), 0 when none does.
    pub fn combine(all: &[Arc<QueryLimits>]) -> QueryLimits {
        if let [one] = all {
            return (**one).clone();
        }
        let n = |f: fn(&QueryLimits) -> u64| smallest_positive(all.iter().map(|l| f(l)));
        let d = |f: fn(&QueryLimits) -> Duration| {
            Duration::from_nanos(smallest_positive(
                all.iter()
                    .map(|l| f(l).as_nanos().min(u64::MAX as u128) as u64),
            ))
        };
        QueryLimits {
            max_entries_limit_per_query: n(|l| l.max_entries_limit_per_query as u64) as usize,
            max_query_series: n(|l| l.max_query_series as u64) as usize,
            query_timeout: d(|l| l.query_timeout),
            max_query_length: d(|l| l.max_query_length),
            max_query_lookback: d(|l| l.max_query_lookback),
            max_query_bytes_read: n(|l| l.max_query_bytes_read),
            max_concurrent_tail_requests: n(|l| l.max_concurrent_tail_requests as u64) as usize,
        }
    }

    /// Loki's `max_query_length` check of a request's time range (ns).
    pub fn check_length(&self, start: i64, end: i64) -> Result<(), EvalError> {
        let max = i64::try_from(self.max_query_length.as_nanos()).unwrap_or(i64::MAX);
        // Loki compares millisecond timestamps.
        let len = end.div_euclid(MS) * MS - start.div_euclid(MS) * MS;
        if max > 0 && len > max {
            return Err(EvalError::Limit(format!(
                "the query time range exceeds the limit (query length: {}, limit: {})",
                format_go_duration(len),
                format_model_duration(max)
            )));
        }
        Ok(())
    }

    /// The start of a request's range moved up to `now - max_query_lookback`
    /// (Loki's clamp); `None` when the whole range is older than that.
    pub fn clamp_start(&self, start: i64, end: i64) -> Option<i64> {
        let lookback = i64::try_from(self.max_query_lookback.as_nanos()).unwrap_or(i64::MAX);
        if lookback == 0 {
            return Some(start);
        }
        let min = now_ns().saturating_sub(lookback);
        if end < min {
            return None;
        }
        Some(start.max(min))
    }
}

const MS: i64 = 1_000_000;

/// Runs LogQL queries against a store.
pub struct Engine {
    pub store: Arc<Store>,
    limits: Arc<TenantLimits<QueryLimits>>,
}

impl Engine {
    pub fn new(store: Arc<Store>, limits: Arc<TenantLimits<QueryLimits>>) -> Engine {
        Engine { store, limits }
    }

    /// The limits for `org_id` (several tenants combined for `a|b`).
    pub fn limits(&self, org_id: &str) -> QueryLimits {
        let all: Vec<Arc<QueryLimits>> = split_tenants(org_id)
            .into_iter()
            .map(|t| self.limits.get(t))
            .collect();
        if all.is_empty() {
            return (**self.limits.defaults()).clone();
        }
        QueryLimits::combine(&all)
    }

    /// Every tenant's query limits (defaults and overrides).
    pub fn tenant_limits(&self) -> &Arc<TenantLimits<QueryLimits>> {
        &self.limits
    }

    /// A fresh context with `org_id`'s query timeout.
    pub fn context(&self, org_id: &str) -> QueryContext {
        QueryContext::new(self.limits(org_id).query_timeout)
    }

    /// Parses and runs `query` for `tenant`.
    pub fn query(
        &self,
        tenant: &str,
        query: &str,
        params: &QueryParams,
        ctx: &QueryContext,
    ) -> Result<QueryResult, EvalError> {
        let expr = parse_expr(query)?;
        self.eval(tenant, &expr, params, ctx)
    }

    /// Runs a parsed query after the time-range and size limits.
    pub fn eval(
        &self,
        tenant: &str,
        expr: &Expr,
        params: &QueryParams,
        ctx: &QueryContext,
    ) -> Result<QueryResult, EvalError> {
        let limits = self.limits(tenant);
        let Some(start) = limits.clamp_start(params.start, params.end) else {
            // All of it is beyond max_query_lookback: an empty answer.
            return Ok(empty_result(expr, params));
        };
        let clamped;
        let params = if start != params.start {
            clamped = QueryParams {
                start,
                ..params.clone()
            };
            &clamped
        } else {
            params
        };
        if params.instant {
            // The querier sees the instant query's widest range as its span.
            let widest = selectors(expr).iter().map(|s| s.1).max().unwrap_or(0);
            limits.check_length(params.start - widest, params.end)?;
        } else {
            limits.check_length(params.start, params.end)?;
        }
        if limits.max_query_bytes_read > 0 {
            let read = self.bytes_to_read(tenant, expr, params)?;
            if read > limits.max_query_bytes_read {
                return Err(EvalError::Limit(format!(
                    "the query would read too many bytes (query: {}, limit: {}); consider adding more specific stream selectors or reduce the time range of the query",
                    format_ibytes(read),
                    format_ibytes(limits.max_query_bytes_read)
                )));
            }
        }
        self.eval_unchecked(tenant, expr, params, ctx, &limits)
    }

    /// The bytes the index says the query's selectors would read, each over
    /// its own window (range and offset included), as Loki's
    /// `max_query_bytes_read` check counts them.
    fn bytes_to_read(
        &self,
        org_id: &str,
        expr: &Expr,
        params: &QueryParams,
    ) -> Result<u64, EvalError> {
        let mut total = 0u64;
        for (log, range, offset) in selectors(expr) {
            let matchers = crate::logql::eval::selector::storage_matchers(&log.selector)?;
            let from = params.start - range - offset;
            let through = params.end - offset;
            let s = tenants::index_stats(&self.store, org_id, &matchers, from, through)?;
            total = total.saturating_add(s.bytes);
        }
        Ok(total)
    }

    fn eval_unchecked(
        &self,
        tenant: &str,
        expr: &Expr,
        params: &QueryParams,
        ctx: &QueryContext,
        limits: &QueryLimits,
    ) -> Result<QueryResult, EvalError> {
        match expr {
            Expr::Log(log) => {
                if params.instant {
                    return Err(EvalError::BadRequest(
                        "log queries are not supported as an instant query type, please change your query to a range query type".into(),
                    ));
                }
                let max = limits.max_entries_limit_per_query;
                if max > 0 && params.limit > max {
                    return Err(EvalError::Limit(format!(
                        "max entries limit per query exceeded, limit > max_entries_limit_per_query ({} > {})",
                        params.limit, max
                    )));
                }
                Ok(QueryResult::Streams(eval_logs(
                    &self.store,
                    tenant,
                    log,
                    params,
                    ctx,
                )?))
            }
            Expr::Metric(m) => {
                let mut p = params.clone();
                if !p.instant && p.step > 0 {
                    // Loki's query frontend aligns metric range queries to the
                    // step: start floored, end ceiled.
                    p.start = p.start.div_euclid(p.step) * p.step;
                    let rem = p.end.rem_euclid(p.step);
                    if rem != 0 {
                        p.end = p.end - rem + p.step;
                    }
                }
                let source = StoreSource::new(&self.store, tenant, ctx, m);
                let metric_limits = crate::logql::eval::metric::MetricLimits {
                    max_query_series: limits.max_query_series,
                    ..Default::default()
                };
                crate::logql::eval::metric::eval_metric(m, &p, &source, &metric_limits)
            }
        }
    }
}

/// What a query answers when nothing can be read.
fn empty_result(expr: &Expr, params: &QueryParams) -> QueryResult {
    match expr {
        Expr::Log(_) => QueryResult::Streams(Vec::new()),
        Expr::Metric(_) if params.instant => QueryResult::Vector(Vec::new()),
        Expr::Metric(_) => QueryResult::Matrix(Vec::new()),
    }
}

/// Every log selector of a query with its range and offset (ns; 0 for a
/// log query).
fn selectors(expr: &Expr) -> Vec<(&LogExpr, i64, i64)> {
    match expr {
        Expr::Log(l) => vec![(l, 0, 0)],
        Expr::Metric(m) => m
            .range_aggregations()
            .into_iter()
            .map(|r| (&r.log, r.range, r.offset))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600 * 1_000_000_000;

    #[test]
    fn length_limit_uses_loki_text() {
        let l = QueryLimits::default();
        assert!(l.check_length(0, 721 * H).is_ok());
        let e = l.check_length(0, 744 * H).unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(
            e.to_string(),
            "the query time range exceeds the limit (query length: 744h0m0s, limit: 30d1h)"
        );
        let off = QueryLimits {
            max_query_length: Duration::ZERO,
            ..QueryLimits::default()
        };
        assert!(off.check_length(0, 10_000 * H).is_ok());
    }

    #[test]
    fn lookback_moves_the_start_or_empties_the_range() {
        let l = QueryLimits {
            max_query_lookback: Duration::from_secs(3600),
            ..QueryLimits::default()
        };
        let now = now_ns();
        // Entirely older than an hour: nothing to read.
        assert_eq!(l.clamp_start(now - 3 * H, now - 2 * H), None);
        // Partly older: the start moves up to about now - 1h.
        let s = l.clamp_start(now - 3 * H, now).unwrap();
        assert!(s >= now - H && s <= now_ns() - H, "{s}");
        // Newer: unchanged.
        assert_eq!(l.clamp_start(now - H / 2, now), Some(now - H / 2));
        assert_eq!(QueryLimits::default().clamp_start(1, 2), Some(1));
    }

    #[test]
    fn multi_tenant_limits_take_the_smallest_set_value() {
        let a = Arc::new(QueryLimits {
            max_query_series: 10,
            max_query_length: Duration::ZERO,
            max_query_bytes_read: 0,
            ..QueryLimits::default()
        });
        let b = Arc::new(QueryLimits {
            max_query_series: 50,
            max_query_length: Duration::from_secs(3600),
            max_query_bytes_read: 1000,
            ..QueryLimits::default()
        });
        let c = QueryLimits::combine(&[a.clone(), b]);
        assert_eq!(c.max_query_series, 10);
        // 0 (unlimited) for one tenant does not lift the other's limit.
        assert_eq!(c.max_query_length, Duration::from_secs(3600));
        assert_eq!(c.max_query_bytes_read, 1000);
        assert_eq!(QueryLimits::combine(std::slice::from_ref(&a)), *a);
    }

    #[test]
    fn selectors_carry_range_and_offset() {
        let e = parse_expr(
            r#"sum(rate({a="1"}[5m] offset 1h)) / sum(count_over_time({b="2"} |= "x" [1m]))"#,
        )
        .unwrap();
        let s: Vec<(String, i64, i64)> = selectors(&e)
            .into_iter()
            .map(|(l, r, o)| (l.selector[0].name.clone(), r, o))
            .collect();
        let m = 60 * 1_000_000_000;
        assert_eq!(
            s,
            vec![("a".to_string(), 5 * m, H), ("b".to_string(), m, 0)]
        );
        let e = parse_expr(r#"{c="3"} | json"#).unwrap();
        assert_eq!(selectors(&e).len(), 1);
    }
}
