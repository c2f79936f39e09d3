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

pub mod decolorize;
pub mod drop_keep;
pub mod extract;
pub mod filter;
pub mod fmt;
pub mod ip;
pub mod label_filter;
pub mod parser;
pub mod template;

use std::sync::Arc;

use crate::labels::Labels;
use crate::logql::syntax::ast::{Stage, Unwrap};

pub use filter::LineFilterStage;

/// `__error__`
pub const ERROR_LABEL: &str = "__error__";
/// `__error_details__`
pub const ERROR_DETAILS_LABEL: &str = "__error_details__";
pub const ERR_JSON: &str = "JSONParserErr";
pub const ERR_LOGFMT: &str = "LogfmtParserErr";
pub const ERR_SAMPLE_EXTRACTION: &str = "SampleExtractionErr";
pub const ERR_LABEL_FILTER: &str = "LabelFilterErr";
pub const ERR_TEMPLATE_FORMAT: &str = "TemplateFormatErr";

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

/// A reusable list of label pairs: slots past `len` keep their string
/// capacity so that refilling it per line does not allocate.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    v: Vec<(String, String)>,
    len: usize,
}

impl Slots {
    fn clear(&mut self) {
        self.len = 0;
    }
    fn as_slice(&self) -> &[(String, String)] {
        &self.v[..self.len]
    }
    fn find(&self, name: &str) -> Option<usize> {
        self.as_slice().iter().position(|(k, _)| k == name)
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.find(name).map(|i| self.v[i].1.as_str())
    }
    /// Sets `name`; returns false when it was already there (value replaced).
    fn set(&mut self, name: &str, value: &str) {
        if let Some(i) = self.find(name) {
            let slot = &mut self.v[i].1;
            slot.clear();
            slot.push_str(value);
            return;
        }
        if self.len < self.v.len() {
            let (k, v) = &mut self.v[self.len];
            k.clear();
            k.push_str(name);
            v.clear();
            v.push_str(value);
        } else {
            self.v.push((name.to_string(), value.to_string()));
        }
        self.len += 1;
    }
    fn remove(&mut self, name: &str) -> bool {
        match self.find(name) {
            Some(i) => {
                // Keep the removed slot's buffers for reuse past `len`.
                self.v[i..self.len].rotate_left(1);
                self.len -= 1;
                true
            }
            None => false,
        }
    }
    fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        let mut i = 0;
        while i < self.len {
            if keep(&self.v[i].0, &self.v[i].1) {
                i += 1;
            } else {
                self.v[i..self.len].rotate_left(1);
                self.len -= 1;
            }
        }
    }
    fn sort(&mut self) {
        let len = self.len;
        self.v[..len].sort_by(|a, b| a.0.cmp(&b.0));
    }
    fn same_as(&self, l: &Labels) -> bool {
        l.pairs() == self.as_slice()
    }
    fn to_labels(&self) -> Labels {
        Labels::from_sorted_unchecked(self.as_slice().to_vec())
    }
}

/// The labels of the entry being processed, by category. Stream labels are
/// copied only when a stage changes them.
#[derive(Debug)]
pub(crate) struct Lbs {
    base: Labels,
    stream_modified: bool,
    stream: Slots,
    meta: Slots,
    parsed: Slots,
    err: String,
    err_details: String,
}

impl Lbs {
    fn new(base: Labels) -> Lbs {
        Lbs {
            base,
            stream_modified: false,
            stream: Slots::default(),
            meta: Slots::default(),
            parsed: Slots::default(),
            err: String::new(),
            err_details: String::new(),
        }
    }

    fn reset(&mut self, metadata: &[(Arc<str>, Arc<str>)]) {
        self.stream_modified = false;
        self.stream.clear();
        self.meta.clear();
        self.parsed.clear();
        self.err.clear();
        self.err_details.clear();
        for (k, v) in metadata {
            // As Loki's `LabelsBuilder.Add`: a metadata key that collides
            // with a stream label is kept as `<key>_extracted`; the stream
            // label stays.
            if self.base.get(k).is_some() {
                self.meta.set(&format!("{k}_extracted"), v);
            } else {
                self.meta.set(k, v);
            }
        }
    }

    fn unchanged(&self) -> bool {
        !self.stream_modified
            && self.meta.len == 0
            && self.parsed.len == 0
            && self.err.is_empty()
            && self.err_details.is_empty()
    }

