//! Range aggregations (`count_over_time`, `rate`, `quantile_over_time`, …)
//! evaluated at every step in one pass over the samples.
//!
//! Step `t` aggregates the samples with `t − range − offset < ts ≤ t −
//! offset`. Samples may arrive in any order; memory is series × steps. Each
//! sample is either added to the accumulator of every step whose window
//! contains it, or — when the range is a multiple of the step — to one
//! step-wide bucket, windows then being sliding sums (count, sum) or merges
//! (value lists for quantiles and counter rates) of `range/step` buckets.
//! Accumulators are [`WindowAcc`]s: small, op-specific and mergeable, and a
//! whole [`RangeAccumulator`] merges too, so disjoint chunks of data can be
//! accumulated on several threads and combined.

use std::collections::HashMap;

use crate::labels::Labels;
use crate::logql::eval::EvalError;
use crate::logql::syntax::ast::{Grouping, MatchOp, RangeAggregation, RangeOp};

use super::{EvalCtx, Grid, Steps};

const ERROR_LABEL: &str = "__error__";
const PRESERVE_ERROR_LABEL: &str = "__preserve_error__";

/// Loki's pipeline error for a sample that still carries `__error__` at a
/// range aggregation.
pub fn pipeline_error_message(series: &Labels) -> String {
    let err = series.get(ERROR_LABEL).unwrap_or("");
    format!(
        "pipeline error: '{err}' for series: '{series}'.\n\
         Use a label filter to intentionally skip this error. (e.g | __error__!=\"{err}\").\n\
         To skip all potential errors you can match empty errors.(e.g __error__=\"\")\n\
         The label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )\n"
    )
}

/// What a window's value may depend on besides its samples.
#[derive(Clone, Copy, Debug)]
pub struct WindowCtx {
    /// The selector range in ns.
    pub range: i64,
    /// The (inclusive) end of the window in ns: step time minus offset.
    pub end: i64,
    /// φ of `quantile_over_time`.
    pub param: f64,
}

impl WindowCtx {
    fn range_secs(&self) -> f64 {
        self.range as f64 / 1e9
    }
}

/// A per-window accumulator.
pub trait WindowAcc: Default + Clone {
    fn add(&mut self, ts: i64, v: f64);
    /// Combines the samples of `other` (disjoint from ours) into `self`.
    fn merge(&mut self, other: Self);
    fn is_empty(&self) -> bool;
    /// The window's value, `None` when the window has no sample.
    fn value(&self, op: RangeOp, ctx: &WindowCtx) -> Option<f64>;
    /// True when [`WindowAcc::unmerge`] can take samples back out, which
    /// lets windows slide over per-step buckets.
    const INVERTIBLE: bool = false;
    /// True when samples should go to step-wide buckets, each window being
    /// the merge of `k` buckets: always for invertible accumulators (windows
    /// slide), and for value lists (each sample is stored once instead of
    /// once per window).
    const BUCKETED: bool = Self::INVERTIBLE;
    /// Removes the samples of `other` (previously merged in) from `self`.
    fn unmerge(&mut self, _other: &Self) {}
}

/// Count and sum: count_over_time, rate, bytes_*, sum_over_time, absent.
#[derive(Clone, Debug, Default)]
pub struct SumAcc {
    pub count: u64,
    pub sum: f64,
}

impl WindowAcc for SumAcc {
    const INVERTIBLE: bool = true;
    fn unmerge(&mut self, other: &Self) {
        self.count = self.count.saturating_sub(other.count);
        // An empty window sums to exactly 0, whatever the rounding.
        self.sum = if self.count == 0 {
            0.0
        } else {
            self.sum - other.sum
        };
    }
    fn add(&mut self, _ts: i64, v: f64) {
        self.count += 1;
        self.sum += v;
    }
    fn merge(&mut self, other: Self) {
        self.count += other.count;
        self.sum += other.sum;
    }
    fn is_empty(&self) -> bool {
        self.count == 0
    }
    fn value(&self, op: RangeOp, ctx: &WindowCtx) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        Some(match op {
            RangeOp::CountOverTime => self.count as f64,
            RangeOp::Rate => self.count as f64 / ctx.range_secs(),
            RangeOp::BytesRate => self.sum / ctx.range_secs(),
            RangeOp::AbsentOverTime => 1.0,
            // sum_over_time, bytes_over_time
            _ => self.sum,
        })
    }
}

/// `rate(... | unwrap x)`: the sum of the values per second.
#[derive(Clone, Debug, Default)]
pub struct UnwrapRateAcc(SumAcc);

