//! Go `text/template` for `line_format` and `label_format`: parsing,
//! execution with Loki's `missingkey=zero` semantics, and the function
//! library Loki documents (its own functions plus the sprig subset).
//!
//! A [`Template`] is parsed once ([`parse`](parse::parse) builds a tree;
//! constant regex arguments are compiled then) and executed per entry by
//! [`exec`], which appends to the caller's buffer and reads labels through
//! [`TemplateData::label`], so `{{.a}} {{.b}}` allocates nothing. Values
//! ([`value`]) follow Go's printing and truthiness rules; [`printf`] is
//! Go's `fmt`; [`timefmt`] holds Go's time layouts, durations and byte
//! sizes; [`funcs`] the function library.
//!
//! Untrusted templates are bounded: output per execution
//! ([`MAX_OUTPUT`]), evaluation steps ([`MAX_STEPS`]), `{{template}}`
//! recursion ([`MAX_DEPTH`]) and parse nesting.

mod exec;
mod funcs;
mod parse;
mod printf;
mod timefmt;
mod value;
mod zone;

use std::sync::Arc;

/// Maximum bytes one execution may write.
pub const MAX_OUTPUT: usize = 1 << 20;
/// Maximum evaluation steps (actions, function calls, range iterations).
pub const MAX_STEPS: usize = 100_000;
/// Maximum nesting of blocks and `{{template}}` calls during execution.
pub const MAX_DEPTH: usize = 100;

/// Error parsing or executing a template. Parse errors become `400`s;
/// execution errors set `__error__=TemplateFormatErr` on the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// What a template can see while it runs for one entry.
pub trait TemplateData {
    /// The value of a label (stream, structured metadata or parsed), if set.
    fn label(&self, name: &str) -> Option<&str>;
    /// The current line (`__line__`).
    fn line(&self) -> &str;
    /// The entry's timestamp in Unix ns (`__timestamp__`).
    fn timestamp_ns(&self) -> i64;
    /// Calls `f` with every label (any order). Only needed when a template
    /// uses the whole map (`{{.}}`, `{{range $k, $v := .}}`, `len .`);
    /// the default sees no labels.
    fn for_each_label(&self, f: &mut dyn FnMut(&str, &str)) {
        let _ = f;
    }
}

/// A parsed template, reusable across entries and threads.
#[derive(Clone, Debug)]
pub struct Template {
    source: String,
    name: String,
    tree: Arc<parse::Tree>,
    regexes: Arc<funcs::RegexCache>,
}

impl Template {
    /// Parses with Go's template name `line` (as Loki's `line_format`).
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        Template::parse_named("line", source)
    }

    /// Parses with a Go template name, which appears in error texts
    /// (`label` for `label_format`).
    pub fn parse_named(name: &str, source: &str) -> Result<Template, TemplateError> {
        let tree = parse::parse(name, source).map_err(TemplateError)?;
        Ok(Template {
            source: source.to_string(),
            name: name.to_string(),
            tree: Arc::new(tree),
            regexes: Arc::default(),
        })
    }

    /// Appends the output for one entry to `out`. On error, `out` is left
    /// as it was.
    pub fn execute(&self, data: &dyn TemplateData, out: &mut String) -> Result<(), TemplateError> {
        let start = out.len();
        let r = exec::Exec::new(
            &self.tree,
            &self.name,
            &self.source,
            data,
            &self.regexes,
            out,
        )
        .run();
        if let Err(e) = r {
            out.truncate(start);
            return Err(TemplateError(e));
        }
        Ok(())
    }

    /// The template's source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Label names the template reads as `.name` fields (Loki's
    /// `RequiredLabelNames`), sorted and deduplicated.
    pub fn field_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        parse::collect_fields(&self.tree.root, &mut out);
        for body in self.tree.defines.values() {
            parse::collect_fields(body, &mut out);
        }
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests;