    fn stream_get(&self, name: &str) -> Option<&str> {
        if self.stream_modified {
            self.stream.get(name)
        } else {
            self.base.get(name)
        }
    }

    /// The current value of a label, whichever category holds it.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        if name == ERROR_LABEL {
            return (!self.err.is_empty()).then_some(self.err.as_str());
        }
        if name == ERROR_DETAILS_LABEL {
            return (!self.err_details.is_empty()).then_some(self.err_details.as_str());
        }
        self.parsed
            .get(name)
            .or_else(|| self.meta.get(name))
            .or_else(|| self.stream_get(name))
    }

    /// Calls `f` for every label of the entry (each name once; a parsed
    /// label shadows a metadata or stream label of the same name).
    pub(crate) fn for_each(&self, f: &mut dyn FnMut(&str, &str)) {
        let stream: &[(String, String)] = if self.stream_modified {
            self.stream.as_slice()
        } else {
            self.base.pairs()
        };
        for (k, v) in stream {
            if self.parsed.find(k).is_none() && self.meta.find(k).is_none() {
                f(k, v);
            }
        }
        for (k, v) in self.meta.as_slice() {
            if self.parsed.find(k).is_none() {
                f(k, v);
            }
        }
        for (k, v) in self.parsed.as_slice() {
            f(k, v);
        }
        if !self.err.is_empty() {
            f(ERROR_LABEL, &self.err);
        }
        if !self.err_details.is_empty() {
            f(ERROR_DETAILS_LABEL, &self.err_details);
        }
    }

    /// True when a parsed key named `name` must be renamed `<name>_extracted`.
    /// As Loki's `BaseHas`, this looks at the stream's original labels.
    pub(crate) fn collides(&self, name: &str) -> bool {
        self.base.get(name).is_some() || self.meta.find(name).is_some()
    }

    /// True when a parser already extracted `name` (first value wins).
    pub(crate) fn has_parsed(&self, name: &str) -> bool {
        self.parsed.find(name).is_some()
    }

    pub(crate) fn has_err(&self) -> bool {
        !self.err.is_empty()
    }

    pub(crate) fn set_err(&mut self, e: &str) {
        self.err.clear();
        self.err.push_str(e);
    }

    pub(crate) fn set_err_details(&mut self, d: &str) {
        self.err_details.clear();
        self.err_details.push_str(d);
    }

    /// Sets an error (and details) unless one is already set.
    pub(crate) fn set_err_if_none(&mut self, e: &str, details: &str) {
        if !self.has_err() {
            self.set_err(e);
            self.set_err_details(details);
        }
    }

    fn modify_stream(&mut self) {
        if !self.stream_modified {
            self.stream.clear();
            for (k, v) in self.base.iter() {
                self.stream.set(k, v);
            }
            self.stream_modified = true;
        }
    }

    /// Adds or replaces a parsed label; a stream or metadata label of the
    /// same name moves to the parsed category.
    pub(crate) fn set_parsed(&mut self, name: &str, value: &str) {
        match name {
            ERROR_LABEL => return self.set_err(value),
            ERROR_DETAILS_LABEL => return self.set_err_details(value),
            _ => {}
        }
        if self.meta.find(name).is_some() {
            self.meta.remove(name);
        }
        if self.stream_get(name).is_some() {
            self.modify_stream();
            self.stream.remove(name);
        }
        self.parsed.set(name, value);
    }

    /// Removes a label from whichever category holds it.
    pub(crate) fn del(&mut self, name: &str) {
        match name {
            ERROR_LABEL => return self.err.clear(),
            ERROR_DETAILS_LABEL => return self.err_details.clear(),
            _ => {}
        }
        self.parsed.remove(name);
        self.meta.remove(name);
        if self.stream_get(name).is_some() {
            self.modify_stream();
            self.stream.remove(name);
        }
    }

    /// Keeps only labels for which `keep(name, value)` holds (errors are
    /// never removed).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.parsed.retain(&mut keep);
        self.meta.retain(&mut keep);
        if self.base.iter().any(|(k, v)| !keep(k, v)) || self.stream_modified {
            self.modify_stream();
            self.stream.retain(&mut keep);
        }
    }

    /// Writes the entry's labels into `out`, rebuilding only the categories
    /// that differ from what `out` already holds.
    fn materialize(&mut self, out: &mut ResultLabels) {
        if self.stream_modified {
            self.stream.sort();
            if !self.stream.same_as(&out.stream) {
                out.stream = self.stream.to_labels();
            }
        } else if out.stream != self.base {
            out.stream = self.base.clone();
        }
        self.meta.sort();
        if !self.meta.same_as(&out.structured_metadata) {
            out.structured_metadata = self.meta.to_labels();
        }
        // Errors are parsed labels.
        let Lbs {
            parsed,
            err,
            err_details,
            ..
        } = self;
        if !err.is_empty() {
            parsed.set(ERROR_LABEL, err);
        }
        if !err_details.is_empty() {
            parsed.set(ERROR_DETAILS_LABEL, err_details);
        }
        parsed.sort();
        if !parsed.same_as(&out.parsed) {
            out.parsed = parsed.to_labels();
        }
    }
}

