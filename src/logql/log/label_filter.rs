//! Label filters: string matchers (regex fully anchored), numbers, Go
//! durations, humanized byte sizes and `ip()`, combined with `and`/`or`.
//! A value that fails to convert keeps the line and sets
//! `__error__=LabelFilterErr` (unless an error is already set).

use super::ip::IpMatcher;
use super::{Lbs, PipelineError, ERR_LABEL_FILTER};
use crate::labels::go_quote;
use crate::logql::syntax::ast::{CmpOp, LabelFilterExpr, MatchOp, Matcher};
pub use crate::units::{parse_bytes, parse_go_duration};

/// A compiled string matcher (`=`, `!=`, `=~`, `!~`). Regexes are fully
/// anchored. As in Loki, `.` matches a newline in `drop`/`keep` matchers
/// (Prometheus matchers) but not in label filters (line-filter regexes).
#[derive(Debug)]
pub struct StrMatcher {
    op: MatchOp,
    value: String,
    re: Option<regex::Regex>,
}

impl StrMatcher {
    pub fn new(m: &Matcher, dot_nl: bool) -> Result<StrMatcher, PipelineError> {
        let flags = if dot_nl { "s" } else { "" };
        let re = match m.op {
            MatchOp::Re | MatchOp::Nre => Some(
                regex::Regex::new(&format!("^(?{flags}:{})$", m.value))
                    .map_err(|e| PipelineError(format!("error parsing regexp: {e}")))?,
            ),
            _ => None,
        };
        Ok(StrMatcher {
            op: m.op,
            value: m.value.clone(),
            re,
        })
    }

    pub fn matches(&self, v: &str) -> bool {
        match (self.op, &self.re) {
            (MatchOp::Eq, _) => v == self.value,
            (MatchOp::Neq, _) => v != self.value,
            (MatchOp::Re, Some(r)) => r.is_match(v),
            (MatchOp::Nre, Some(r)) => !r.is_match(v),
            _ => false,
        }
    }
}

/// A compiled label filter expression.
#[derive(Debug)]
pub enum LabelFilter {
    And(Box<LabelFilter>, Box<LabelFilter>),
    Or(Box<LabelFilter>, Box<LabelFilter>),
    Str {
        name: String,
        m: StrMatcher,
    },
    Number {
        name: String,
        op: CmpOp,
        value: f64,
    },
    Duration {
        name: String,
        op: CmpOp,
        value: i64,
    },
    Bytes {
        name: String,
        op: CmpOp,
        value: u64,
    },
    Ip {
        name: String,
        negate: bool,
        m: IpMatcher,
    },
}

fn cmp<T: PartialOrd>(op: CmpOp, a: T, b: T) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Neq => a != b,
        CmpOp::Gt => a > b,
        CmpOp::Gte => a >= b,
        CmpOp::Lt => a < b,
        CmpOp::Lte => a <= b,
    }
}

impl LabelFilter {
    pub fn new(e: &LabelFilterExpr) -> Result<LabelFilter, PipelineError> {
        Ok(match e {
            LabelFilterExpr::And(a, b) => {
                LabelFilter::And(Box::new(Self::new(a)?), Box::new(Self::new(b)?))
            }
            LabelFilterExpr::Or(a, b) => {
                LabelFilter::Or(Box::new(Self::new(a)?), Box::new(Self::new(b)?))
            }
            LabelFilterExpr::Paren(a) => Self::new(a)?,
            LabelFilterExpr::String(m) => LabelFilter::Str {
                name: m.name.clone(),
                m: StrMatcher::new(m, false)?,
            },
            LabelFilterExpr::Number { name, op, value } => LabelFilter::Number {
                name: name.clone(),
                op: *op,
                value: *value,
            },
            LabelFilterExpr::Duration { name, op, value } => LabelFilter::Duration {
                name: name.clone(),
                op: *op,
                value: *value,
            },
            LabelFilterExpr::Bytes { name, op, value } => LabelFilter::Bytes {
                name: name.clone(),
                op: *op,
                value: *value,
            },
            LabelFilterExpr::Ip {
                name,
                negate,
                pattern,
            } => LabelFilter::Ip {
                name: name.clone(),
                negate: *negate,
                m: IpMatcher::new(pattern)?,
            },
        })
    }

