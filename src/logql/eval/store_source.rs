//! The [`SampleSource`] over storage: selects a range aggregation's streams,
//! runs its pipeline and extraction, and hands samples to the metric engine.
//!
//! Entries are always read whole, even for `count_over_time` over a bare
//! selector: a sample's labels include the entry's structured metadata
//! (e.g. `detected_level`), as in Loki, and duplicates are recognised by
//! line and metadata, not by timestamp and size alone.

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
        let mut stats = QueryStats::default();
        for s in &series {
            self.ctx.check()?;
            let blocks = self.store.read_stream(
                self.tenant,
                s,
                from,
                through,
                Direction::Forward,
                ReadColumns::All,
                &mut stats.read,
            )?;
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
        match e.query("t", query, &p, &e.context()).expect("query") {
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
        (d, Engine::new(store, QueryLimits::default()))
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