impl WindowAcc for UnwrapRateAcc {
    const INVERTIBLE: bool = true;
    fn unmerge(&mut self, other: &Self) {
        self.0.unmerge(&other.0)
    }
    fn add(&mut self, ts: i64, v: f64) {
        self.0.add(ts, v)
    }
    fn merge(&mut self, other: Self) {
        self.0.merge(other.0)
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn value(&self, _op: RangeOp, ctx: &WindowCtx) -> Option<f64> {
        (!self.0.is_empty()).then(|| self.0.sum / ctx.range_secs())
    }
}

/// Mean, with Prometheus' care for infinities.
#[derive(Clone, Debug, Default)]
pub struct AvgAcc {
    pub count: u64,
    pub mean: f64,
}

impl WindowAcc for AvgAcc {
    fn add(&mut self, _ts: i64, v: f64) {
        self.count += 1;
        if self.mean.is_infinite() {
            if v.is_infinite() && (self.mean > 0.0) == (v > 0.0) {
                return;
            }
            if !v.is_infinite() && !v.is_nan() {
                return;
            }
        }
        let c = self.count as f64;
        self.mean += v / c - self.mean / c;
    }
    fn merge(&mut self, other: Self) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other;
            return;
        }
        let n = (self.count + other.count) as f64;
        let (a, b) = (self.count as f64 / n, other.count as f64 / n);
        self.mean =
            if self.mean.is_infinite() && other.mean.is_infinite() && self.mean == other.mean {
                self.mean
            } else {
                self.mean * a + other.mean * b
            };
        self.count += other.count;
    }
    fn is_empty(&self) -> bool {
        self.count == 0
    }
    fn value(&self, _op: RangeOp, _ctx: &WindowCtx) -> Option<f64> {
        (self.count > 0).then_some(self.mean)
    }
}

/// Minimum or maximum; a NaN is replaced by any later value, as in Loki.
#[derive(Clone, Debug, Default)]
pub struct MinMaxAcc {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl WindowAcc for MinMaxAcc {
    fn add(&mut self, _ts: i64, v: f64) {
        match self.max {
            Some(m) if !(v > m || m.is_nan()) => {}
            _ => self.max = Some(v),
        }
        match self.min {
            Some(m) if !(v < m || m.is_nan()) => {}
            _ => self.min = Some(v),
        }
    }
    fn merge(&mut self, other: Self) {
        if let Some(v) = other.max {
            match self.max {
                Some(m) if !(v > m || m.is_nan()) => {}
                _ => self.max = Some(v),
            }
        }
        if let Some(v) = other.min {
            match self.min {
                Some(m) if !(v < m || m.is_nan()) => {}
                _ => self.min = Some(v),
            }
        }
    }
    fn is_empty(&self) -> bool {
        self.max.is_none()
    }
    fn value(&self, op: RangeOp, _ctx: &WindowCtx) -> Option<f64> {
        match op {
            RangeOp::MinOverTime => self.min,
            _ => self.max,
        }
    }
}

/// The first and last sample by timestamp (the earliest-seen wins a tie for
/// `first`, the latest-seen for `last`).
#[derive(Clone, Debug, Default)]
pub struct FirstLastAcc {
    pub first: Option<(i64, f64)>,
    pub last: Option<(i64, f64)>,
}

impl WindowAcc for FirstLastAcc {
    fn add(&mut self, ts: i64, v: f64) {
        if self.first.is_none_or(|(t, _)| ts < t) {
            self.first = Some((ts, v));
        }
        if self.last.is_none_or(|(t, _)| ts >= t) {
            self.last = Some((ts, v));
        }
    }
    fn merge(&mut self, other: Self) {
        if let Some((ts, v)) = other.first {
            if self.first.is_none_or(|(t, _)| ts < t) {
                self.first = Some((ts, v));
            }
        }
        if let Some((ts, v)) = other.last {
            if self.last.is_none_or(|(t, _)| ts >= t) {
                self.last = Some((ts, v));
            }
        }
    }
    fn is_empty(&self) -> bool {
        self.first.is_none()
    }
    fn value(&self, op: RangeOp, _ctx: &WindowCtx) -> Option<f64> {
        match op {
            RangeOp::FirstOverTime => self.first.map(|(_, v)| v),
            _ => self.last.map(|(_, v)| v),
        }
    }
}

/// Population variance by Welford's method; merged with Chan's formula.
#[derive(Clone, Debug, Default)]
pub struct VarAcc {
    pub count: u64,
    pub mean: f64,
    pub m2: f64,
}

impl WindowAcc for VarAcc {
    fn add(&mut self, _ts: i64, v: f64) {
        self.count += 1;
        let delta = v - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (v - self.mean);
    }
    fn merge(&mut self, other: Self) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other;
            return;
        }
        let (na, nb) = (self.count as f64, other.count as f64);
        let n = na + nb;
        let delta = other.mean - self.mean;
        self.mean += delta * nb / n;
        self.m2 += other.m2 + delta * delta * na * nb / n;
        self.count += other.count;
    }
    fn is_empty(&self) -> bool {
        self.count == 0
    }
    fn value(&self, op: RangeOp, _ctx: &WindowCtx) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let var = self.m2 / self.count as f64;
        Some(match op {
            RangeOp::StddevOverTime => var.sqrt(),
            _ => var,
        })
    }
}