    /// True when the entry passes.
    pub(crate) fn process(&self, lbs: &mut Lbs) -> bool {
        match self {
            // As Loki's BinaryLabelFilter: `or` stops at a passing left side.
            LabelFilter::And(a, b) => a.process(lbs) && b.process(lbs),
            LabelFilter::Or(a, b) => a.process(lbs) || b.process(lbs),
            LabelFilter::Str { name, m } => m.matches(lbs.get(name).unwrap_or("")),
            LabelFilter::Number { name, op, value } => {
                let Some(v) = lbs.get(name) else { return false };
                match parse_float(v) {
                    Ok(x) => cmp(*op, x, *value),
                    Err(e) => {
                        lbs.set_err_if_none(ERR_LABEL_FILTER, &e);
                        true
                    }
                }
            }
            LabelFilter::Duration { name, op, value } => {
                let Some(v) = lbs.get(name) else { return false };
                match parse_go_duration(v) {
                    Ok(x) => cmp(*op, x, *value),
                    Err(e) => {
                        lbs.set_err_if_none(ERR_LABEL_FILTER, &e);
                        true
                    }
                }
            }
            LabelFilter::Bytes { name, op, value } => {
                let Some(v) = lbs.get(name) else { return false };
                match parse_bytes(v) {
                    Ok(x) => cmp(*op, x, *value),
                    Err(e) => {
                        lbs.set_err_if_none(ERR_LABEL_FILTER, &e);
                        true
                    }
                }
            }
            // With an error set, only string matchers filter (as Loki).
            LabelFilter::Ip { .. } if lbs.has_err() => true,
            LabelFilter::Ip { name, negate, m } => match lbs.get(name) {
                None => false,
                Some(v) => m.matches_text(v.as_bytes()) != *negate,
            },
        }
    }
}

