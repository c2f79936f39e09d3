//! Binary operators: arithmetic, comparisons (filtering, or 0/1 with
//! `bool`), set operators, vector matching with `on`/`ignoring` and
//! `group_left`/`group_right`, and operations with a literal.
//!
//! As in Loki: a binary operation of two literals is folded into a literal
//! (comparisons then give 0 or 1); a literal may not be an operand of a set
//! operator; `x / 0` and `x % 0` are NaN; a comparison that filters keeps the
//! vector side's value.

use std::collections::{HashMap, HashSet};

use crate::labels::Labels;
use crate::logql::eval::EvalError;
use crate::logql::syntax::ast::{BinModifier, BinOp, BinaryExpr, MetricExpr};
use crate::logql::syntax::ParseError;

use super::{EvalCtx, Grid};

/// The value of a literal-only expression, `None` when it involves vectors.
pub fn fold_literal(expr: &MetricExpr) -> Result<Option<f64>, EvalError> {
    match expr {
        MetricExpr::Literal(v) => Ok(Some(*v)),
        MetricExpr::Paren(e) => fold_literal(e),
        MetricExpr::Binary(b) => {
            let (Some(l), Some(r)) = (fold_literal(&b.lhs)?, fold_literal(&b.rhs)?) else {
                return Ok(None);
            };
            if is_set_op(b.op) {
                return Err(literal_set_op_error(b.op, l, true));
            }
            Ok(Some(apply_scalar(b.op, l, r)))
        }
        _ => Ok(None),
    }
}

fn literal_set_op_error(op: BinOp, v: f64, left: bool) -> EvalError {
    EvalError::Parse(ParseError {
        line: 0,
        col: 0,
        msg: format!(
            "unexpected literal for {} leg of logical/set binary operation ({}): {v:.6}",
            if left { "left" } else { "right" },
            op_name(op)
        ),
    })
}

fn is_set_op(op: BinOp) -> bool {
    matches!(op, BinOp::And | BinOp::Or | BinOp::Unless)
}

fn is_comparison(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Eq | BinOp::Neq | BinOp::Gt | BinOp::Gte | BinOp::Lt | BinOp::Lte
    )
}

fn op_name(op: BinOp) -> &'static str {
    match op {
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Mod => "%",
        BinOp::Pow => "^",
        BinOp::Eq => "==",
        BinOp::Neq => "!=",
        BinOp::Gt => ">",
        BinOp::Gte => ">=",
        BinOp::Lt => "<",
        BinOp::Lte => "<=",
        BinOp::And => "and",
        BinOp::Or => "or",
        BinOp::Unless => "unless",
    }
}

/// `l op r` for arithmetic; 0/1 for comparisons.
pub fn apply_scalar(op: BinOp, l: f64, r: f64) -> f64 {
    let b = |c: bool| if c { 1.0 } else { 0.0 };
    match op {
        BinOp::Add => l + r,
        BinOp::Sub => l - r,
        BinOp::Mul => l * r,
        BinOp::Div => {
            if r == 0.0 {
                f64::NAN
            } else {
                l / r
            }
        }
        BinOp::Mod => {
            if r == 0.0 {
                f64::NAN
            } else {
                l % r
            }
        }
        BinOp::Pow => l.powf(r),
        BinOp::Eq => b(l == r),
        BinOp::Neq => b(l != r),
        BinOp::Gt => b(l > r),
        BinOp::Gte => b(l >= r),
        BinOp::Lt => b(l < r),
        BinOp::Lte => b(l <= r),
        BinOp::And | BinOp::Or | BinOp::Unless => f64::NAN,
    }
}

/// Merges two matched samples: `Some(value)` to keep, `None` when a
/// filtering comparison fails. `keep` is the value kept by a filtering
/// comparison (the vector side's).
fn merge(op: BinOp, l: f64, r: f64, filter: bool, keep: f64) -> Option<f64> {
    let v = apply_scalar(op, l, r);
    if is_comparison(op) && filter {
        return (v == 1.0).then_some(keep);
    }
    Some(v)
}