/// All the samples of a window: quantile_over_time and rate_counter.
#[derive(Clone, Debug, Default)]
pub struct ValuesAcc {
    pub samples: Vec<(i64, f64)>,
}

impl WindowAcc for ValuesAcc {
    const BUCKETED: bool = true;
    fn add(&mut self, ts: i64, v: f64) {
        self.samples.push((ts, v));
    }
    fn merge(&mut self, mut other: Self) {
        self.samples.append(&mut other.samples);
    }
    fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
    fn value(&self, op: RangeOp, ctx: &WindowCtx) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        match op {
            RangeOp::QuantileOverTime => {
                let mut vals: Vec<f64> = self.samples.iter().map(|s| s.1).collect();
                Some(quantile(ctx.param, &mut vals))
            }
            _ => {
                let mut s = self.samples.clone();
                s.sort_by_key(|p| p.0);
                Some(extrapolated_counter_rate(&s, ctx.range, ctx.end))
            }
        }
    }
}

/// Prometheus' quantile: linear interpolation between the closest ranks;
/// φ < 0 gives −Inf and φ > 1 gives +Inf.
pub fn quantile(q: f64, vals: &mut [f64]) -> f64 {
    if vals.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    vals.sort_by(|a, b| a.total_cmp(b));
    let n = vals.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    let lo = vals.get(lower as usize).copied().unwrap_or(f64::NAN);
    let hi = vals.get(upper as usize).copied().unwrap_or(f64::NAN);
    lo * (1.0 - weight) + hi * weight
}

/// Prometheus' extrapolated rate of a counter (with resets) over the window
/// `(end − range, end]`, as Loki computes it: timestamps in ns, boundaries
/// from the query window. Fewer than two samples give 0.
pub fn extrapolated_counter_rate(samples: &[(i64, f64)], range: i64, end: i64) -> f64 {
    let (Some(&(t0, v0)), Some(&(tn, vn))) = (samples.first(), samples.last()) else {
        return 0.0;
    };
    if samples.len() < 2 {
        return 0.0;
    }
    let range_start = end - range;
    let mut result = vn - v0;
    let mut last = 0.0;
    for &(_, v) in samples {
        if v < last {
            result += last;
        }
        last = v;
    }
    let mut to_start = (t0 - range_start) as f64 / 1e9;
    let mut to_end = (end - tn) as f64 / 1e9;
    let sampled = (tn - t0) as f64 / 1e9;
    let avg_between = sampled / (samples.len() - 1) as f64;
    let threshold = avg_between * 1.1;
    if to_start >= threshold {
        to_start = avg_between / 2.0;
    }
    let mut to_zero = to_start;
    if result > 0.0 && v0 >= 0.0 {
        to_zero = sampled * (v0 / result);
    }
    if to_zero < to_start {
        to_start = to_zero;
    }
    if to_end >= threshold {
        to_end = avg_between / 2.0;
    }
    let interval = sampled + to_start + to_end;
    result *= interval / sampled;
    result / (range as f64 / 1e9)
}

/// The labels a range aggregation's grouping keeps.
pub fn group_labels(labels: &Labels, g: &Grouping) -> Labels {
    let pairs = labels
        .pairs()
        .iter()
        .filter(|(k, _)| {
            let listed = g.labels.iter().any(|l| l == k);
            if g.without {
                !listed
            } else {
                listed
            }
        })
        .cloned()
        .collect();
    Labels::from_sorted_unchecked(pairs)
}

