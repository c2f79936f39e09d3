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
    fn for_each_label(&self, f: &mut dyn FnMut(&str, &str)) {
        self.lbs.for_each(f)
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
            tmpl: Template::parse(src).map_err(|e| PipelineError(format!("invalid line template: {e}")))?,
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
                    tmpl: Template::parse_named("label", template)
                        .map_err(|e| PipelineError(format!("invalid template for label '{dst}': {e}")))?,
                },
            });
        }
        Ok(LabelFormat { ops })
    }

    pub(crate) fn process(&self, ts: i64, line: &[u8], lbs: &mut Lbs, text: &mut String) {
        for op in &self.ops {
            match op {
                Op::Rename { dst, src } => {
                    // As Loki: the value moves to `dst` as a parsed label and
                    // `src` is removed from whichever category held it.
                    if dst == src || lbs.get(src).is_none() {
                        continue;
                    }
                    text.clear();
                    text.push_str(lbs.get(src).unwrap_or(""));
                    lbs.set_parsed(dst, text);
                    lbs.del(src);
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
    fn label_format_rename_drops_source_and_sets_a_parsed_label() {
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
        // As Loki, a formatted label is parsed and shadows the stream label.
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

#[cfg(test)]
mod engine_tests {
    //! line_format and label_format through the real template engine.
    use crate::labels::Labels;
    use crate::logql::log::Pipeline;
    use crate::logql::syntax::{ast::Expr, parse_expr};

    fn run(q: &str, line: &str) -> (String, Labels) {
        let Ok(Expr::Log(l)) = parse_expr(q) else { panic!("{q}") };
        let p = Pipeline::new(&l.pipeline).unwrap();
        let mut sp = p.for_stream(&Labels::from_pairs([("app", "shop")]));
        let (out, rl) = sp.process(5_000_000_000, line.as_bytes(), &[]).expect("kept");
        (String::from_utf8(out.to_vec()).unwrap(), rl.merged())
    }

    #[test]
    fn templates_see_every_label_and_the_line() {
        let line = r#"{"level":"error","duration_ms":1500,"user":"ana"}"#;
        let (out, _) = run(r#"{app="shop"} | json | line_format "{{ .level | ToUpper }} {{ div .duration_ms 1000 }}s {{ .app }} {{ len . }}""#, line);
        // app, level, duration_ms, user: four labels.
        assert_eq!(out, "ERROR 1s shop 4");
        let (out, _) = run(r#"{app="shop"} | line_format "{{ __line__ | len }}""#, "abcd");
        assert_eq!(out, "4");
        let (_, l) = run(r#"{app="shop"} | json | label_format who="{{ .user | title }}", lvl=level"#, line);
        assert_eq!(l.get("who"), Some("Ana"));
        assert_eq!(l.get("lvl"), Some("error"));
        assert_eq!(l.get("level"), None, "rename drops the source");
    }

    #[test]
    fn template_errors_read_like_lokis() {
        let Ok(Expr::Log(l)) = parse_expr(r##"{app="shop"} | line_format "{{ .a ""##) else { panic!() };
        let e = Pipeline::new(&l.pipeline).unwrap_err().to_string();
        assert!(e.starts_with("invalid line template: template: line:"), "{e}");
        let Ok(Expr::Log(l)) = parse_expr(r#"{app="shop"} | label_format x="{{ nosuchfn }}""#) else { panic!() };
        let e = Pipeline::new(&l.pipeline).unwrap_err().to_string();
        assert!(e.starts_with("invalid template for label 'x': template: label:"), "{e}");
    }
}
