//! Vector aggregations (`sum`, `avg`, `min`, `max`, `count`, `stddev`,
//! `stdvar`, `topk`, `bottomk`, `sort`, `sort_desc`, `approx_topk`) with
//! `by`/`without`, applied step by step.
//!
//! The input rows are sorted by labels first, so that ties in
//! `topk`/`bottomk` resolve deterministically: among equal values the series
//! that comes first in label order is kept (Loki keeps the first one its heap
//! sees and never replaces on equality).

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::labels::Labels;
use crate::logql::eval::value::Sample;
use crate::logql::eval::EvalError;
use crate::logql::syntax::ast::{Grouping, MetricExpr, VectorAggregation, VectorOp};
use crate::logql::syntax::ParseError;

use super::{range, EvalCtx, Grid};

fn unparen(e: &MetricExpr) -> &MetricExpr {
    match e {
        MetricExpr::Paren(inner) => unparen(inner),
        other => other,
    }
}

/// The labels of the group a series belongs to: `by` keeps the listed
/// labels, `without` removes them and `__name__`; no grouping is `by ()`.
pub fn vector_group_labels(labels: &Labels, g: Option<&Grouping>) -> Labels {
    let Some(g) = g else {
        return Labels::new();
    };
    let pairs = labels
        .pairs()
        .iter()
        .filter(|(k, _)| {
            let listed = g.labels.iter().any(|l| l == k);
            if g.without {
                !listed && k != "__name__"
            } else {
                listed
            }
        })
        .cloned()
        .collect();
    Labels::from_sorted_unchecked(pairs)
}

/// Orders by value for topk/sort_desc (descending) or bottomk/sort
/// (ascending); NaN always goes last.
fn value_order(a: f64, b: f64, desc: bool) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => {
            let o = a.partial_cmp(&b).unwrap_or(Ordering::Equal);
            if desc {
                o.reverse()
            } else {
                o
            }
        }
    }
}

/// Sorts an instant vector by value (stable, so equal values stay in label
/// order).
pub fn sort_samples_by_value(v: &mut [Sample], desc: bool) {
    v.sort_by(|a, b| value_order(a.value, b.value, desc));
}

#[derive(Default, Clone)]
struct GroupAcc {
    count: u64,
    value: f64,
    mean: f64,
    members: Vec<(usize, f64)>,
}