/// The labels of `absent_over_time`'s result: the selector's equality
/// matchers; a name that also has another matcher is left out.
pub fn absent_labels(agg: &RangeAggregation) -> Labels {
    let mut out = Labels::new();
    let mut drop: Vec<&str> = Vec::new();
    for m in &agg.log.selector {
        if m.name == "__name__" {
            continue;
        }
        if m.op == MatchOp::Eq && !out.contains(&m.name) {
            out.insert(m.name.clone(), m.value.clone());
        } else {
            drop.push(&m.name);
        }
    }
    for name in drop {
        out.remove(name);
    }
    out
}

/// Per-series accumulators of one range aggregation, one per step.
pub struct RangeAccumulator<A: WindowAcc> {
    steps: Steps,
    range: i64,
    offset: i64,
    grouping: Option<Grouping>,
    preserve_error: bool,
    /// Source labels → row, so that grouping is computed once per series.
    seen: HashMap<Labels, usize>,
    groups: HashMap<Labels, usize>,
    rows: Vec<(Labels, Vec<A>)>,
    /// Most rows this accumulator may hold (memory is rows × steps).
    max_rows: usize,
    /// `k = range / step` when each sample goes to one step-wide bucket and
    /// windows are sliding sums of `k` buckets; 0 when each sample is added
    /// to every window that contains it.
    buckets_per_window: usize,
    error: Option<EvalError>,
}

impl<A: WindowAcc> RangeAccumulator<A> {
    pub fn new(steps: Steps, agg: &RangeAggregation, preserve_error: bool) -> Self {
        RangeAccumulator {
            steps,
            range: agg.range,
            offset: agg.offset,
            grouping: agg.grouping.clone(),
            preserve_error,
            seen: HashMap::new(),
            groups: HashMap::new(),
            rows: Vec::new(),
            max_rows: usize::MAX,
            buckets_per_window: sliding_buckets::<A>(steps, agg.range),
            error: None,
        }
    }

    /// Accumulators per row: one per step, or one per step-wide bucket
    /// (`n + k − 1` of them) when windows slide over buckets.
    fn row_len(&self) -> usize {
        match self.buckets_per_window {
            0 => self.steps.n,
            k => self.steps.n + k - 1,
        }
    }

    /// Per-step windows of a row: the row itself, or the sliding sums of `k`
    /// consecutive buckets.
    fn windows(&self, accs: Vec<A>) -> Vec<A> {
        let k = self.buckets_per_window;
        if k == 0 {
            return accs;
        }
        let mut out = Vec::with_capacity(self.steps.n);
        if !A::INVERTIBLE {
            for i in 0..self.steps.n {
                let mut w = A::default();
                for b in accs.iter().skip(i).take(k) {
                    w.merge(b.clone());
                }
                out.push(w);
            }
            return out;
        }
        let mut cur = A::default();
        for b in accs.iter().take(k) {
            cur.merge(b.clone());
        }
        for i in 0..self.steps.n {
            out.push(cur.clone());
            if let (Some(old), Some(new)) = (accs.get(i), accs.get(i + k)) {
                cur.unmerge(old);
                cur.merge(new.clone());
            }
        }
        out
    }

    /// Fails the aggregation with Loki's series-limit error once it holds
    /// more than `max_rows` series.
    pub fn with_max_rows(mut self, max_rows: usize) -> Self {
        self.max_rows = max_rows;
        self
    }

    /// The steps whose window contains `ts`: `t − offset − range < ts ≤ t −
    /// offset`, i.e. `ts + offset ≤ t < ts + offset + range`.
    fn step_span(&self, ts: i64) -> Option<(usize, usize)> {
        let s = &self.steps;
        let u = ts as i128 + self.offset as i128;
        let first = div_ceil(u - s.start as i128, s.step as i128).max(0);
        let last = div_floor(u + self.range as i128 - 1 - s.start as i128, s.step as i128)
            .min(s.n as i128 - 1);
        (first <= last).then_some((first as usize, last as usize))
    }