/// Go's `strconv.ParseFloat(v, 64)`, with its error text.
pub fn parse_float(v: &str) -> Result<f64, String> {
    let ok = !v.is_empty()
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'+' | b'-'))
        && !v.starts_with("+-")
        && !v.starts_with("-+");
    match v.parse::<f64>() {
        Ok(x) if ok => Ok(x),
        _ => Err(format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            go_quote(v)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::log::testutil::{pipeline, run};
    use crate::logql::syntax::ast::{ParserStage, Stage};

    fn lf(e: LabelFilterExpr) -> Stage {
        Stage::LabelFilter(e)
    }
    fn s(name: &str, op: MatchOp, v: &str) -> LabelFilterExpr {
        LabelFilterExpr::String(Matcher {
            name: name.into(),
            op,
            value: v.into(),
        })
    }
    fn logfmt() -> Stage {
        Stage::Parser(ParserStage::Logfmt {
            strict: false,
            keep_empty: false,
            params: vec![],
        })
    }

    #[test]
    fn conversions() {
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration("250ms"), Ok(250_000_000));
        assert_eq!(parse_go_duration("1h2m"), Ok(3_720_000_000_000));
        assert_eq!(parse_go_duration("-3us"), Ok(-3000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(
            parse_go_duration("12"),
            Err("time: missing unit in duration \"12\"".into())
        );
        assert_eq!(
            parse_go_duration("3x"),
            Err("time: unknown unit \"x\" in duration \"3x\"".into())
        );
        assert_eq!(
            parse_go_duration("abc"),
            Err("time: invalid duration \"abc\"".into())
        );
        assert_eq!(parse_bytes("20MB"), Ok(20_000_000));
        assert_eq!(parse_bytes("1.5KiB"), Ok(1536));
        assert_eq!(parse_bytes("42B"), Ok(42));
        assert_eq!(parse_bytes("42"), Ok(42));
        assert_eq!(parse_bytes("1,000 kb"), Ok(1_000_000));
        assert_eq!(parse_bytes("1zz"), Err("unhandled size name: zz".into()));
        assert_eq!(parse_float("2.5e3"), Ok(2500.0));
        assert_eq!(
            parse_float("abc"),
            Err("strconv.ParseFloat: parsing \"abc\": invalid syntax".into())
        );
        assert!(parse_float("").is_err());
    }

    #[test]
    fn string_filters_are_anchored() {
        let line = "level=error msg=\"order failed\" order_id=4411";
        let p = pipeline(vec![logfmt(), lf(s("level", MatchOp::Re, "err"))]);
        assert!(run(&p, line).is_none());
        let p = pipeline(vec![logfmt(), lf(s("level", MatchOp::Re, "err.*"))]);
        assert!(run(&p, line).is_some());
        let p = pipeline(vec![logfmt(), lf(s("msg", MatchOp::Re, "order.*"))]);
        // `.` does not match a newline in label filters.
        assert!(run(&p, "msg=\"order\\nfailed\"").is_none());
        assert!(run(&p, "msg=\"order failed\"").is_some());
        let p = pipeline(vec![logfmt(), lf(s("level", MatchOp::Neq, "error"))]);
        assert!(run(&p, line).is_none());
        // A missing label is the empty string.
        let p = pipeline(vec![logfmt(), lf(s("nope", MatchOp::Eq, ""))]);
        assert!(run(&p, line).is_some());
        let p = pipeline(vec![logfmt(), lf(s("app", MatchOp::Eq, "svc"))]);
        assert!(run(&p, line).is_some());
    }

    #[test]
    fn numeric_duration_bytes_and_errors() {
        let line = "status=502 took=1.5s size=2KiB user=bob";
        let num = |op, v| {
            lf(LabelFilterExpr::Number {
                name: "status".into(),
                op,
                value: v,
            })
        };
        assert!(run(&pipeline(vec![logfmt(), num(CmpOp::Gte, 500.0)]), line).is_some());
        assert!(run(&pipeline(vec![logfmt(), num(CmpOp::Lt, 500.0)]), line).is_none());
        assert!(run(&pipeline(vec![logfmt(), num(CmpOp::Eq, 502.0)]), line).is_some());
        let dur = |op, v| {
            lf(LabelFilterExpr::Duration {
                name: "took".into(),
                op,
                value: v,
            })
        };
        assert!(run(
            &pipeline(vec![logfmt(), dur(CmpOp::Gt, 1_000_000_000)]),
            line
        )
        .is_some());
        assert!(run(
            &pipeline(vec![logfmt(), dur(CmpOp::Gt, 2_000_000_000)]),
            line
        )
        .is_none());
        let by = |op, v| {
            lf(LabelFilterExpr::Bytes {
                name: "size".into(),
                op,
                value: v,
            })
        };
        assert!(run(&pipeline(vec![logfmt(), by(CmpOp::Eq, 2048)]), line).is_some());
        assert!(run(&pipeline(vec![logfmt(), by(CmpOp::Lt, 2000)]), line).is_none());
        // Missing label: dropped.
        let p = pipeline(vec![
            logfmt(),
            lf(LabelFilterExpr::Number {
                name: "x".into(),
                op: CmpOp::Gt,
                value: 1.0,
            }),
        ]);
        assert!(run(&p, line).is_none());
        // Conversion failure: kept, with LabelFilterErr.
        let p = pipeline(vec![
            logfmt(),
            lf(LabelFilterExpr::Number {
                name: "user".into(),
                op: CmpOp::Gt,
                value: 1.0,
            }),
        ]);
        let (_, l) = run(&p, line).unwrap();
        assert_eq!(
            l,
            r#"{__error__="LabelFilterErr", __error_details__="strconv.ParseFloat: parsing \"bob\": invalid syntax", app="svc", size="2KiB", status="502", took="1.5s", user="bob"}"#
        );
        let p = pipeline(vec![
            logfmt(),
            lf(LabelFilterExpr::Duration {
                name: "user".into(),
                op: CmpOp::Gt,
                value: 1,
            }),
        ]);
        let (_, l) = run(&p, line).unwrap();
        assert!(
            l.contains(r#"__error_details__="time: invalid duration \"bob\"""#),
            "{l}"
        );
    }

    #[test]
    fn and_or_and_ip() {
        let line = "level=warn status=404 ip=10.0.3.7";
        let st = |v| {
            lf(LabelFilterExpr::Number {
                name: "status".into(),
                op: CmpOp::Eq,
                value: v,
            })
        };
        let lvl = |v: &str| s("level", MatchOp::Eq, v);
        let num = |v| LabelFilterExpr::Number {
            name: "status".into(),
            op: CmpOp::Eq,
            value: v,
        };
        let or = |a, b| LabelFilterExpr::Or(Box::new(a), Box::new(b));
        let and = |a, b| LabelFilterExpr::And(Box::new(a), Box::new(b));
        let _ = st;
        assert!(run(
            &pipeline(vec![logfmt(), lf(and(lvl("warn"), num(404.0)))]),
            line
        )
        .is_some());
        assert!(run(
            &pipeline(vec![logfmt(), lf(and(lvl("warn"), num(500.0)))]),
            line
        )
        .is_none());
        assert!(run(
            &pipeline(vec![logfmt(), lf(or(lvl("error"), num(404.0)))]),
            line
        )
        .is_some());
        assert!(run(
            &pipeline(vec![logfmt(), lf(or(lvl("error"), num(500.0)))]),
            line
        )
        .is_none());
        let ip = |neg, p: &str| {
            lf(LabelFilterExpr::Ip {
                name: "ip".into(),
                negate: neg,
                pattern: p.into(),
            })
        };
        assert!(run(&pipeline(vec![logfmt(), ip(false, "10.0.0.0/16")]), line).is_some());
        assert!(run(&pipeline(vec![logfmt(), ip(true, "10.0.0.0/16")]), line).is_none());
        assert!(run(&pipeline(vec![logfmt(), ip(false, "10.1.0.0/16")]), line).is_none());
    }

    #[test]
    fn or_short_circuits_like_loki() {
        let line = "status=502 user=bob";
        let st = LabelFilterExpr::Number {
            name: "status".into(),
            op: CmpOp::Eq,
            value: 502.0,
        };
        let user = LabelFilterExpr::Number {
            name: "user".into(),
            op: CmpOp::Gt,
            value: 1.0,
        };
        let p = pipeline(vec![
            logfmt(),
            lf(LabelFilterExpr::Or(
                Box::new(st.clone()),
                Box::new(user.clone()),
            )),
        ]);
        assert_eq!(
            run(&p, line).unwrap().1,
            r#"{app="svc", status="502", user="bob"}"#
        );
        let p = pipeline(vec![
            logfmt(),
            lf(LabelFilterExpr::Or(Box::new(user), Box::new(st))),
        ]);
        assert!(run(&p, line)
            .unwrap()
            .1
            .contains(r#"__error__="LabelFilterErr""#));
    }

    #[test]
    fn structured_metadata_without_parser() {
        // Grafana sends `| key="value"` for a structured metadata field.
        let p = pipeline(vec![lf(s("trace_id", MatchOp::Eq, "abc"))]);
        let r = crate::logql::log::testutil::run_md(&p, "hello", &[("trace_id", "abc")]);
        assert_eq!(r.unwrap().1, r#"{app="svc", trace_id="abc"}"#);
        assert!(crate::logql::log::testutil::run_md(&p, "hello", &[("trace_id", "zzz")]).is_none());
    }
}
