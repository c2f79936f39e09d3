//! The [`SampleSource`] over storage: selects a range aggregation's streams,
//! runs its pipeline and extraction, and hands samples to the metric engine.
//!
//! When the aggregation needs only timestamps and sizes (`count_over_time`,
//! `rate`, `bytes_*` over a bare selector) the lines are never decompressed.

use std::collections::HashMap;
use std::sync::Arc;

use crate::labels::Labels;
use crate::logql::eval::context::{QueryContext, QueryStats};
use crate::logql::eval::selector::storage_matchers;
use crate::logql::eval::{EvalError, SampleSource};
use crate::logql::log::{parser_hints, Pipeline, ResultLabels, SampleKind};
use crate::logql::syntax::ast::{MetricExpr, RangeAggregation, RangeOp, VectorOp};
use crate::storage::{Direction, ReadColumns, SeriesRef, Store};

pub struct StoreSource<'a> {
    store: &'a Store,
    tenant: &'a str,
    ctx: &'a QueryContext,
    /// For each range aggregation of the query (by address in its tree):
    /// the output labels that matter, for parser hints (`None`: all).
    groups: HashMap<usize, Option<Vec<String>>>,
}

impl<'a> StoreSource<'a> {
    pub fn new(store: &'a Store, tenant: &'a str, ctx: &'a QueryContext, expr: &MetricExpr) -> StoreSource<'a> {
        let mut groups = HashMap::new();
        collect_groups(expr, None, &mut groups);
        StoreSource { store, tenant, ctx, groups }
    }
}

/// Records, for every range aggregation under `e`, which labels its
/// enclosing aggregation keeps: `by (a, b)` keeps those, `sum(...)` none,
/// anything else (no aggregation, `without`, topk, binary operators,
/// label_replace) every label. Loki uses this to parse only what is needed,
/// so `sum(count_over_time({a="b"} | json [1m]))` works on non-JSON lines.
fn collect_groups(e: &MetricExpr, outer: Option<Vec<String>>, out: &mut HashMap<usize, Option<Vec<String>>>) {
    match e {
        MetricExpr::RangeAgg(r) => {
            let g = match &r.grouping {
                Some(g) if !g.without => Some(g.labels.clone()),
                Some(_) => None,
                None => outer,
            };
            out.insert(r as *const RangeAggregation as usize, g);
        }
        MetricExpr::VectorAgg(v) => {
            let keeps = match v.op {
                VectorOp::Sum | VectorOp::Avg | VectorOp::Min | VectorOp::Max | VectorOp::Count | VectorOp::Stddev | VectorOp::Stdvar => {
                    match &v.grouping {
                        None => Some(Vec::new()),
                        Some(g) if !g.without => Some(g.labels.clone()),
                        Some(_) => None,
                    }
                }
                _ => None,
            };
            collect_groups(&v.expr, keeps, out);
        }
        MetricExpr::Binary(b) => {
            collect_groups(&b.lhs, None, out);
            collect_groups(&b.rhs, None, out);
        }
        MetricExpr::LabelReplace(l) => collect_groups(&l.expr, None, out),
        MetricExpr::Paren(p) => collect_groups(p, outer, out),
        MetricExpr::Literal(_) | MetricExpr::Vector(_) => {}
    }
}

/// What a range aggregation extracts from each line.
pub fn sample_kind(agg: &RangeAggregation) -> SampleKind {
    match (&agg.unwrap, agg.op) {
        (Some(u), _) => SampleKind::Unwrap(u.clone()),
        (None, RangeOp::BytesOverTime | RangeOp::BytesRate) => SampleKind::Bytes,
        (None, _) => SampleKind::Count,
    }
}

/// Samples of one label set, sent from a decoding worker to the sink.
struct Batch {
    labels: Arc<Labels>,
    samples: Vec<(i64, f64)>,
}

/// Samples per batch sent over the channel.
const BATCH: usize = 4096;

/// Everything a worker needs to turn streams into samples.
struct Work<'a> {
    src: &'a StoreSource<'a>,
    pipeline: &'a Pipeline,
    kind: &'a SampleKind,
    sizes_only: bool,
    from: i64,
    through: i64,
}