/// Evaluates a binary operation over every step.
pub fn eval_binary(ctx: &EvalCtx<'_>, b: &BinaryExpr) -> Result<Grid, EvalError> {
    let lit_l = fold_literal(&b.lhs)?;
    let lit_r = fold_literal(&b.rhs)?;
    if is_set_op(b.op) {
        if let Some(v) = lit_l {
            return Err(literal_set_op_error(b.op, v, true));
        }
        if let Some(v) = lit_r {
            return Err(literal_set_op_error(b.op, v, false));
        }
    }
    match (lit_l, lit_r) {
        (Some(l), Some(r)) => {
            // Only reachable from a caller that did not fold first.
            let v = apply_scalar(b.op, l, r);
            let mut g = Grid::new(ctx.steps.n);
            for i in 0..ctx.steps.n {
                g.set(&Labels::new(), i, v);
            }
            Ok(g)
        }
        (Some(l), None) => {
            let v = ctx.eval(&b.rhs)?;
            Ok(with_literal(b.op, l, v, true, b.modifier.return_bool))
        }
        (None, Some(r)) => {
            let v = ctx.eval(&b.lhs)?;
            Ok(with_literal(b.op, r, v, false, b.modifier.return_bool))
        }
        (None, None) => {
            let mut lhs = ctx.eval(&b.lhs)?;
            let mut rhs = ctx.eval(&b.rhs)?;
            lhs.sort();
            rhs.sort();
            vector_vector(b.op, &b.modifier, &lhs, &rhs)
        }
    }
}

