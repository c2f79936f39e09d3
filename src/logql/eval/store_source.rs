//! The [`SampleSource`] over storage: selects a range aggregation's streams,
//! runs its pipeline and extraction, and hands samples to the metric engine.
//!
//! Entries are always read whole, even for `count_over_time` over a bare
//! selector: a sample's labels include the entry's structured metadata
//! (e.g. `detected_level`), as in Loki, and duplicates are recognised by
//! line and metadata, not by timestamp and size alone.

use std::collections::HashMap;
use std::sync::Arc;

use crate::labels::Labels;
use crate::logql::eval::context::{QueryContext, QueryStats};
use crate::logql::eval::selector::storage_matchers;
use crate::logql::eval::tenants::{self, TenantSeries};
use crate::logql::eval::{EvalError, SampleSource};
use crate::logql::log::{parser_hints, Pipeline, ResultLabels, SampleKind};
use crate::logql::syntax::ast::{MetricExpr, RangeAggregation, RangeOp, VectorOp};
use crate::storage::{Direction, ReadColumns, Store};

pub struct StoreSource<'a> {
    store: &'a Store,
    tenant: &'a str,
    ctx: &'a QueryContext,
    /// For each range aggregation of the query (by address in its tree):
    /// the output labels that matter, for parser hints (`None`: all).
    groups: HashMap<usize, Option<Vec<String>>>,
}

impl<'a> StoreSource<'a> {
    pub fn new(
        store: &'a Store,
        tenant: &'a str,
        ctx: &'a QueryContext,
        expr: &MetricExpr,
    ) -> StoreSource<'a> {
        let mut groups = HashMap::new();
        collect_groups(expr, None, &mut groups);
        StoreSource {
            store,
            tenant,
            ctx,
            groups,
        }
    }
}

/// Records, for every range aggregation under `e`, which labels its
/// enclosing aggregation keeps: `by (a, b)` keeps those, `sum(...)` none,
/// anything else (no aggregation, `without`, topk, binary operators,
/// label_replace) every label. Loki uses this to parse only what is needed,
/// so `sum(count_over_time({a="b"} | json [1m]))` works on non-JSON lines.
fn collect_groups(
    e: &MetricExpr,
    outer: Option<Vec<String>>,
    out: &mut HashMap<usize, Option<Vec<String>>>,
) {
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
                VectorOp::Sum
                | VectorOp::Avg
                | VectorOp::Min
                | VectorOp::Max
                | VectorOp::Count
                | VectorOp::Stddev
                | VectorOp::Stdvar => match &v.grouping {
                    None => Some(Vec::new()),
                    Some(g) if !g.without => Some(g.labels.clone()),
                    Some(_) => None,
                },
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
    from: i64,
    through: i64,
}

