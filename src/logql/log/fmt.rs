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
            tmpl: Template::parse(src)
                .map_err(|e| PipelineError(format!("invalid line template: {e}")))?,
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

/// Templates per `label_format` stage whose outputs fit without allocating.
const MAX_SNAPSHOT: usize = 16;

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
                    tmpl: Template::parse_named("label", template).map_err(|e| {
                        PipelineError(format!("invalid template for label '{dst}': {e}"))
                    })?,
                },
            });
        }
        Ok(LabelFormat { ops })
    }

    /// Runs the operations in order. As in Loki, every template of one
    /// stage sees the labels as they were when the stage's first template
    /// ran, so `a="x", b="{{.a}}"` gives `b` the old `a`; renames apply in
    /// order. The outputs of the templates are therefore all computed at
    /// the first one, into `text` (ends kept in a small array; a stage with
    /// more than [`MAX_SNAPSHOT`] templates allocates).
    pub(crate) fn process(&self, ts: i64, line: &[u8], lbs: &mut Lbs, text: &mut String) {
        // One end offset per template in `text`; `usize::MAX` marks an
        // execution error.
        let mut ends_small = [0usize; MAX_SNAPSHOT];
        let mut ends_big: Vec<usize> = Vec::new();
        let mut errors: Vec<(usize, String)> = Vec::new();
        let mut evaluated = false;
        let mut k = 0usize; // index of the current template
        for (i, op) in self.ops.iter().enumerate() {
            match op {
                Op::Rename { dst, src } => {
                    if lbs.get(src).is_none() {
                        continue;
                    }
                    if dst == src {
                        // Loki sets the label, then deletes the source: the
                        // same name, so `label_format a=a` removes `a`.
                        lbs.del(src);
                        continue;
                    }
                    // As Loki (since 3.3): the result is a parsed label,
                    // whatever category the source had.
                    let v = lbs.get(src).unwrap_or("").to_string();
                    lbs.del(src);
                    lbs.set_parsed(dst, &v);
                }
                Op::Template { dst, .. } => {
                    if !evaluated {
                        evaluated = true;
                        text.clear();
                        let data = Data {
                            lbs,
                            line: String::from_utf8_lossy(line),
                            ts,
                        };
                        let rest = self.ops[i..].iter().filter_map(|o| match o {
                            Op::Template { tmpl, .. } => Some(tmpl),
                            Op::Rename { .. } => None,
                        });
                        for (j, tmpl) in rest.enumerate() {
                            let before = text.len();
                            let end = match tmpl.execute(&data, text) {
                                Ok(()) => text.len(),
                                Err(e) => {
                                    // Drop any partial output.
                                    text.truncate(before);
                                    errors.push((j, e.to_string()));
                                    usize::MAX
                                }
                            };
                            match ends_small.get_mut(j) {
                                Some(slot) => *slot = end,
                                None => ends_big.push(end),
                            }
                        }
                    }
                    let end_of = |j: usize| -> usize {
                        ends_small
                            .get(j)
                            .copied()
                            .or_else(|| ends_big.get(j - MAX_SNAPSHOT).copied())
                            .unwrap_or(usize::MAX)
                    };
                    let end = end_of(k);
                    if end == usize::MAX {
                        let msg = errors
                            .iter()
                            .find(|(j, _)| *j == k)
                            .map(|(_, m)| m.as_str())
                            .unwrap_or("");
                        lbs.set_err(ERR_TEMPLATE_FORMAT);
                        lbs.set_err_details(msg);
                    } else {
                        // The start is the end of the last successful
                        // template before this one.
                        let start = (0..k)
                            .rev()
                            .map(end_of)
                            .find(|e| *e != usize::MAX)
                            .unwrap_or(0);
                        if let Some(v) = text.get(start..end) {
                            lbs.set_parsed(dst, v);
                        }
                    }
                    k += 1;
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

    #[test]
    fn label_format_templates_see_labels_as_of_the_first_template() {
        // Loki builds the template data once per stage, at its first
        // template: `b` sees the old `a`, and neither `r` (renamed after
        // that) nor the loss of `level`.
        let p = pipeline(vec![
            logfmt(),
            Stage::LabelFormat(vec![
                LabelFmt::Template {
                    dst: "a".into(),
                    template: "x".into(),
                },
                LabelFmt::Rename {
                    dst: "r".into(),
                    src: "level".into(),
                },
                LabelFmt::Template {
                    dst: "b".into(),
                    template: "{{.a}}|{{.r}}|{{.level}}".into(),
                },
            ]),
        ]);
        let (_, l) = run(&p, "level=error a=orig").unwrap();
        assert_eq!(l, r#"{a="x", app="svc", b="orig||error", r="error"}"#);
        // A rename before the first template is seen by it.
        let p = pipeline(vec![
            logfmt(),
            Stage::LabelFormat(vec![
                LabelFmt::Rename {
                    dst: "r".into(),
                    src: "level".into(),
                },
                LabelFmt::Template {
                    dst: "b".into(),
                    template: "{{.r}}-{{.level}}".into(),
                },
            ]),
        ]);
        let (_, l) = run(&p, "level=warn").unwrap();
        assert_eq!(l, r#"{app="svc", b="warn-", r="warn"}"#);
    }
}

#[cfg(test)]
mod engine_tests {
    //! line_format and label_format through the real template engine.
    use crate::labels::Labels;
    use crate::logql::log::Pipeline;
    use crate::logql::syntax::{ast::Expr, parse_expr};

    fn run(q: &str, line: &str) -> (String, Labels) {
        let Ok(Expr::Log(l)) = parse_expr(q) else {
            panic!("{q}")
        };
        let p = Pipeline::new(&l.pipeline).unwrap();
        let mut sp = p.for_stream(&Labels::from_pairs([("app", "shop")]));
        let (out, rl) = sp
            .process(5_000_000_000, line.as_bytes(), &[])
            .expect("kept");
        (String::from_utf8(out.to_vec()).unwrap(), rl.merged())
    }

    #[test]
    fn templates_see_every_label_and_the_line() {
        let line = r#"{"level":"error","duration_ms":1500,"user":"ana"}"#;
        let (out, _) = run(
            r#"{app="shop"} | json | line_format "{{ .level | ToUpper }} {{ div .duration_ms 1000 }}s {{ .app }} {{ len . }}""#,
            line,
        );
        // app, level, duration_ms, user: four labels.
        assert_eq!(out, "ERROR 1s shop 4");
        let (out, _) = run(
            r#"{app="shop"} | line_format "{{ __line__ | len }}""#,
            "abcd",
        );
        assert_eq!(out, "4");
        let (_, l) = run(
            r#"{app="shop"} | json | label_format who="{{ .user | title }}", lvl=level"#,
            line,
        );
        assert_eq!(l.get("who"), Some("Ana"));
        assert_eq!(l.get("lvl"), Some("error"));
        assert_eq!(l.get("level"), None, "rename drops the source");
        // Loki sets `level` and then deletes the source, the same label.
        let (_, l) = run(r#"{app="shop"} | json | label_format level=level"#, line);
        assert_eq!(
            l.get("level"),
            None,
            "a rename onto itself removes the label"
        );
        assert_eq!(l.get("user"), Some("ana"));
    }

    #[test]
    fn template_errors_read_like_lokis() {
        let Ok(Expr::Log(l)) = parse_expr(r##"{app="shop"} | line_format "{{ .a ""##) else {
            panic!()
        };
        let e = Pipeline::new(&l.pipeline).unwrap_err().to_string();
        assert!(
            e.starts_with("invalid line template: template: line:"),
            "{e}"
        );
        let Ok(Expr::Log(l)) = parse_expr(r#"{app="shop"} | label_format x="{{ nosuchfn }}""#)
        else {
            panic!()
        };
        let e = Pipeline::new(&l.pipeline).unwrap_err().to_string();
        assert!(
            e.starts_with("invalid template for label 'x': template: label:"),
            "{e}"
        );
    }
}
