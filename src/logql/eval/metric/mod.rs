//! Metric query evaluation: range aggregations over steps, vector
//! aggregations, binary operators, `vector()`, literals and `label_replace`,
//! with Loki's semantics.
//!
//! Every node of a [`MetricExpr`] evaluates to a [`Grid`]: a set of series,
//! each with one optional value per evaluation step (`start, start+step, …
//! ≤ end`, or the single instant `end`). Range aggregations fill a grid from
//! the [`SampleSource`] in one pass over the samples (`range`); the other
//! nodes combine grids step by step (`vector`, `binary`, `functions`).
//! Memory is bounded by series × steps, never by the number of samples
//! (except for `quantile_over_time` and `rate_counter`, which need the values
//! of each window).
//!
//! [`eval_metric`] turns the root grid into the result Loki returns: a
//! matrix for range queries, a vector for instant ones, and a scalar for an
//! instant query of a literal-only expression.

mod binary;
mod functions;
pub mod range;
mod vector;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use crate::labels::Labels;
use crate::logql::eval::value::{QueryParams, QueryResult, Sample, Series};
use crate::logql::eval::{EvalError, SampleSource};
use crate::logql::syntax::ast::{MetricExpr, VectorOp};

/// Limits applied while evaluating a metric query.
#[derive(Clone, Debug)]
pub struct MetricLimits {
    /// Maximum number of series in the result (Loki's `max_query_series`).
    pub max_query_series: usize,
    /// Maximum `(end − start) / step` of a range query (Loki's API rejects
    /// more than 11,000).
    pub max_points_per_series: usize,
    /// Maximum series × steps held by one range aggregation before the
    /// outer aggregations reduce it; bounds memory (about 16 bytes each).
    pub max_intermediate_points: usize,
    /// Maximum series held by one range aggregation before the outer
    /// aggregations reduce it (each costs its label set twice).
    pub max_intermediate_series: usize,
}

impl Default for MetricLimits {
    fn default() -> Self {
        MetricLimits {
            max_query_series: 500,
            max_points_per_series: 11_000,
            max_intermediate_points: 10_000_000,
            max_intermediate_series: 100_000,
        }
    }
}

/// Loki's `max_query_series` error text.
pub fn series_limit_message(limit: usize) -> String {
    format!(
        "maximum number of series ({limit}) reached for a single query; consider reducing query cardinality by adding more specific stream selectors, reducing the time range, or aggregating results with functions like sum(), count() or topk()"
    )
}

/// Evaluates a metric expression at every step `params.start, start+step, ...
/// <= params.end` (ns), or once at `params.end` when `params.instant`.
pub fn eval_metric(
    expr: &MetricExpr,
    params: &QueryParams,
    source: &dyn SampleSource,
    limits: &MetricLimits,
) -> Result<QueryResult, EvalError> {
    let steps = Steps::from_params(params, limits)?;

    // A literal-only expression: Loki folds it at parse time and answers with
    // a scalar (instant) or a one-series matrix over every step (range).
    if let Some(v) = binary::fold_literal(expr)? {
        if params.instant {
            return Ok(QueryResult::Scalar(to_ms(steps.ts(0)), v));
        }
        let points = (0..steps.n).map(|i| (to_ms(steps.ts(i)), v)).collect();
        return Ok(QueryResult::Matrix(vec![Series {
            metric: Labels::new(),
            points,
        }]));
    }

    let ctx = EvalCtx {
        steps,
        source,
        preserve_error: groups_by_error(expr),
        max_points: limits.max_intermediate_points,
        max_series: limits.max_intermediate_series,
        instant: params.instant,
    };
    let grid = ctx.eval(expr)?;

    if params.instant {
        let mut vec: Vec<Sample> = grid
            .rows
            .into_iter()
            .filter_map(|r| {
                r.vals.first().copied().flatten().map(|value| Sample {
                    metric: r.labels,
                    ts_ms: to_ms(steps.ts(0)),
                    value,
                })
            })
            .collect();
        if vec.len() > limits.max_query_series {
            return Err(EvalError::Limit(series_limit_message(
                limits.max_query_series,
            )));
        }
        vec.sort_by(|a, b| a.metric.cmp(&b.metric));
        if let Some(desc) = sort_order(expr) {
            vector::sort_samples_by_value(&mut vec, desc);
        }
        return Ok(QueryResult::Vector(vec));
    }

    let mut series: Vec<Series> = grid
        .rows
        .into_iter()
        .filter_map(|r| {
            let points: Vec<(i64, f64)> = r
                .vals
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|v| (to_ms(steps.ts(i)), v)))
                .collect();
            (!points.is_empty()).then_some(Series {
                metric: r.labels,
                points,
            })
        })
        .collect();
    if series.len() > limits.max_query_series {
        return Err(EvalError::Limit(series_limit_message(
            limits.max_query_series,
        )));
    }
    series.sort_by(|a, b| a.metric.cmp(&b.metric));
    Ok(QueryResult::Matrix(series))
}

/// Nanoseconds to milliseconds, as Loki converts step timestamps.
fn to_ms(ns: i64) -> i64 {
    ns / 1_000_000
}

/// The evaluation times of a query: `start + i*step` for `i < n`.
#[derive(Clone, Copy, Debug)]
pub struct Steps {
    pub start: i64,
    /// Always > 0 (1 for instant queries).
    pub step: i64,
    pub n: usize,
}