impl Work<'_> {
    /// Reads one stream and emits its samples in batches through `emit`.
    fn stream(&self, s: &SeriesRef, stats: &mut QueryStats, emit: &mut dyn FnMut(Batch) -> bool) -> Result<(), EvalError> {
        let cols = if self.sizes_only { ReadColumns::TimestampsAndSizes } else { ReadColumns::All };
        let blocks = self.src.store.read_stream(self.src.tenant, s, self.from, self.through, Direction::Forward, cols, &mut stats.read)?;
        let stream_labels = Arc::new(s.labels.clone());
        if self.sizes_only {
            let bytes = matches!(self.kind, SampleKind::Bytes);
            for block in blocks {
                let block = block?;
                self.src.ctx.check()?;
                stats.lines_processed += block.len() as u64;
                stats.post_filter_lines += block.len() as u64;
                let mut samples = Vec::with_capacity(block.len());
                for (i, &ts) in block.timestamps.iter().enumerate() {
                    let len = block.line_lens[i];
                    stats.bytes_processed += len as u64;
                    samples.push((ts, if bytes { len as f64 } else { 1.0 }));
                }
                if !emit(Batch { labels: stream_labels.clone(), samples }) {
                    return Ok(());
                }
            }
            return Ok(());
        }
        let mut sp = self.pipeline.for_stream(&s.labels);
        // The merged label set changes rarely within a stream: rebuild it
        // only when the pipeline's labels differ from the last entry's.
        let mut last: Option<(ResultLabels, Arc<Labels>)> = None;
        let mut pending: Vec<(i64, f64)> = Vec::with_capacity(BATCH);
        for block in blocks {
            let block = block?;
            self.src.ctx.check()?;
            for i in 0..block.len() {
                let ts = block.timestamps[i];
                let line = block.line(i);
                stats.lines_processed += 1;
                stats.bytes_processed += line.len() as u64;
                if let Some((v, rl)) = sp.process_sample(ts, line, &block.metadata[i], self.kind) {
                    stats.post_filter_lines += 1;
                    if last.as_ref().is_none_or(|(l, _)| l != rl) {
                        if let Some((_, labels)) = &last {
                            if !pending.is_empty() && !emit(Batch { labels: labels.clone(), samples: std::mem::take(&mut pending) }) {
                                return Ok(());
                            }
                        }
                        last = Some((rl.clone(), Arc::new(rl.merged())));
                    }
                    pending.push((ts, v));
                    if pending.len() >= BATCH {
                        if let Some((_, labels)) = &last {
                            if !emit(Batch { labels: labels.clone(), samples: std::mem::take(&mut pending) }) {
                                return Ok(());
                            }
                        }
                    }
                }
            }
        }
        if let (Some((_, labels)), false) = (&last, pending.is_empty()) {
            emit(Batch { labels: labels.clone(), samples: pending });
        }
        Ok(())
    }
}

impl SampleSource for StoreSource<'_> {
    /// Streams are decoded, filtered and extracted on every core; the
    /// samples reach `sink` (the accumulator, which is not thread-safe) on
    /// the calling thread through a bounded channel of batches.
    fn for_each_sample(
        &self,
        agg: &RangeAggregation,
        from: i64,
        through: i64,
        sink: &mut dyn FnMut(&Labels, i64, f64),
    ) -> Result<(), EvalError> {
        let matchers = storage_matchers(&agg.log.selector)?;
        let kind = sample_kind(agg);
        Pipeline::check_sample_kind(&kind).map_err(|e| EvalError::Pipeline(e.to_string()))?;
        let groups = self.groups.get(&(agg as *const RangeAggregation as usize)).cloned().flatten();
        let hints = parser_hints(&agg.log.pipeline, &kind, groups.as_deref());
        let pipeline = Pipeline::new(&agg.log.pipeline)
            .map_err(|e| EvalError::Pipeline(e.to_string()))?
            .with_parser_hints(hints.as_deref());
        let series = self.store.select_series(self.tenant, &matchers, from, through)?;
        let sizes_only = !pipeline.needs_lines() && !matches!(kind, SampleKind::Unwrap(_));
        let work = Work { src: self, pipeline: &pipeline, kind: &kind, sizes_only, from, through };
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(series.len());
        if workers <= 1 {
            let mut stats = QueryStats::default();
            for s in &series {
                self.ctx.check()?;
                work.stream(s, &mut stats, &mut |b| {
                    for (ts, v) in &b.samples {
                        sink(&b.labels, *ts, *v);
                    }
                    true
                })?;
            }
            self.ctx.add(&stats);
            return Ok(());
        }
        std::thread::scope(|scope| -> Result<(), EvalError> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Batch, EvalError>>(workers * 8);
            for w in 0..workers {
                let tx = tx.clone();
                let (work, series) = (&work, &series);
                scope.spawn(move || {
                    let mut stats = QueryStats::default();
                    for s in series.iter().skip(w).step_by(workers) {
                        let r = work.src.ctx.check().and_then(|_| work.stream(s, &mut stats, &mut |b| tx.send(Ok(b)).is_ok()));
                        if let Err(e) = r {
                            let _ = tx.send(Err(e));
                            break;
                        }
                    }
                    work.src.ctx.add(&stats);
                });
            }
            drop(tx);
            // Returning early drops the receiver, which stops the workers.
            for msg in rx {
                let b = msg?;
                for (ts, v) in &b.samples {
                    sink(&b.labels, *ts, *v);
                }
            }
            Ok(())
        })
    }
}
