//! The [`SampleSource`] over storage: selects a range aggregation's streams,
//! runs its pipeline and extraction, and hands samples to the metric engine.
//!
//! When the aggregation needs only timestamps and sizes (`count_over_time`,
//! `rate`, `bytes_*` over a bare selector) the lines are never decompressed.

use crate::labels::Labels;
use crate::logql::eval::context::{QueryContext, QueryStats};
use crate::logql::eval::selector::storage_matchers;
use crate::logql::eval::{EvalError, SampleSource};
use crate::logql::log::{Pipeline, ResultLabels, SampleKind};
use crate::logql::syntax::ast::{RangeAggregation, RangeOp};
use crate::storage::{Direction, ReadColumns, Store};

pub struct StoreSource<'a> {
    pub store: &'a Store,
    pub tenant: &'a str,
    pub ctx: &'a QueryContext,
}

/// What a range aggregation extracts from each line.
pub fn sample_kind(agg: &RangeAggregation) -> SampleKind {
    match (&agg.unwrap, agg.op) {
        (Some(u), _) => SampleKind::Unwrap(u.clone()),
        (None, RangeOp::BytesOverTime | RangeOp::BytesRate) => SampleKind::Bytes,
        (None, _) => SampleKind::Count,
    }
}

impl SampleSource for StoreSource<'_> {
    fn for_each_sample(
        &self,
        agg: &RangeAggregation,
        from: i64,
        through: i64,
        sink: &mut dyn FnMut(&Labels, i64, f64),
    ) -> Result<(), EvalError> {
        let matchers = storage_matchers(&agg.log.selector)?;
        let pipeline =
            Pipeline::new(&agg.log.pipeline).map_err(|e| EvalError::Pipeline(e.to_string()))?;
        let kind = sample_kind(agg);
        let series = self
            .store
            .select_series(self.tenant, &matchers, from, through)?;
        let sizes_only = !pipeline.needs_lines() && !matches!(kind, SampleKind::Unwrap(_));
        let mut stats = QueryStats::default();
        for s in &series {
            self.ctx.check()?;
            let cols = if sizes_only {
                ReadColumns::TimestampsAndSizes
            } else {
                ReadColumns::All
            };
            let blocks = self.store.read_stream(
                self.tenant,
                s,
                from,
                through,
                Direction::Forward,
                cols,
                &mut stats.read,
            )?;
            if sizes_only {
                let bytes = matches!(kind, SampleKind::Bytes);
                for block in blocks {
                    let block = block?;
                    self.ctx.check()?;
                    stats.lines_processed += block.len() as u64;
                    for (i, &ts) in block.timestamps.iter().enumerate() {
                        let len = block.line_lens[i];
                        stats.bytes_processed += len as u64;
                        sink(&s.labels, ts, if bytes { len as f64 } else { 1.0 });
                    }
                    stats.post_filter_lines += block.len() as u64;
                }
                continue;
            }
            let mut sp = pipeline.for_stream(&s.labels);
            // The merged label set changes rarely within a stream: rebuild it
            // only when the pipeline's labels differ from the last entry's.
            let mut last: Option<(ResultLabels, Labels)> = None;
            for block in blocks {
                let block = block?;
                self.ctx.check()?;
                for i in 0..block.len() {
                    let ts = block.timestamps[i];
                    let line = block.line(i);
                    stats.lines_processed += 1;
                    stats.bytes_processed += line.len() as u64;
                    if let Some((v, rl)) = sp.process_sample(ts, line, &block.metadata[i], &kind) {
                        stats.post_filter_lines += 1;
                        if last.as_ref().is_none_or(|(l, _)| l != rl) {
                            last = Some((rl.clone(), rl.merged()));
                        }
                        if let Some((_, merged)) = &last {
                            sink(merged, ts, v);
                        }
                    }
                }
            }
        }
        self.ctx.add(&stats);
        Ok(())
    }
}