/// One compiled stage.
#[derive(Debug)]
pub(crate) enum CompiledStage {
    Filter(filter::LineFilterStage),
    Parser(parser::Parser),
    LabelFilter(label_filter::LabelFilter),
    LineFormat(fmt::LineFormat),
    LabelFormat(fmt::LabelFormat),
    Drop(drop_keep::Drop),
    Keep(drop_keep::Keep),
    Decolorize,
}

/// A compiled pipeline.
#[derive(Clone, Debug)]
pub struct Pipeline {
    stages: Arc<Vec<CompiledStage>>,
    hints: Option<Arc<[String]>>,
}

impl Pipeline {
    /// Compiles the stages of a log query.
    pub fn new(stages: &[Stage]) -> Result<Pipeline, PipelineError> {
        let mut out = Vec::with_capacity(stages.len());
        for s in stages {
            out.push(match s {
                Stage::LineFilter(f) => CompiledStage::Filter(filter::LineFilterStage::new(f)?),
                Stage::Parser(p) => CompiledStage::Parser(parser::Parser::new(p)?),
                Stage::LabelFilter(e) => {
                    CompiledStage::LabelFilter(label_filter::LabelFilter::new(e)?)
                }
                Stage::LineFormat(t) => CompiledStage::LineFormat(fmt::LineFormat::new(t)?),
                Stage::LabelFormat(f) => CompiledStage::LabelFormat(fmt::LabelFormat::new(f)?),
                Stage::Drop(sel) => CompiledStage::Drop(drop_keep::Drop::new(sel)?),
                Stage::Keep(sel) => CompiledStage::Keep(drop_keep::Keep::new(sel)?),
                Stage::Decolorize => CompiledStage::Decolorize,
            });
        }
        Ok(Pipeline {
            stages: Arc::new(out),
            hints: None,
        })
    }

    /// True when the pipeline needs the line's text (false for an empty
    /// pipeline used by `count_over_time`/`bytes_over_time`, which then read
    /// only timestamps and sizes).
    pub fn needs_lines(&self) -> bool {
        !self.stages.is_empty()
    }

    /// True when every stage is a line filter (or there are none): such a
    /// pipeline never changes lines or labels, so a caller may run
    /// [`Pipeline::filter_block`] over a whole block instead of
    /// [`StreamPipeline::process`] per entry.
    pub fn is_filter_only(&self) -> bool {
        self.stages
            .iter()
            .all(|s| matches!(s, CompiledStage::Filter(_)))
    }

    /// Runs the line filters of a filter-only pipeline over a block of lines
    /// stored back to back (`lines[offsets[i]..offsets[i+1]]` is line `i`).
    /// `keep` is resized to the number of lines and set to whether each line
    /// passes. Positive literal filters make one search pass over the whole
    /// buffer. Non-filter stages are ignored (check
    /// [`Pipeline::is_filter_only`] first).
    pub fn filter_block(&self, lines: &[u8], offsets: &[u32], keep: &mut Vec<bool>) {
        let n = offsets.len().saturating_sub(1);
        keep.clear();
        keep.resize(n, true);
        for s in self.stages.iter() {
            if let CompiledStage::Filter(f) = s {
                f.filter_block(lines, offsets, keep);
            }
        }
    }

    /// Checks that a sample kind compiles (the post-unwrap label filters);
    /// call once per query so that errors become `400`s.
    pub fn check_sample_kind(kind: &SampleKind) -> Result<(), PipelineError> {
        match kind {
            SampleKind::Unwrap(u) => extract::compile_post_filters(u).map(|_| ()),
            _ => Ok(()),
        }
    }

