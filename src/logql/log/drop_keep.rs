//! `| drop` and `| keep`: remove labels by name or by `name="v"`/`=~`
//! matchers, from whichever category holds them. `keep` never removes
//! `__error__`/`__error_details__`.

use super::label_filter::StrMatcher;
use super::{Lbs, PipelineError};
use crate::logql::syntax::ast::LabelSelection;

#[derive(Debug)]
struct Sel {
    name: String,
    m: Option<StrMatcher>,
}

fn compile(sel: &[LabelSelection]) -> Result<Vec<Sel>, PipelineError> {
    sel.iter()
        .map(|s| {
            Ok(Sel {
                name: s.name.clone(),
                m: s.matcher
                    .as_ref()
                    .map(|m| StrMatcher::new(m, true))
                    .transpose()?,
            })
        })
        .collect()
}

/// `| drop a, b="v"`
#[derive(Debug)]
pub struct Drop {
    sel: Vec<Sel>,
}

impl Drop {
    pub fn new(sel: &[LabelSelection]) -> Result<Drop, PipelineError> {
        Ok(Drop { sel: compile(sel)? })
    }

    pub(crate) fn process(&self, lbs: &mut Lbs) {
        for s in &self.sel {
            let Some(v) = lbs.get(&s.name) else { continue };
            if s.m.as_ref().is_none_or(|m| m.matches(v)) {
                lbs.del(&s.name);
            }
        }
    }
}

/// `| keep a, b="v"`
#[derive(Debug)]
pub struct Keep {
    sel: Vec<Sel>,
}

impl Keep {
    pub fn new(sel: &[LabelSelection]) -> Result<Keep, PipelineError> {
        Ok(Keep { sel: compile(sel)? })
    }

    pub(crate) fn process(&self, lbs: &mut Lbs) {
        lbs.retain(|k, v| {
            self.sel
                .iter()
                .any(|s| s.name == k && s.m.as_ref().is_none_or(|m| m.matches(v)))
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::logql::log::testutil::{pipeline, run, run_md};
    use crate::logql::syntax::ast::{LabelSelection, MatchOp, Matcher, ParserStage, Stage};

    fn name(n: &str) -> LabelSelection {
        LabelSelection {
            name: n.into(),
            matcher: None,
        }
    }
    fn m(n: &str, op: MatchOp, v: &str) -> LabelSelection {
        LabelSelection {
            name: n.into(),
            matcher: Some(Matcher {
                name: n.into(),
                op,
                value: v.into(),
            }),
        }
    }
    fn json() -> Stage {
        Stage::Parser(ParserStage::Json(vec![]))
    }
    const LINE: &str = r#"{"level": "error", "event": "order_processing_failed", "order_id": 4411, "trace_id": "abc"}"#;

    #[test]
    fn drop_by_name_and_matcher() {
        let p = pipeline(vec![
            json(),
            Stage::Drop(vec![
                name("trace_id"),
                m("level", MatchOp::Eq, "info"),
                name("app"),
            ]),
        ]);
        let (_, l) = run(&p, LINE).unwrap();
        assert_eq!(
            l,
            r#"{event="order_processing_failed", level="error", order_id="4411"}"#
        );
        let p = pipeline(vec![
            json(),
            Stage::Drop(vec![
                m("level", MatchOp::Re, "err.*"),
                m("event", MatchOp::Nre, "order_.*"),
            ]),
        ]);
        let (_, l) = run(&p, LINE).unwrap();
        assert_eq!(
            l,
            r#"{app="svc", event="order_processing_failed", order_id="4411", trace_id="abc"}"#
        );
    }

    #[test]
    fn drop_matcher_dot_matches_newline() {
        let p = pipeline(vec![
            json(),
            Stage::Drop(vec![m("msg", MatchOp::Re, "a.b")]),
        ]);
        assert_eq!(run(&p, r#"{"msg": "a\nb"}"#).unwrap().1, r#"{app="svc"}"#);
    }

    #[test]
    fn drop_errors() {
        let p = pipeline(vec![
            json(),
            Stage::Drop(vec![name("__error__"), name("__error_details__")]),
        ]);
        let (_, l) = run(&p, "not json").unwrap();
        assert_eq!(l, r#"{app="svc"}"#);
    }

    #[test]
    fn keep_names_matchers_and_errors() {
        let p = pipeline(vec![
            json(),
            Stage::Keep(vec![
                name("level"),
                m("event", MatchOp::Eq, "nope"),
                name("app"),
            ]),
        ]);
        let (_, l) = run(&p, LINE).unwrap();
        assert_eq!(l, r#"{app="svc", level="error"}"#);
        let p = pipeline(vec![json(), Stage::Keep(vec![name("level")])]);
        let (_, l) = run(&p, "{\"level\": \"x\", \"a\": tru}").unwrap();
        assert_eq!(
            l,
            r#"{__error__="JSONParserErr", __error_details__="Unknown value type", level="x"}"#
        );
        // keep applies to structured metadata too.
        let (_, l) = run_md(&p, LINE, &[("pod", "p1")]).unwrap();
        assert_eq!(l, r#"{level="error"}"#);
    }
}