/// Evaluates a vector aggregation over every step.
pub fn eval_vector_agg(ctx: &EvalCtx<'_>, agg: &VectorAggregation) -> Result<Grid, EvalError> {
    let mut input = match (agg.op, unparen(&agg.expr)) {
        // sum of an additive range aggregation: group the samples first.
        (VectorOp::Sum, MetricExpr::RangeAgg(r)) => {
            let by_nothing = Grouping {
                without: false,
                labels: Vec::new(),
            };
            let g = agg.grouping.as_ref().unwrap_or(&by_nothing);
            range::eval_range_grouped(ctx, r, Some(g))?
        }
        _ => ctx.eval(&agg.expr)?,
    };
    input.sort();
    let op = agg.op;
    let grouping = if op == VectorOp::ApproxTopk {
        None
    } else {
        agg.grouping.as_ref()
    };
    let k = match op {
        VectorOp::Topk | VectorOp::Bottomk | VectorOp::ApproxTopk => {
            let Some(p) = agg.param else {
                return Err(EvalError::Parse(ParseError {
                    line: 0,
                    col: 0,
                    msg: format!("parameter required for operation {}", op_name(op)),
                }));
            };
            if op == VectorOp::ApproxTopk && !ctx.instant {
                return Err(EvalError::BadRequest(
                    "count min sketches are only supported on instant queries".to_string(),
                ));
            }
            if p.is_nan() || p < 1.0 {
                0
            } else if p >= usize::MAX as f64 {
                usize::MAX
            } else {
                p as usize
            }
        }
        _ => 0,
    };
    let keeps_series = matches!(
        op,
        VectorOp::Topk
            | VectorOp::Bottomk
            | VectorOp::ApproxTopk
            | VectorOp::Sort
            | VectorOp::SortDesc
    );

    // Group of every input row, computed once.
    let mut group_index: HashMap<Labels, usize> = HashMap::new();
    let mut group_labels: Vec<Labels> = Vec::new();
    let row_group: Vec<usize> = input
        .rows
        .iter()
        .map(|r| {
            let gl = vector_group_labels(&r.labels, grouping);
            *group_index.entry(gl.clone()).or_insert_with(|| {
                group_labels.push(gl);
                group_labels.len() - 1
            })
        })
        .collect();
    // Groups in label order, so that output order is deterministic.
    let mut group_order: Vec<usize> = (0..group_labels.len()).collect();
    group_order.sort_by(|a, b| group_labels[*a].cmp(&group_labels[*b]));

    let mut out = Grid::new(input.n);
    let mut accs: Vec<GroupAcc> = vec![GroupAcc::default(); group_labels.len()];
    let mut at = Vec::new();
    for i in 0..input.n {
        input.at(i, &mut at);
        if at.is_empty() {
            continue;
        }
        for a in accs.iter_mut() {
            a.count = 0;
            a.members.clear();
        }
        for &(r, v) in &at {
            let Some(a) = row_group.get(r).and_then(|&g| accs.get_mut(g)) else {
                continue;
            };
            add_to_group(a, op, r, v);
        }
        for &g in &group_order {
            let Some(a) = accs.get_mut(g) else { continue };
            if a.count == 0 {
                continue;
            }
            if keeps_series {
                let desc = matches!(
                    op,
                    VectorOp::Topk | VectorOp::ApproxTopk | VectorOp::SortDesc
                );
                a.members.sort_by(|x, y| value_order(x.1, y.1, desc));
                let take = if matches!(op, VectorOp::Sort | VectorOp::SortDesc) {
                    a.members.len()
                } else {
                    k
                };
                for &(r, v) in a.members.iter().take(take) {
                    if let Some(row) = input.rows.get(r) {
                        out.set(&row.labels, i, v);
                    }
                }
                continue;
            }
            let value = match op {
                VectorOp::Avg => a.mean,
                VectorOp::Count => a.count as f64,
                VectorOp::Stddev => (a.value / a.count as f64).sqrt(),
                VectorOp::Stdvar => a.value / a.count as f64,
                _ => a.value,
            };
            if let Some(l) = group_labels.get(g) {
                out.set(l, i, value);
            }
        }
    }
    Ok(out)
}

fn add_to_group(a: &mut GroupAcc, op: VectorOp, r: usize, v: f64) {
    a.count += 1;
    if a.count == 1 {
        a.value = v;
        a.mean = v;
        match op {
            VectorOp::Stddev | VectorOp::Stdvar => a.value = 0.0,
            VectorOp::Topk
            | VectorOp::Bottomk
            | VectorOp::ApproxTopk
            | VectorOp::Sort
            | VectorOp::SortDesc => a.members.push((r, v)),
            _ => {}
        }
        return;
    }
    match op {
        VectorOp::Sum => a.value += v,
        VectorOp::Avg => {
            if a.mean.is_infinite() {
                if v.is_infinite() && (a.mean > 0.0) == (v > 0.0) {
                    return;
                }
                if !v.is_infinite() && !v.is_nan() {
                    return;
                }
            }
            a.mean += (v - a.mean) / a.count as f64;
        }
        VectorOp::Max => {
            if a.value < v || a.value.is_nan() {
                a.value = v;
            }
        }
        VectorOp::Min => {
            if a.value > v || a.value.is_nan() {
                a.value = v;
            }
        }
        VectorOp::Count => {}
        VectorOp::Stddev | VectorOp::Stdvar => {
            let delta = v - a.mean;
            a.mean += delta / a.count as f64;
            a.value += delta * (v - a.mean);
        }
        VectorOp::Topk
        | VectorOp::Bottomk
        | VectorOp::ApproxTopk
        | VectorOp::Sort
        | VectorOp::SortDesc => a.members.push((r, v)),
    }
}

fn op_name(op: VectorOp) -> &'static str {
    match op {
        VectorOp::Sum => "sum",
        VectorOp::Avg => "avg",
        VectorOp::Min => "min",
        VectorOp::Max => "max",
        VectorOp::Count => "count",
        VectorOp::Stddev => "stddev",
        VectorOp::Stdvar => "stdvar",
        VectorOp::Topk => "topk",
        VectorOp::Bottomk => "bottomk",
        VectorOp::Sort => "sort",
        VectorOp::SortDesc => "sort_desc",
        VectorOp::ApproxTopk => "approx_topk",
    }
}
