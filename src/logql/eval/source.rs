//! The boundary between metric evaluation and the data: a [`SampleSource`]
//! produces the samples of one range aggregation's log selection.

use crate::labels::Labels;
use crate::logql::eval::EvalError;
use crate::logql::syntax::ast::RangeAggregation;

pub trait SampleSource: Sync {
    /// Calls `sink(labels, ts_ns, value)` once for every sample of `agg`'s
    /// log selection (selector, pipeline, and unwrap/count/bytes extraction)
    /// with a timestamp in `[from, through)`.
    ///
    /// `labels` are the merged post-pipeline labels of the sample (stream ∪
    /// structured metadata ∪ parsed, including `__error__` when a stage set
    /// it). Samples of one series may arrive in any order and interleaved
    /// with other series.
    fn for_each_sample(
        &self,
        agg: &RangeAggregation,
        from: i64,
        through: i64,
        sink: &mut dyn FnMut(&Labels, i64, f64),
    ) -> Result<(), EvalError>;
}
