//! Placeholder until the metric evaluation branch lands.
use crate::logql::eval::{EvalError, QueryParams, QueryResult, SampleSource};
use crate::logql::syntax::ast::MetricExpr;

#[derive(Clone, Debug)]
pub struct MetricLimits {
    pub max_query_series: usize,
}
impl Default for MetricLimits {
    fn default() -> Self {
        MetricLimits {
            max_query_series: 500,
        }
    }
}

pub fn eval_metric(
    _e: &MetricExpr,
    _p: &QueryParams,
    _s: &dyn SampleSource,
    _l: &MetricLimits,
) -> Result<QueryResult, EvalError> {
    Err(EvalError::BadRequest(
        "metric queries are not implemented yet".into(),
    ))
}