/// `lit op v` (`lit_left`) or `v op lit`, sample by sample; labels are kept.
fn with_literal(op: BinOp, lit: f64, mut v: Grid, lit_left: bool, return_bool: bool) -> Grid {
    for row in v.rows.iter_mut() {
        for slot in row.vals.iter_mut() {
            if let Some(x) = *slot {
                let (l, r) = if lit_left { (lit, x) } else { (x, lit) };
                *slot = merge(op, l, r, !return_bool, x);
            }
        }
    }
    v
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Card {
    OneToOne,
    ManyToOne,
    OneToMany,
}

/// The labels two samples are matched on.
fn signature(labels: &Labels, m: &BinModifier) -> Labels {
    match &m.matching {
        None => labels.clone(),
        Some(vm) => {
            let pairs = labels
                .pairs()
                .iter()
                .filter(|(k, _)| vm.labels.iter().any(|l| l == k) == vm.on)
                .cloned()
                .collect();
            Labels::from_sorted_unchecked(pairs)
        }
    }
}

/// The labels of a result sample: the "many" side's labels (reduced to the
/// `on` labels, or without the `ignoring` ones, for one-to-one matching),
/// plus the `group_x(...)` labels taken from the "one" side.
fn result_labels(many: &Labels, one: &Labels, m: &BinModifier, card: Card) -> Labels {
    let mut out = many.clone();
    let Some(vm) = &m.matching else {
        return out;
    };
    if card == Card::OneToOne {
        if vm.on {
            let pairs = many
                .pairs()
                .iter()
                .filter(|(k, _)| vm.labels.iter().any(|l| l == k))
                .cloned()
                .collect();
            out = Labels::from_sorted_unchecked(pairs);
        } else {
            for l in &vm.labels {
                out.remove(l);
            }
        }
    }
    if let Some(g) = &vm.group {
        for name in &g.include {
            match one.get(name) {
                Some(v) if !v.is_empty() => out.insert(name.clone(), v.to_string()),
                _ => {
                    out.remove(name);
                }
            }
        }
    }
    out
}

fn vector_vector(op: BinOp, m: &BinModifier, lhs: &Grid, rhs: &Grid) -> Result<Grid, EvalError> {
    let card = match m.matching.as_ref().and_then(|vm| vm.group.as_ref()) {
        Some(g) if g.left => Card::ManyToOne,
        Some(_) => Card::OneToMany,
        None => Card::OneToOne,
    };
    // Signatures are per series, computed once; ids stand for them per step.
    let mut sig_ids: HashMap<Labels, usize> = HashMap::new();
    let mut sig_of = |l: &Labels| {
        let s = signature(l, m);
        let n = sig_ids.len();
        *sig_ids.entry(s).or_insert(n)
    };
    let lsig: Vec<usize> = lhs.rows.iter().map(|r| sig_of(&r.labels)).collect();
    let rsig: Vec<usize> = rhs.rows.iter().map(|r| sig_of(&r.labels)).collect();

    let n = lhs.n.min(rhs.n);
    let mut out = Grid::new(lhs.n.max(rhs.n));
    let (mut lat, mut rat) = (Vec::new(), Vec::new());
    for i in 0..n {
        lhs.at(i, &mut lat);
        rhs.at(i, &mut rat);
        match op {
            BinOp::And => {
                if lat.is_empty() || rat.is_empty() {
                    continue;
                }
                let right: HashSet<usize> = rat.iter().map(|&(r, _)| rsig[r]).collect();
                for &(r, v) in &lat {
                    if right.contains(&lsig[r]) {
                        out.set(&lhs.rows[r].labels, i, v);
                    }
                }
            }
            BinOp::Or => {
                let left: HashSet<usize> = lat.iter().map(|&(r, _)| lsig[r]).collect();
                for &(r, v) in &lat {
                    out.set(&lhs.rows[r].labels, i, v);
                }
                for &(r, v) in &rat {
                    if !left.contains(&rsig[r]) {
                        out.set(&rhs.rows[r].labels, i, v);
                    }
                }
            }
            BinOp::Unless => {
                let right: HashSet<usize> = rat.iter().map(|&(r, _)| rsig[r]).collect();
                for &(r, v) in &lat {
                    if !right.contains(&lsig[r]) {
                        out.set(&lhs.rows[r].labels, i, v);
                    }
                }
            }
            _ => binop_step(op, m, card, lhs, rhs, &lsig, &rsig, &lat, &rat, i, &mut out)?,
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn binop_step(
    op: BinOp,
    m: &BinModifier,
    card: Card,
    lhs: &Grid,
    rhs: &Grid,
    lsig: &[usize],
    rsig: &[usize],
    lat: &[(usize, f64)],
    rat: &[(usize, f64)],
    i: usize,
    out: &mut Grid,
) -> Result<(), EvalError> {
    // "many" side and "one" side; one-to-one uses left as "many".
    let (many, one, msig, osig, mat, oat) = if card == Card::OneToMany {
        (rhs, lhs, rsig, lsig, rat, lat)
    } else {
        (lhs, rhs, lsig, rsig, lat, rat)
    };
    let mut one_by_sig: HashMap<usize, (usize, f64)> = HashMap::with_capacity(oat.len());
    for &(r, v) in oat {
        if one_by_sig.insert(osig[r], (r, v)).is_some() {
            let side = if card == Card::OneToMany {
                "left"
            } else {
                "right"
            };
            return Err(EvalError::BadRequest(format!(
                "found duplicate series on the {side} hand-side;many-to-many matching not allowed: matching labels must be unique on one side"
            )));
        }
    }
    let mut matched_one_to_one: HashSet<usize> = HashSet::new();
    let mut matched_many: HashMap<usize, HashSet<Labels>> = HashMap::new();
    let filter = !m.return_bool;
    for &(r, v) in mat {
        let sig = msig[r];
        let Some(&(or, ov)) = one_by_sig.get(&sig) else {
            continue;
        };
        let (Some(mrow), Some(orow)) = (many.rows.get(r), one.rows.get(or)) else {
            continue;
        };
        let metric = result_labels(&mrow.labels, &orow.labels, m, card);
        if card == Card::OneToOne {
            if !matched_one_to_one.insert(sig) {
                return Err(EvalError::BadRequest(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                        .to_string(),
                ));
            }
        } else if !matched_many.entry(sig).or_default().insert(metric.clone()) {
            return Err(EvalError::BadRequest(
                "multiple matches for labels: grouping labels must ensure unique matches"
                    .to_string(),
            ));
        }
        // Back to left/right order for the operator.
        let (l, r) = if card == Card::OneToMany {
            (ov, v)
        } else {
            (v, ov)
        };
        if let Some(value) = merge(op, l, r, filter, l) {
            out.set(&metric, i, value);
        }
    }
    Ok(())
}