impl Work<'_> {
    /// Reads one stream and emits its samples in batches through `emit`.
    fn stream(
        &self,
        s: &TenantSeries,
        stats: &mut QueryStats,
        emit: &mut dyn FnMut(Batch) -> bool,
    ) -> Result<(), EvalError> {
        // Whole entries, always: samples carry their structured metadata
        // (`sum by (detected_level)` needs it), and exact-duplicate
        // detection across sources needs the lines.
        let blocks = self.src.store.read_stream(
            s.tenant,
            &s.series,
            self.from,
            self.through,
            Direction::Forward,
            ReadColumns::All,
            &mut stats.read,
        )?;
        let mut sp = self.pipeline.for_stream(s.labels());
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
                            if !pending.is_empty()
                                && !emit(Batch {
                                    labels: labels.clone(),
                                    samples: std::mem::take(&mut pending),
                                })
                            {
                                return Ok(());
                            }
                        }
                        last = Some((rl.clone(), Arc::new(rl.merged())));
                    }
                    pending.push((ts, v));
                    if pending.len() >= BATCH {
                        if let Some((_, labels)) = &last {
                            if !emit(Batch {
                                labels: labels.clone(),
                                samples: std::mem::take(&mut pending),
                            }) {
                                return Ok(());
                            }
                        }
                    }
                }
            }
        }
        if let (Some((_, labels)), false) = (&last, pending.is_empty()) {
            emit(Batch {
                labels: labels.clone(),
                samples: pending,
            });
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
        let groups = self
            .groups
            .get(&(agg as *const RangeAggregation as usize))
            .cloned()
            .flatten();
        let hints = parser_hints(&agg.log.pipeline, &kind, groups.as_deref());
        let pipeline = Pipeline::new(&agg.log.pipeline)
            .map_err(|e| EvalError::Pipeline(e.to_string()))?
            .with_parser_hints(hints.as_deref());
        let series = tenants::select_series(self.store, self.tenant, &matchers, from, through)?;
        let work = Work {
            src: self,
            pipeline: &pipeline,
            kind: &kind,
            from,
            through,
        };
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(series.len());
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
                        let r = work.src.ctx.check().and_then(|_| {
                            work.stream(s, &mut stats, &mut |b| tx.send(Ok(b)).is_ok())
                        });
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

#[cfg(test)]
mod tests {
    use crate::labels::parse_labels;
    use crate::logql::eval::engine::{Engine, QueryLimits};
    use crate::logql::eval::{QueryParams, QueryResult};
    use crate::storage::{Direction, PushEntry, PushStream, StorageConfig, Store};

    const S: i64 = 1_000_000_000;

    fn entry(ts: i64, line: &str, md: &[(&str, &str)]) -> PushEntry {
        PushEntry {
            ts,
            line: line.into(),
            metadata: md
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// `query` as an instant query at 60 s, as (labels, value) pairs.
    fn instant(e: &Engine, query: &str) -> Vec<(String, f64)> {
        let p = QueryParams {
            start: 60 * S,
            end: 60 * S,
            step: 0,
            interval: 0,
            limit: 100,
            direction: Direction::Backward,
            instant: true,
        };
        match e.query("t", query, &p, &e.context("t")).expect("query") {
            QueryResult::Vector(v) => v
                .into_iter()
                .map(|s| (s.metric.to_string(), s.value))
                .collect(),
            other => panic!("not a vector: {other:?}"),
        }
    }

    fn engine_with(entries: Vec<PushEntry>) -> (tempfile::TempDir, Engine) {
        let d = tempfile::tempdir().expect("tempdir");
        let store = Store::open(StorageConfig::new(d.path())).expect("open");
        store
            .append(
                "t",
                vec![PushStream {
                    labels: parse_labels(r#"{app="a"}"#).expect("labels"),
                    entries,
                }],
            )
            .expect("append");
        let limits = std::sync::Arc::new(crate::limits::TenantLimits::new(QueryLimits::default()));
        (d, Engine::new(store, limits))
    }

    /// Regression: `count_over_time`/`bytes_over_time` over a bare selector
    /// read only timestamps and sizes and lost the structured metadata that
    /// Loki puts in every sample's labels (`detected_level` above all).
    #[test]
    fn bare_range_aggregation_keeps_structured_metadata_labels() {
        let (_d, e) = engine_with(vec![
            entry(S, "one", &[("detected_level", "info")]),
            entry(2 * S, "two", &[("detected_level", "warn")]),
            entry(3 * S, "three", &[("detected_level", "warn")]),
        ]);
        let want_count = vec![
            (r#"{app="a", detected_level="info"}"#.to_string(), 1.0),
            (r#"{app="a", detected_level="warn"}"#.to_string(), 2.0),
        ];
        for flushed in [false, true] {
            if flushed {
                e.store.flush().expect("flush");
            }
            assert_eq!(instant(&e, r#"count_over_time({app="a"}[1m])"#), want_count);
            // "two" + "three" = 3 + 5 bytes.
            assert_eq!(
                instant(&e, r#"bytes_over_time({app="a"}[1m])"#),
                vec![
                    (r#"{app="a", detected_level="info"}"#.to_string(), 3.0),
                    (r#"{app="a", detected_level="warn"}"#.to_string(), 8.0),
                ]
            );
        }
    }

    /// Regression: with sizes-only reads, two different lines with the same
    /// timestamp and length in two sources (a block and the head, or two
    /// blocks) were taken for duplicates.
    #[test]
    fn bare_count_over_time_counts_distinct_lines_of_equal_size_and_time() {
        let (_d, e) = engine_with(vec![entry(S, "aa", &[])]);
        e.store.flush().expect("flush");
        e.store
            .append(
                "t",
                vec![PushStream {
                    labels: parse_labels(r#"{app="a"}"#).expect("labels"),
                    entries: vec![entry(S, "bb", &[]), entry(S, "aa", &[("k", "v")])],
                }],
            )
            .expect("append");
        for flushed in [false, true] {
            if flushed {
                e.store.flush().expect("flush");
            }
            assert_eq!(
                instant(&e, r#"sum(count_over_time({app="a"}[1m]))"#),
                vec![("{}".to_string(), 3.0)],
                "flushed: {flushed}"
            );
        }
    }
}