    /// Adds one sample.
    pub fn add(&mut self, labels: &Labels, ts: i64, v: f64) {
        if self.error.is_some() {
            return;
        }
        let Some((first, last)) = self.step_span(ts) else {
            return;
        };
        // Without grouping a series is its own group: `groups` serves as
        // `seen`, saving a copy of every label set.
        let known = match self.grouping {
            None => self.groups.get(labels),
            Some(_) => self.seen.get(labels),
        };
        let row = match known {
            Some(&r) => r,
            None => {
                let has_err = labels.contains(ERROR_LABEL);
                if has_err
                    && !self.preserve_error
                    && labels.get(PRESERVE_ERROR_LABEL) != Some("true")
                {
                    self.error = Some(EvalError::Pipeline(pipeline_error_message(labels)));
                    return;
                }
                // Loki does not group a sample with an error, so that the
                // error stays visible.
                let key = match &self.grouping {
                    Some(g) if !has_err => group_labels(labels, g),
                    _ => labels.clone(),
                };
                let r = match self.groups.get(&key) {
                    Some(&r) => r,
                    None => {
                        let r = self.rows.len();
                        if r >= self.max_rows {
                            let msg = super::series_limit_message(self.max_rows);
                            self.error = Some(EvalError::Limit(msg));
                            return;
                        }
                        self.rows
                            .push((key.clone(), vec![A::default(); self.row_len()]));
                        self.groups.insert(key, r);
                        r
                    }
                };
                if self.grouping.is_some() {
                    self.seen.insert(labels.clone(), r);
                }
                r
            }
        };
        let k = self.buckets_per_window;
        if let Some((_, accs)) = self.rows.get_mut(row) {
            if k > 0 {
                // The sample's windows are exactly steps first..first+k-1
                // (some past the last step); its bucket is the last of them.
                let s = &self.steps;
                let u = ts as i128 + self.offset as i128;
                let i_first = div_ceil(u - s.start as i128, s.step as i128);
                let b = i_first + k as i128 - 1;
                if let Some(acc) = usize::try_from(b).ok().and_then(|b| accs.get_mut(b)) {
                    acc.add(ts, v);
                }
            } else {
                for acc in accs.iter_mut().take(last + 1).skip(first) {
                    acc.add(ts, v);
                }
            }
        }
    }

    /// Combines another accumulator of the same aggregation (fed with
    /// disjoint samples) into this one.
    pub fn merge(&mut self, other: Self) {
        if self.error.is_none() {
            self.error = other.error;
        }
        let mut mapping = Vec::with_capacity(other.rows.len());
        for (labels, accs) in other.rows {
            let r = match self.groups.get(&labels) {
                Some(&r) => r,
                None => {
                    let r = self.rows.len();
                    self.rows
                        .push((labels.clone(), vec![A::default(); self.row_len()]));
                    self.groups.insert(labels, r);
                    r
                }
            };
            mapping.push(r);
            if let Some((_, mine)) = self.rows.get_mut(r) {
                for (m, o) in mine.iter_mut().zip(accs) {
                    m.merge(o);
                }
            }
        }
        for (k, or) in other.seen {
            if let Some(&r) = mapping.get(or) {
                self.seen.entry(k).or_insert(r);
            }
        }
    }

    /// The values per step.
    pub fn finish(mut self, op: RangeOp, param: f64) -> Result<Grid, EvalError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut grid = Grid::new(self.steps.n);
        let rows = std::mem::take(&mut self.rows);
        for (labels, accs) in rows {
            let accs = self.windows(accs);
            let row = grid.row_mut(&labels);
            for (i, acc) in accs.iter().enumerate() {
                let ctx = WindowCtx {
                    range: self.range,
                    end: self.steps.ts(i).saturating_sub(self.offset),
                    param,
                };
                row.vals[i] = acc.value(op, &ctx);
            }
        }
        Ok(grid)
    }

    /// For `absent_over_time`: 1 at every step no series has a sample.
    pub fn finish_absent(mut self, labels: Labels) -> Result<Grid, EvalError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let rows = std::mem::take(&mut self.rows);
        self.rows = rows
            .into_iter()
            .map(|(l, accs)| (l, self.windows(accs)))
            .collect();
        let mut grid = Grid::new(self.steps.n);
        for i in 0..self.steps.n {
            let present = self
                .rows
                .iter()
                .any(|(_, accs)| accs.get(i).is_some_and(|a| !a.is_empty()));
            if !present {
                grid.set(&labels, i, 1.0);
            }
        }
        Ok(grid)
    }
}

/// `range / step` when samples go to step-wide buckets (a bucketed
/// accumulator, a range query, range a multiple of step, and windows
/// spanning at least two steps); 0 otherwise.
fn sliding_buckets<A: WindowAcc>(steps: Steps, range: i64) -> usize {
    if !A::BUCKETED || steps.n < 2 || steps.step <= 0 || range % steps.step != 0 {
        return 0;
    }
    match usize::try_from(range / steps.step) {
        Ok(k) if k >= 2 && k <= steps.n.saturating_mul(4).max(64) => k,
        _ => 0,
    }
}