impl Steps {
    fn from_params(params: &QueryParams, limits: &MetricLimits) -> Result<Steps, EvalError> {
        if params.instant {
            return Ok(Steps {
                start: params.end,
                step: 1,
                n: 1,
            });
        }
        if params.step <= 0 {
            return Err(EvalError::BadRequest(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".to_string(),
            ));
        }
        if params.end < params.start {
            return Err(EvalError::BadRequest(
                "end timestamp must not be before or equal to start time".to_string(),
            ));
        }
        // Loki's API allows (end − start)/step ≤ 11,000 intervals.
        let intervals = (params.end as i128 - params.start as i128) / params.step as i128;
        if intervals > limits.max_points_per_series as i128 {
            return Err(EvalError::BadRequest(format!(
                "exceeded maximum resolution of {} points per time series. Try increasing the value of the step parameter",
                group_thousands(limits.max_points_per_series)
            )));
        }
        let n = intervals + 1;
        Ok(Steps {
            start: params.start,
            step: params.step,
            n: n as usize,
        })
    }

    pub fn ts(&self, i: usize) -> i64 {
        self.start
            .saturating_add(self.step.saturating_mul(i as i64))
    }
}

fn group_thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One series of a [`Grid`]: its labels and a value (or nothing) per step.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub labels: Labels,
    pub vals: Vec<Option<f64>>,
}

/// The value of a metric sub-expression at every step.
#[derive(Clone, Debug, Default)]
pub struct Grid {
    pub n: usize,
    pub rows: Vec<Row>,
    index: HashMap<Labels, usize>,
}

impl Grid {
    pub fn new(n: usize) -> Grid {
        Grid {
            n,
            rows: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// The row of `labels`, created empty when missing.
    pub fn row_mut(&mut self, labels: &Labels) -> &mut Row {
        let idx = match self.index.get(labels) {
            Some(&i) => i,
            None => {
                let i = self.rows.len();
                self.rows.push(Row {
                    labels: labels.clone(),
                    vals: vec![None; self.n],
                });
                self.index.insert(labels.clone(), i);
                i
            }
        };
        &mut self.rows[idx]
    }

    /// Sets the value of `labels` at step `i`; a later write wins.
    pub fn set(&mut self, labels: &Labels, i: usize, v: f64) {
        let n = self.n;
        let row = self.row_mut(labels);
        if i < n {
            row.vals[i] = Some(v);
        }
    }

    /// Sorts the rows by labels, so that per-step vectors come out in a
    /// deterministic order (Loki's order is its map order).
    pub fn sort(&mut self) {
        self.rows.sort_by(|a, b| a.labels.cmp(&b.labels));
        self.index.clear();
        for (i, r) in self.rows.iter().enumerate() {
            self.index.insert(r.labels.clone(), i);
        }
    }

    /// The samples present at step `i`, as `(row index, value)`.
    pub fn at(&self, i: usize, out: &mut Vec<(usize, f64)>) {
        out.clear();
        for (r, row) in self.rows.iter().enumerate() {
            if let Some(Some(v)) = row.vals.get(i) {
                out.push((r, *v));
            }
        }
    }
}

/// What every node evaluation needs.
pub struct EvalCtx<'a> {
    pub steps: Steps,
    pub source: &'a dyn SampleSource,
    /// The query groups by `__error__`, so pipeline errors are data.
    pub preserve_error: bool,
    /// See [`MetricLimits::max_intermediate_points`].
    pub max_points: usize,
    /// See [`MetricLimits::max_intermediate_series`].
    pub max_series: usize,
    /// An instant query (some operations are only allowed there).
    pub instant: bool,
}

impl EvalCtx<'_> {
    pub fn eval(&self, expr: &MetricExpr) -> Result<Grid, EvalError> {
        match expr {
            MetricExpr::RangeAgg(agg) => range::eval_range(self, agg),
            MetricExpr::VectorAgg(agg) => vector::eval_vector_agg(self, agg),
            MetricExpr::Binary(b) => binary::eval_binary(self, b),
            MetricExpr::Literal(v) => Err(EvalError::BadRequest(format!(
                "unexpected literal {v} where a vector is expected"
            ))),
            MetricExpr::Vector(v) => Ok(functions::vector_of(self.steps, *v)),
            MetricExpr::LabelReplace(lr) => functions::label_replace(self, lr),
            MetricExpr::Paren(e) => self.eval(e),
        }
    }
}

/// True when some grouping of the query keeps `__error__` (`by (__error__)`),
/// which makes pipeline errors part of the result instead of failing it.
fn groups_by_error(expr: &MetricExpr) -> bool {
    let by_error = |g: &Option<crate::logql::syntax::ast::Grouping>| {
        g.as_ref()
            .is_some_and(|g| !g.without && g.labels.iter().any(|l| l == "__error__"))
    };
    match expr {
        MetricExpr::RangeAgg(a) => by_error(&a.grouping),
        MetricExpr::VectorAgg(a) => by_error(&a.grouping) || groups_by_error(&a.expr),
        MetricExpr::Binary(b) => groups_by_error(&b.lhs) || groups_by_error(&b.rhs),
        MetricExpr::LabelReplace(l) => groups_by_error(&l.expr),
        MetricExpr::Paren(e) => groups_by_error(e),
        MetricExpr::Literal(_) | MetricExpr::Vector(_) => false,
    }
}

/// Loki returns an instant vector in evaluation order (not sorted by labels)
/// when the query contains `sort` or `sort_desc`; the first one found walking
/// from the root decides the direction. `Some(true)` means descending.
fn sort_order(expr: &MetricExpr) -> Option<bool> {
    match expr {
        MetricExpr::VectorAgg(a) => match a.op {
            VectorOp::Sort => Some(false),
            VectorOp::SortDesc => Some(true),
            _ => sort_order(&a.expr),
        },
        MetricExpr::Binary(b) => sort_order(&b.lhs).or_else(|| sort_order(&b.rhs)),
        MetricExpr::LabelReplace(l) => sort_order(&l.expr),
        MetricExpr::Paren(e) => sort_order(e),
        _ => None,
    }
}