    /// Sets parser hints (Loki's): `None` (the default) makes parsers
    /// extract every key; `Some(names)` only those keys (after the
    /// `_extracted` rename); `Some(&[])` skips parsers entirely, so a metric
    /// query needing no parsed label sees no parser errors. Compute them
    /// with [`parser_hints`].
    pub fn with_parser_hints(mut self, hints: Option<&[String]>) -> Pipeline {
        self.hints = hints.map(Arc::from);
        self
    }

    /// The pipeline for one stream.
    pub fn for_stream(&self, labels: &Labels) -> StreamPipeline {
        StreamPipeline {
            stages: self.stages.clone(),
            cached: ResultLabels {
                stream: labels.clone(),
                ..Default::default()
            },
            out: ResultLabels {
                stream: labels.clone(),
                ..Default::default()
            },
            lbs: Lbs::new(labels.clone()),
            bufs: Buffers {
                scratch: parser::Scratch::with_hints(self.hints.clone()),
                ..Default::default()
            },
            post: None,
        }
    }
}

/// Parser hints for a metric query, as Loki computes them: `groups` is the
/// `by (...)` grouping of the outer aggregation when only those output
/// labels matter (`Some(&[])` for e.g. `sum(...)`), or `None` when every
/// label does (no aggregation, or `without`). Returns `None` (extract
/// everything) when `groups` is `None` or a template may read any label;
/// otherwise the names the stages, the unwrap and the grouping refer to
/// (each `x_extracted` also adds `x`).
pub fn parser_hints(
    stages: &[Stage],
    kind: &SampleKind,
    groups: Option<&[String]>,
) -> Option<Vec<String>> {
    use crate::logql::syntax::ast::LabelFilterExpr as L;
    fn filter_names(e: &L, out: &mut Vec<String>) {
        match e {
            L::And(a, b) | L::Or(a, b) => {
                filter_names(a, out);
                filter_names(b, out);
            }
            L::Paren(a) => filter_names(a, out),
            L::String(m) => out.push(m.name.clone()),
            L::Number { name, .. }
            | L::Duration { name, .. }
            | L::Bytes { name, .. }
            | L::Ip { name, .. } => out.push(name.clone()),
        }
    }
    let mut names: Vec<String> = groups?.to_vec();
    for s in stages {
        match s {
            Stage::LineFormat(_) => return None,
            Stage::LabelFormat(f) => {
                for x in f {
                    match x {
                        crate::logql::syntax::ast::LabelFmt::Rename { dst, src } => {
                            names.push(dst.clone());
                            names.push(src.clone());
                        }
                        crate::logql::syntax::ast::LabelFmt::Template { .. } => return None,
                    }
                }
            }
            Stage::LabelFilter(e) => filter_names(e, &mut names),
            Stage::Drop(sel) | Stage::Keep(sel) => names.extend(sel.iter().map(|s| s.name.clone())),
            Stage::LineFilter(_) | Stage::Parser(_) | Stage::Decolorize => {}
        }
    }
    if let SampleKind::Unwrap(u) = kind {
        names.push(u.label.clone());
        for f in &u.post_filters {
            filter_names(f, &mut names);
        }
    }
    let extra: Vec<String> = names
        .iter()
        .filter_map(|n| n.strip_suffix("_extracted").map(String::from))
        .collect();
    names.extend(extra);
    names.sort();
    names.dedup();
    Some(names)
}

/// Buffers reused across the entries of a stream.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    /// The current rewritten line (valid when `rewritten`).
    pub(crate) line: Vec<u8>,
    /// Scratch for building the next line.
    pub(crate) next: Vec<u8>,
    /// Scratch for template output.
    pub(crate) text: String,
    /// Scratch for parsers.
    pub(crate) scratch: parser::Scratch,
}

/// A pipeline bound to one stream.
#[derive(Debug)]
pub struct StreamPipeline {
    stages: Arc<Vec<CompiledStage>>,
    /// The stream's labels alone: returned for entries no stage changed.
    cached: ResultLabels,
    /// The labels of the last entry that some stage changed.
    out: ResultLabels,
    lbs: Lbs,
    bufs: Buffers,
    /// The compiled post-unwrap filters of the last `Unwrap` seen.
    post: Option<(Unwrap, Vec<label_filter::LabelFilter>)>,
}

/// Whether the current line is the input or `bufs.line`.
#[inline]
fn cur<'a>(rewritten: bool, input: &'a [u8], buf: &'a [u8]) -> &'a [u8] {
    if rewritten {
        buf
    } else {
        input
    }
}