fn div_floor(a: i128, b: i128) -> i128 {
    a.div_euclid(b)
}

fn div_ceil(a: i128, b: i128) -> i128 {
    -((-a).div_euclid(b))
}

fn run<A: WindowAcc>(
    ctx: &EvalCtx<'_>,
    agg: &RangeAggregation,
    pushdown: Option<&Grouping>,
    param: f64,
) -> Result<Grid, EvalError> {
    let mut acc = match pushdown {
        Some(g) => {
            let mut grouped = agg.clone();
            grouped.grouping = Some(g.clone());
            RangeAccumulator::<A>::new(ctx.steps, &grouped, ctx.preserve_error)
        }
        None => RangeAccumulator::<A>::new(ctx.steps, agg, ctx.preserve_error),
    };
    acc = acc.with_max_rows((ctx.max_points / ctx.steps.n.max(1)).min(ctx.max_series));
    let (from, through) = source_bounds(ctx.steps, agg);
    ctx.source
        .for_each_sample(agg, from, through, &mut |l, ts, v| acc.add(l, ts, v))?;
    if agg.op == RangeOp::AbsentOverTime {
        acc.finish_absent(absent_labels(agg))
    } else {
        acc.finish(agg.op, param)
    }
}

/// `[from, through)` of the samples a range aggregation needs.
pub fn source_bounds(steps: Steps, agg: &RangeAggregation) -> (i64, i64) {
    let last = steps.ts(steps.n.saturating_sub(1));
    let from = steps
        .start
        .saturating_sub(agg.range)
        .saturating_sub(agg.offset)
        .saturating_add(1);
    let through = last.saturating_sub(agg.offset).saturating_add(1);
    (from, through)
}

/// Evaluates a range aggregation over every step.
pub fn eval_range(ctx: &EvalCtx<'_>, agg: &RangeAggregation) -> Result<Grid, EvalError> {
    eval_range_grouped(ctx, agg, None)
}

/// True for the range operations whose value over a set of series is the
/// sum of their values (so `sum by (g)` can group the samples first).
pub fn is_additive(agg: &RangeAggregation) -> bool {
    agg.grouping.is_none()
        && matches!(
            agg.op,
            RangeOp::CountOverTime
                | RangeOp::Rate
                | RangeOp::BytesOverTime
                | RangeOp::BytesRate
                | RangeOp::SumOverTime
        )
}

/// Evaluates a range aggregation; with `pushdown`, samples are first grouped
/// by that (an enclosing `sum`'s) grouping, which is exact for additive
/// operations and bounds memory by groups instead of streams.
pub fn eval_range_grouped(
    ctx: &EvalCtx<'_>,
    agg: &RangeAggregation,
    pushdown: Option<&Grouping>,
) -> Result<Grid, EvalError> {
    let pushdown = if is_additive(agg) { pushdown } else { None };
    if agg.range <= 0 {
        return Err(EvalError::BadRequest(
            "invalid range: the range of a range aggregation must be positive".to_string(),
        ));
    }
    match agg.op {
        RangeOp::CountOverTime
        | RangeOp::BytesOverTime
        | RangeOp::BytesRate
        | RangeOp::AbsentOverTime
        | RangeOp::SumOverTime => run::<SumAcc>(ctx, agg, pushdown, 0.0),
        RangeOp::Rate if agg.unwrap.is_some() => run::<UnwrapRateAcc>(ctx, agg, pushdown, 0.0),
        RangeOp::Rate => run::<SumAcc>(ctx, agg, pushdown, 0.0),
        RangeOp::AvgOverTime => run::<AvgAcc>(ctx, agg, None, 0.0),
        RangeOp::MaxOverTime | RangeOp::MinOverTime => run::<MinMaxAcc>(ctx, agg, None, 0.0),
        RangeOp::FirstOverTime | RangeOp::LastOverTime => run::<FirstLastAcc>(ctx, agg, None, 0.0),
        RangeOp::StdvarOverTime | RangeOp::StddevOverTime => run::<VarAcc>(ctx, agg, None, 0.0),
        RangeOp::RateCounter => run::<ValuesAcc>(ctx, agg, None, 0.0),
        RangeOp::QuantileOverTime => {
            let Some(q) = agg.param else {
                return Err(EvalError::BadRequest(
                    "quantile_over_time requires a quantile parameter".to_string(),
                ));
            };
            run::<ValuesAcc>(ctx, agg, None, q)
        }
    }
}
