//! The query entry point: parse, check limits, and dispatch to log or
//! metric evaluation.

use std::sync::Arc;
use std::time::Duration;

use crate::logql::eval::context::QueryContext;
use crate::logql::eval::logs::eval_logs;
use crate::logql::eval::store_source::StoreSource;
use crate::logql::eval::{EvalError, QueryParams, QueryResult};
use crate::logql::syntax::{ast::Expr, parse_expr};
use crate::storage::Store;

/// Query limits, with Loki's defaults.
#[derive(Clone, Debug)]
pub struct QueryLimits {
    pub max_entries_limit_per_query: usize,
    pub max_query_series: usize,
    pub query_timeout: Duration,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_entries_limit_per_query: 5000,
            max_query_series: 500,
            query_timeout: Duration::from_secs(60),
        }
    }
}

/// Runs LogQL queries against a store.
pub struct Engine {
    pub store: Arc<Store>,
    pub limits: QueryLimits,
}

impl Engine {
    pub fn new(store: Arc<Store>, limits: QueryLimits) -> Engine {
        Engine { store, limits }
    }

    /// A fresh context with this engine's timeout.
    pub fn context(&self) -> QueryContext {
        QueryContext::new(self.limits.query_timeout)
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

    /// Runs a parsed query.
    pub fn eval(
        &self,
        tenant: &str,
        expr: &Expr,
        params: &QueryParams,
        ctx: &QueryContext,
    ) -> Result<QueryResult, EvalError> {
        match expr {
            Expr::Log(log) => {
                if params.instant {
                    return Err(EvalError::BadRequest(
                        "log queries are not supported as an instant query type, please change your query to a range query type".into(),
                    ));
                }
                let max = self.limits.max_entries_limit_per_query;
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
                crate::logql::eval::metric::eval_metric(m, &p, &source, &self.metric_limits())
            }
        }
    }

    fn metric_limits(&self) -> crate::logql::eval::metric::MetricLimits {
        crate::logql::eval::metric::MetricLimits {
            max_query_series: self.limits.max_query_series,
            ..Default::default()
        }
    }
}