impl StreamPipeline {
    /// Runs every stage; returns whether the entry is kept and whether the
    /// line was rewritten into `bufs.line`.
    fn run(&mut self, ts: i64, line: &[u8], metadata: &[(Arc<str>, Arc<str>)]) -> Option<bool> {
        let StreamPipeline {
            stages, lbs, bufs, ..
        } = self;
        lbs.reset(metadata);
        let mut rewritten = false;
        for stage in stages.iter() {
            match stage {
                CompiledStage::Filter(f) => {
                    if !f.matches(cur(rewritten, line, &bufs.line)) {
                        return None;
                    }
                }
                CompiledStage::Parser(p) => {
                    let mut next = std::mem::take(&mut bufs.next);
                    next.clear();
                    let res = p.process(
                        cur(rewritten, line, &bufs.line),
                        lbs,
                        &mut bufs.scratch,
                        &mut next,
                    );
                    match res {
                        parser::Outcome::Keep => bufs.next = next,
                        parser::Outcome::NewLine => {
                            bufs.next = std::mem::replace(&mut bufs.line, next);
                            rewritten = true;
                        }
                    }
                }
                CompiledStage::LabelFilter(f) => {
                    if !f.process(lbs) {
                        return None;
                    }
                }
                CompiledStage::LineFormat(f) => {
                    let mut text = std::mem::take(&mut bufs.text);
                    text.clear();
                    let ok = f.execute(ts, cur(rewritten, line, &bufs.line), lbs, &mut text);
                    if ok {
                        bufs.line.clear();
                        bufs.line.extend_from_slice(text.as_bytes());
                        rewritten = true;
                    }
                    bufs.text = text;
                }
                CompiledStage::LabelFormat(f) => {
                    let mut text = std::mem::take(&mut bufs.text);
                    f.process(ts, cur(rewritten, line, &bufs.line), lbs, &mut text);
                    bufs.text = text;
                }
                CompiledStage::Drop(d) => d.process(lbs),
                CompiledStage::Keep(k) => k.process(lbs),
                CompiledStage::Decolorize => {
                    let src = cur(rewritten, line, &bufs.line);
                    if decolorize::has_escape(src) {
                        bufs.next.clear();
                        decolorize::decolorize(src, &mut bufs.next);
                        std::mem::swap(&mut bufs.line, &mut bufs.next);
                        rewritten = true;
                    }
                }
            }
        }
        Some(rewritten)
    }

    fn labels(&mut self) -> &ResultLabels {
        if self.lbs.unchanged() {
            &self.cached
        } else {
            self.lbs.materialize(&mut self.out);
            &self.out
        }
    }

