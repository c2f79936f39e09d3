//! `line_format` and `label_format`: templates run against the entry's
//! labels, line and timestamp. A rewritten line goes to the stream
//! pipeline's buffer; template execution errors set
//! `__error__=TemplateFormatErr` and leave the line or label unchanged.

use std::borrow::Cow;

use super::template::{Template, TemplateData};
use super::{Lbs, PipelineError, ERR_TEMPLATE_FORMAT};
use crate::logql::syntax::ast::LabelFmt;

/// What templates see for one entry.
struct Data<'a> {
    lbs: &'a Lbs,
    line: Cow<'a, str>,
    ts: i64,
}

impl TemplateData for Data<'_> {
    fn label(&self, name: &str) -> Option<&str> {
        self.lbs.get(name)
    }
    fn line(&self) -> &str {
        &self.line
    }
    fn timestamp_ns(&self) -> i64 {
        self.ts
    }
}

/// `| line_format "..."`
#[derive(Debug)]
pub struct LineFormat {
    tmpl: Template,
}

impl LineFormat {
    pub fn new(src: &str) -> Result<LineFormat, PipelineError> {
        Ok(LineFormat {
            tmpl: Template::parse(src).map_err(|e| PipelineError(e.to_string()))?,
        })
    }

    /// Writes the new line to `out`; false (and an error label) when the
    /// template failed, in which case the line is unchanged.
    pub(crate) fn execute(&self, ts: i64, line: &[u8], lbs: &mut Lbs, out: &mut String) -> bool {
        let r = {
            let data = Data {
                lbs,
                line: String::from_utf8_lossy(line),
                ts,
            };
            self.tmpl.execute(&data, out)
        };
        match r {
            Ok(()) => true,
            Err(e) => {
                lbs.set_err(ERR_TEMPLATE_FORMAT);
                lbs.set_err_details(&e.to_string());
                false
            }
        }
    }
}

#[derive(Debug)]
enum Op {
    Rename { dst: String, src: String },
    Template { dst: String, tmpl: Template },
}

/// `| label_format dst=src, dst="{{...}}"`
#[derive(Debug)]
pub struct LabelFormat {
    ops: Vec<Op>,
}

impl LabelFormat {
    pub fn new(f: &[LabelFmt]) -> Result<LabelFormat, PipelineError> {
        let mut ops = Vec::with_capacity(f.len());
        for (i, x) in f.iter().enumerate() {
            let dst = match x {
                LabelFmt::Rename { dst, .. } | LabelFmt::Template { dst, .. } => dst,
            };
            if f[..i].iter().any(|y| matches!(y, LabelFmt::Rename { dst: d, .. } | LabelFmt::Template { dst: d, .. } if d == dst)) {
                return Err(PipelineError(format!("multiple label name '{dst}' not allowed in a single format operation")));
            }
            ops.push(match x {
                LabelFmt::Rename { dst, src } => Op::Rename {
                    dst: dst.clone(),
                    src: src.clone(),
                },
                LabelFmt::Template { dst, template } => Op::Template {
                    dst: dst.clone(),
                    tmpl: Template::parse(template).map_err(|e| PipelineError(e.to_string()))?,
                },
            });
        }
        Ok(LabelFormat { ops })
    }

    pub(crate) fn process(&self, ts: i64, line: &[u8], lbs: &mut Lbs, text: &mut String) {
        for op in &self.ops {
            match op {
                Op::Rename { dst, src } => {
                    if dst == src {
                        continue;
                    }
                    // As Loki (since 3.3): the result is a parsed label,
                    // whatever category the source had.
                    if lbs.category(src).is_none() {
                        continue;
                    }
                    let v = lbs.get(src).unwrap_or("").to_string();
                    lbs.del(src);
                    lbs.set_parsed(dst, &v);
                }
                Op::Template { dst, tmpl } => {
                    text.clear();
                    let r = {
                        let data = Data {
                            lbs,
                            line: String::from_utf8_lossy(line),
                            ts,
                        };
                        tmpl.execute(&data, text)
                    };
                    match r {
                        Ok(()) => lbs.set_parsed(dst, text),
                        Err(e) => {
                            lbs.set_err(ERR_TEMPLATE_FORMAT);
                            lbs.set_err_details(&e.to_string());
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::log::testutil::{labels, md, pipeline, run};
    use crate::logql::syntax::ast::{ParserStage, Stage};

    fn logfmt() -> Stage {
        Stage::Parser(ParserStage::Logfmt {
            strict: false,
            keep_empty: false,
            params: vec![],
        })
    }

    #[test]
    fn line_format_rewrites_into_own_buffer() {
        // Templates without actions: the output is the source text.
        let p = pipeline(vec![Stage::LineFormat("constant".into())]);
        let input = b"level=info msg=hi".to_vec();
        let mut sp = p.for_stream(&labels(r#"{app="svc"}"#));
        let (l, _) = sp.process(1, &input, &[]).unwrap();
        assert_eq!(l, b"constant");
        assert_eq!(input, b"level=info msg=hi");
        // Bytes samples measure the formatted line.
        let (v, _) = sp
            .process_sample(1, &input, &[], &crate::logql::log::SampleKind::Bytes)
            .unwrap();
        assert_eq!(v, 8.0);
    }

    #[test]
    fn label_format_rename_drops_source_and_makes_a_parsed_label() {
        let p = pipeline(vec![
            logfmt(),
            Stage::LabelFormat(vec![
                LabelFmt::Rename {
                    dst: "severity".into(),
                    src: "level".into(),
                },
                LabelFmt::Rename {
                    dst: "service".into(),
                    src: "app".into(),
                },
                LabelFmt::Rename {
                    dst: "tid".into(),
                    src: "trace_id".into(),
                },
            ]),
        ]);
        let mut sp = p.for_stream(&labels(r#"{app="svc"}"#));
        let m = md(&[("trace_id", "t-1")]);
        let (_, r) = sp.process(1, b"level=error msg=x", &m).unwrap();
        // Loki #14515: renamed labels are parsed labels.
        assert!(r.stream.is_empty());
        assert!(r.structured_metadata.is_empty());
        assert_eq!(
            r.parsed.to_string(),
            r#"{msg="x", service="svc", severity="error", tid="t-1"}"#
        );
    }

    #[test]
    fn label_format_template_keeps_others() {
        let p = pipeline(vec![
            logfmt(),
            Stage::LabelFormat(vec![LabelFmt::Template {
                dst: "kind".into(),
                template: "order".into(),
            }]),
        ]);
        let (_, l) = run(&p, "level=error").unwrap();
        assert_eq!(l, r#"{app="svc", kind="order", level="error"}"#);
        // Overwriting a stream label through a template.
        let p = pipeline(vec![Stage::LabelFormat(vec![LabelFmt::Template {
            dst: "app".into(),
            template: "x".into(),
        }])]);
        let mut sp = p.for_stream(&labels(r#"{app="svc"}"#));
        let (_, r) = sp.process(1, b"", &[]).unwrap();
        assert!(r.stream.is_empty());
        assert_eq!(r.parsed.to_string(), r#"{app="x"}"#);
        assert!(LabelFormat::new(&[
            LabelFmt::Rename {
                dst: "a".into(),
                src: "b".into()
            },
            LabelFmt::Template {
                dst: "a".into(),
                template: "c".into()
            },
        ])
        .is_err());
    }
}
