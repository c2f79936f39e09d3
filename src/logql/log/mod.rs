//! The per-line pipeline: line filters, parsers, label filters, formatters,
//! `drop`/`keep`, `decolorize`, and sample extraction (`unwrap`) for metric
//! queries.
//!
//! A [`Pipeline`] is compiled once per query from the AST's [`Stage`]s; a
//! [`StreamPipeline`] is made from it for each stream (it carries that
//! stream's labels and reusable buffers) and then runs every entry of the
//! stream. A stage never mutates the line passed in: rewritten lines live in
//! the stream pipeline's own buffer.
//!
//! This room knows the AST and the label types; it knows nothing of storage
//! or HTTP.

pub mod template;

use std::sync::Arc;

use crate::labels::Labels;
use crate::logql::syntax::ast::{Stage, Unwrap};

/// Errors found while compiling a pipeline (bad regex, bad template, ...).
/// Reported to clients as `400`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct PipelineError(pub String);

/// The labels of one processed entry, kept in Loki's three categories.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ResultLabels {
    /// The stream's indexed labels (after drop/keep/label_format).
    pub stream: Labels,
    /// Structured metadata of the entry (after drop/keep/label_format).
    pub structured_metadata: Labels,
    /// Labels added by parsers and formatters, including `__error__`.
    pub parsed: Labels,
}

impl ResultLabels {
    /// stream ∪ structured metadata ∪ parsed: the label set of a result
    /// stream or series when labels are not categorized.
    pub fn merged(&self) -> Labels {
        let mut l = self.stream.clone();
        for (k, v) in self.structured_metadata.iter().chain(self.parsed.iter()) {
            l.insert(k, v);
        }
        l
    }
}

/// What a pipeline extracts as the value of a sample in metric queries.
#[derive(Clone, Debug, PartialEq)]
pub enum SampleKind {
    /// 1 per line (count_over_time, rate).
    Count,
    /// The line's size in bytes (bytes_over_time, bytes_rate).
    Bytes,
    /// The unwrapped label's value.
    Unwrap(Unwrap),
}

/// A compiled pipeline.
#[derive(Clone, Debug)]
pub struct Pipeline {
    _stages: Vec<Stage>,
}

impl Pipeline {
    /// Compiles the stages of a log query.
    pub fn new(stages: &[Stage]) -> Result<Pipeline, PipelineError> {
        Ok(Pipeline { _stages: stages.to_vec() })
    }

    /// True when the pipeline needs the line's text (false for an empty
    /// pipeline used by `count_over_time`/`bytes_over_time`, which then read
    /// only timestamps and sizes).
    pub fn needs_lines(&self) -> bool {
        !self._stages.is_empty()
    }

    /// The pipeline for one stream.
    pub fn for_stream(&self, labels: &Labels) -> StreamPipeline {
        StreamPipeline { labels: ResultLabels { stream: labels.clone(), ..Default::default() } }
    }
}

/// A pipeline bound to one stream.
#[derive(Debug)]
pub struct StreamPipeline {
    labels: ResultLabels,
}

impl StreamPipeline {
    /// Runs one entry through every stage. `None` when a filter dropped it;
    /// otherwise the (possibly rewritten) line and the entry's labels.
    pub fn process<'a>(
        &'a mut self,
        _ts: i64,
        line: &'a [u8],
        _metadata: &[(Arc<str>, Arc<str>)],
    ) -> Option<(&'a [u8], &'a ResultLabels)> {
        Some((line, &self.labels))
    }

    /// Runs one entry and extracts its sample value. `None` when filtered
    /// out; conversion failures keep the sample with `__error__` set.
    pub fn process_sample(
        &mut self,
        _ts: i64,
        line: &[u8],
        _metadata: &[(Arc<str>, Arc<str>)],
        kind: &SampleKind,
    ) -> Option<(f64, &ResultLabels)> {
        let v = match kind {
            SampleKind::Bytes => line.len() as f64,
            _ => 1.0,
        };
        Some((v, &self.labels))
    }
}