    /// Runs one entry through every stage. `None` when a filter dropped it;
    /// otherwise the (possibly rewritten) line and the entry's labels.
    pub fn process<'a>(
        &'a mut self,
        ts: i64,
        line: &'a [u8],
        metadata: &[(Arc<str>, Arc<str>)],
    ) -> Option<(&'a [u8], &'a ResultLabels)> {
        let rewritten = self.run(ts, line, metadata)?;
        let labels = if self.lbs.unchanged() {
            &self.cached
        } else {
            self.lbs.materialize(&mut self.out);
            &self.out
        };
        Some((cur(rewritten, line, &self.bufs.line), labels))
    }

    /// Runs one entry and extracts its sample value. `None` when filtered
    /// out (or, for `unwrap`, when the label is missing or empty); conversion
    /// failures keep the sample (value 0) with `__error__` set. The
    /// unwrapped label is removed from the labels.
    pub fn process_sample(
        &mut self,
        ts: i64,
        line: &[u8],
        metadata: &[(Arc<str>, Arc<str>)],
        kind: &SampleKind,
    ) -> Option<(f64, &ResultLabels)> {
        let rewritten = self.run(ts, line, metadata)?;
        let v = match kind {
            SampleKind::Count => 1.0,
            SampleKind::Bytes => cur(rewritten, line, &self.bufs.line).len() as f64,
            SampleKind::Unwrap(u) => {
                if self.post.as_ref().is_none_or(|(c, _)| c != u) {
                    let fs = extract::compile_post_filters(u).ok()?;
                    self.post = Some((u.clone(), fs));
                }
                let filters = self.post.as_ref().map(|(_, f)| f.as_slice()).unwrap_or(&[]);
                extract::unwrap(u, filters, &mut self.lbs)?
            }
        };
        Some((v, self.labels()))
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    pub fn pipeline(s: Vec<Stage>) -> Pipeline {
        Pipeline::new(&s).expect("compile")
    }

    pub fn labels(s: &str) -> Labels {
        crate::labels::parse_labels(s).expect("labels")
    }

    pub fn md(pairs: &[(&str, &str)]) -> Vec<(Arc<str>, Arc<str>)> {
        pairs
            .iter()
            .map(|(k, v)| (Arc::from(*k), Arc::from(*v)))
            .collect()
    }

    /// Runs one line through `p` for stream `{app="svc"}`; returns the line
    /// and the merged labels.
    pub fn run(p: &Pipeline, line: &str) -> Option<(String, String)> {
        run_md(p, line, &[])
    }

    pub fn run_md(p: &Pipeline, line: &str, m: &[(&str, &str)]) -> Option<(String, String)> {
        let mut sp = p.for_stream(&labels(r#"{app="svc"}"#));
        let m = md(m);
        let (l, lb) = sp.process(1, line.as_bytes(), &m)?;
        Some((
            String::from_utf8_lossy(l).into_owned(),
            lb.merged().to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{labels, md, pipeline};
    use super::*;
    use crate::logql::syntax::ast::LabelFilterExpr;
    use crate::logql::syntax::ast::{
        LineFilter, LineFilterOp, LineFilterValue, MatchOp, Matcher, ParserStage,
    };

    fn contains(s: &str) -> Stage {
        Stage::LineFilter(LineFilter {
            op: LineFilterOp::Contains,
            values: vec![LineFilterValue::Str(s.into())],
        })
    }

    #[test]
    fn parser_hints_limit_extraction() {
        use crate::logql::syntax::ast::{Unwrap, UnwrapConversion};
        let json = Stage::Parser(ParserStage::Json(vec![]));
        let lvl = Stage::LabelFilter(LabelFilterExpr::String(Matcher {
            name: "level".into(),
            op: MatchOp::Eq,
            value: "error".into(),
        }));
        let stages = vec![json.clone(), lvl];
        let kind = SampleKind::Unwrap(Unwrap {
            label: "duration_ms".into(),
            conversion: Some(UnwrapConversion::Bytes),
            post_filters: vec![],
        });
        // No aggregation: everything is extracted.
        assert_eq!(parser_hints(&stages, &kind, None), None);
        let groups = ["order_id_extracted".to_string()];
        let h = parser_hints(&stages, &kind, Some(&groups)).unwrap();
        assert_eq!(
            h,
            ["duration_ms", "level", "order_id", "order_id_extracted"]
        );
        let p = Pipeline::new(&stages).unwrap().with_parser_hints(Some(&h));
        let mut sp = p.for_stream(&labels(r#"{app="svc"}"#));
        let line = br#"{"level": "error", "event": "x", "order_id": 1, "duration_ms": 5}"#;
        let (_, r) = sp.process(1, line, &[]).unwrap();
        assert_eq!(
            r.parsed.to_string(),
            r#"{duration_ms="5", level="error", order_id="1"}"#
        );
        // `sum(count_over_time({...} | json [1m]))`: no label needed, no parse
        // and no error on a non-JSON line.
        let h = parser_hints(std::slice::from_ref(&json), &SampleKind::Count, Some(&[])).unwrap();
        assert!(h.is_empty());
        let p = Pipeline::new(std::slice::from_ref(&json))
            .unwrap()
            .with_parser_hints(Some(&h));
        let mut sp = p.for_stream(&labels(r#"{app="svc"}"#));
        let (_, r) = sp
            .process_sample(1, b"not json", &[], &SampleKind::Count)
            .unwrap();
        assert!(r.parsed.is_empty());
        // A template may read any label.
        assert_eq!(
            parser_hints(
                &[json, Stage::LineFormat("x".into())],
                &SampleKind::Count,
                Some(&[])
            ),
            None
        );
    }

    #[test]
    fn random_input_never_panics() {
        use crate::logql::syntax::ast::{ExtractParam, Unwrap, UnwrapConversion};
        use rand::{Rng, SeedableRng};
        let parsers = [
            ParserStage::Json(vec![]),
            ParserStage::Json(vec![ExtractParam {
                label: "a".into(),
                expr: Some(r#"a[0]["b"].c"#.into()),
            }]),
            ParserStage::Logfmt {
                strict: true,
                keep_empty: true,
                params: vec![],
            },
            ParserStage::Logfmt {
                strict: false,
                keep_empty: false,
                params: vec![],
            },
            ParserStage::Regexp(r"(?P<a>\w+)=(?P<b>\S*)".into()),
            ParserStage::Pattern("<a> <_> [<b>]".into()),
            ParserStage::Unpack,
        ];
        let alphabet = b"{}[]\":,\\ =\"abc019.-tfnul\x1b\xff\xc3";
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let kind = SampleKind::Unwrap(Unwrap {
            label: "a".into(),
            conversion: Some(UnwrapConversion::Duration),
            post_filters: vec![],
        });
        for ps in parsers {
            let p = pipeline(vec![Stage::Parser(ps), Stage::Decolorize]);
            let mut sp = p.for_stream(&labels(r#"{a="1"}"#));
            for _ in 0..3000 {
                let n = rng.random_range(0..40);
                let line: Vec<u8> = (0..n)
                    .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                    .collect();
                let _ = sp.process(0, &line, &[]);
                let _ = sp.process_sample(0, &line, &[], &kind);
            }
        }
    }

    #[test]
    fn thread_safety() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Pipeline>();
        send::<StreamPipeline>();
    }

    #[test]
    fn categories_are_tracked() {
        let p = pipeline(vec![Stage::Parser(ParserStage::Json(vec![]))]);
        let mut sp = p.for_stream(&labels(r#"{app="svc", env="prod"}"#));
        let m = md(&[("trace_id", "t-9")]);
        let (_, r) = sp
            .process(1, br#"{"level": "error", "order_id": 1}"#, &m)
            .unwrap();
        assert_eq!(r.stream.to_string(), r#"{app="svc", env="prod"}"#);
        assert_eq!(r.structured_metadata.to_string(), r#"{trace_id="t-9"}"#);
        assert_eq!(r.parsed.to_string(), r#"{level="error", order_id="1"}"#);
        let (_, r) = sp.process(2, b"oops", &m).unwrap();
        assert_eq!(
            r.parsed.to_string(),
            r#"{__error__="JSONParserErr", __error_details__="Value looks like object, but can't find closing '}' symbol"}"#
        );
    }

    /// Regression: metadata named like a stream label (OTLP's
    /// `severity_text_as_label` stores both) removed the indexed label from
    /// the categorized result. Loki keeps it and renames the metadata key.
    #[test]
    fn metadata_colliding_with_a_stream_label_is_extracted() {
        let p = pipeline(vec![]);
        let mut sp = p.for_stream(&labels(r#"{app="svc", env="prod"}"#));
        let m = md(&[("env", "dev")]);
        let (_, r) = sp.process(1, b"x", &m).unwrap();
        assert_eq!(r.stream.to_string(), r#"{app="svc", env="prod"}"#);
        assert_eq!(
            r.structured_metadata.to_string(),
            r#"{env_extracted="dev"}"#
        );
        assert_eq!(
            r.merged().to_string(),
            r#"{app="svc", env="prod", env_extracted="dev"}"#
        );
    }

    #[test]
    fn parsed_key_of_a_dropped_stream_label_is_still_renamed() {
        use crate::logql::syntax::ast::LabelSelection;
        let p = pipeline(vec![
            Stage::Drop(vec![LabelSelection {
                name: "app".into(),
                matcher: None,
            }]),
            Stage::Parser(ParserStage::Json(vec![])),
        ]);
        let mut sp = p.for_stream(&labels(r#"{app="svc"}"#));
        let (_, r) = sp.process(1, br#"{"app": "web"}"#, &[]).unwrap();
        assert_eq!(r.merged().to_string(), r#"{app_extracted="web"}"#);
    }

    #[test]
    fn unchanged_entries_get_the_cached_stream_labels() {
        let p = pipeline(vec![
            contains("order"),
            Stage::Parser(ParserStage::Json(vec![])),
        ]);
        let mut sp = p.for_stream(&labels(r#"{app="svc"}"#));
        let (_, r) = sp.process(1, br#"{"order": 1}"#, &[]).unwrap();
        assert_eq!(r.parsed.to_string(), r#"{order="1"}"#);
        // `{}` adds nothing: the labels are the stream's alone again.
        let (_, r) = sp.process(2, b"{} order", &[]).unwrap();
        assert_eq!(
            r,
            &ResultLabels {
                stream: labels(r#"{app="svc"}"#),
                ..Default::default()
            }
        );
        assert!(sp.process(3, b"{}", &[]).is_none());
        let f = pipeline(vec![contains("x")]);
        let mut sp = f.for_stream(&labels(r#"{app="svc"}"#));
        let cached: *const ResultLabels = &sp.cached;
        let (_, r) = sp.process(1, b"x", &[]).unwrap();
        assert!(std::ptr::eq(r, cached));
    }

    #[test]
    fn error_filter_after_parser() {
        let no_err = LabelFilterExpr::String(Matcher {
            name: "__error__".into(),
            op: MatchOp::Eq,
            value: "".into(),
        });
        let p = pipeline(vec![
            Stage::Parser(ParserStage::Json(vec![])),
            Stage::LabelFilter(no_err),
        ]);
        let mut sp = p.for_stream(&labels(r#"{app="svc"}"#));
        assert!(sp.process(1, b"not json", &[]).is_none());
        assert!(sp.process(1, br#"{"a":"b"}"#, &[]).is_some());
    }

    #[test]
    fn filter_only_block_path() {
        let p = pipeline(vec![
            contains("error"),
            Stage::LineFilter(LineFilter {
                op: LineFilterOp::NotContains,
                values: vec![LineFilterValue::Str("mod_jk".into())],
            }),
        ]);
        assert!(p.is_filter_only());
        assert!(!pipeline(vec![Stage::Decolorize]).is_filter_only());
        let lines = [
            "[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok",
            "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6",
            "[Sun Dec 04 04:52:15 2005] [error] [client 1.2.3.4] Directory index forbidden",
        ];
        let mut buf = Vec::new();
        let mut off = vec![0u32];
        for l in lines {
            buf.extend_from_slice(l.as_bytes());
            off.push(buf.len() as u32);
        }
        let mut keep = Vec::new();
        p.filter_block(&buf, &off, &mut keep);
        assert_eq!(keep, [false, false, true]);
    }

    /// `cargo test --release --lib bench_json -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn bench_json_parser() {
        let line = br#"{"timestamp": "2024-05-01T10:00:00Z", "level": "error", "event": "order_processing_failed", "order_id": 4411, "trace_id": "7f3a9c", "duration_ms": 250.5, "ctx": {"user": 7, "region": "eu"}}"#;
        let p = pipeline(vec![Stage::Parser(ParserStage::Json(vec![]))]);
        let mut sp = p.for_stream(&labels(r#"{app="svc"}"#));
        let n = 200_000;
        let t = std::time::Instant::now();
        let mut total = 0usize;
        for i in 0..n {
            let (_, r) = sp.process(i, line, &[]).unwrap();
            total += r.parsed.len();
        }
        let ours = t.elapsed();
        let t = std::time::Instant::now();
        for _ in 0..n {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            total += v.as_object().map(|o| o.len()).unwrap_or(0);
        }
        println!(
            "{n} lines: pipeline json {ours:?}, serde_json::Value parse alone {:?} ({total})",
            t.elapsed()
        );
    }

    /// `cargo test --release --lib bench_filter -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn bench_filter_block_vs_per_line() {
        let text = std::fs::read_to_string("/work/shared/corpus/loghub/OpenSSH_2k.log")
            .unwrap_or_default();
        let mut buf = Vec::new();
        let mut off = vec![0u32];
        for _ in 0..50 {
            for l in text.lines() {
                buf.extend_from_slice(l.as_bytes());
                off.push(buf.len() as u32);
            }
        }
        let p = pipeline(vec![contains("Accepted password")]);
        let t = std::time::Instant::now();
        let mut keep = Vec::new();
        p.filter_block(&buf, &off, &mut keep);
        let block = t.elapsed();
        let n_block = keep.iter().filter(|k| **k).count();
        let t = std::time::Instant::now();
        let mut sp = p.for_stream(&labels(r#"{app="svc"}"#));
        let mut n = 0;
        for w in off.windows(2) {
            if sp
                .process(0, &buf[w[0] as usize..w[1] as usize], &[])
                .is_some()
            {
                n += 1;
            }
        }
        let per_line = t.elapsed();
        assert_eq!(n, n_block);
        println!(
            "{} lines: block {block:?}, per line {per_line:?}, hits {n}",
            off.len() - 1
        );
    }
}
