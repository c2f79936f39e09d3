//! Sample extraction for `| unwrap`: the label's value as f64, or through
//! `duration()`/`duration_seconds()` (seconds) or `bytes()`. The unwrapped
//! label is removed; an entry without it gives no sample; a failed conversion keeps the sample with value 0 and
//! `__error__=SampleExtractionErr`; then the post-unwrap filters run.

use super::label_filter::{parse_bytes, parse_float, parse_go_duration, LabelFilter};
use super::{Lbs, PipelineError, ERR_SAMPLE_EXTRACTION};
use crate::logql::syntax::ast::{Unwrap, UnwrapConversion};

/// Converts a label value as `unwrap` does.
pub fn convert(v: &str, conv: Option<UnwrapConversion>) -> Result<f64, String> {
    match conv {
        None => parse_float(v),
        Some(UnwrapConversion::Duration | UnwrapConversion::DurationSeconds) => {
            parse_go_duration(v).map(|ns| ns as f64 / 1e9)
        }
        Some(UnwrapConversion::Bytes) => parse_bytes(v).map(|b| b as f64),
    }
}

/// Compiles the label filters that follow an unwrap.
pub fn compile_post_filters(u: &Unwrap) -> Result<Vec<LabelFilter>, PipelineError> {
    u.post_filters.iter().map(LabelFilter::new).collect()
}

/// Extracts the sample; `None` when the label is missing or empty, or a
/// post filter drops the entry.
pub(crate) fn unwrap(u: &Unwrap, post: &[LabelFilter], lbs: &mut Lbs) -> Option<f64> {
    // As Loki (issue 6713): an entry without the label yields no sample.
    let raw = lbs.get(&u.label).filter(|v| !v.is_empty())?;
    let v = match convert(raw, u.conversion) {
        Ok(v) => v,
        Err(e) => {
            lbs.set_err(ERR_SAMPLE_EXTRACTION);
            lbs.set_err_details(&e);
            0.0
        }
    };
    lbs.del(&u.label);
    for f in post {
        if !f.process(lbs) {
            return None;
        }
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use crate::logql::log::testutil::{labels, pipeline};
    use crate::logql::log::SampleKind;
    use crate::logql::syntax::ast::{
        LabelFilterExpr, MatchOp, Matcher, ParserStage, Stage, Unwrap, UnwrapConversion,
    };

    fn logfmt() -> Stage {
        Stage::Parser(ParserStage::Logfmt {
            strict: false,
            keep_empty: false,
            params: vec![],
        })
    }
    fn uw(
        label: &str,
        conversion: Option<UnwrapConversion>,
        post: Vec<LabelFilterExpr>,
    ) -> SampleKind {
        SampleKind::Unwrap(Unwrap {
            label: label.into(),
            conversion,
            post_filters: post,
        })
    }
    fn sample(kind: &SampleKind, line: &str) -> Option<(f64, String)> {
        let p = pipeline(vec![logfmt()]);
        let mut sp = p.for_stream(&labels(r#"{app="svc"}"#));
        let (v, l) = sp.process_sample(7, line.as_bytes(), &[], kind)?;
        Some((v, l.merged().to_string()))
    }

    const LINE: &str = "status=200 duration_ms=250.5 took=1.5s size=2KiB user=bob";

    #[test]
    fn count_and_bytes() {
        assert_eq!(sample(&SampleKind::Count, LINE).unwrap().0, 1.0);
        assert_eq!(
            sample(&SampleKind::Bytes, LINE).unwrap().0,
            LINE.len() as f64
        );
    }

    #[test]
    fn unwrap_plain_and_conversions_remove_the_label() {
        let (v, l) = sample(&uw("duration_ms", None, vec![]), LINE).unwrap();
        assert_eq!(v, 250.5);
        assert_eq!(
            l,
            r#"{app="svc", size="2KiB", status="200", took="1.5s", user="bob"}"#
        );
        assert_eq!(
            sample(&uw("took", Some(UnwrapConversion::Duration), vec![]), LINE)
                .unwrap()
                .0,
            1.5
        );
        assert_eq!(
            sample(
                &uw("took", Some(UnwrapConversion::DurationSeconds), vec![]),
                LINE
            )
            .unwrap()
            .0,
            1.5
        );
        assert_eq!(
            sample(&uw("size", Some(UnwrapConversion::Bytes), vec![]), LINE)
                .unwrap()
                .0,
            2048.0
        );
    }

    #[test]
    fn unwrap_failures_keep_the_sample_with_an_error() {
        let (v, l) = sample(&uw("user", None, vec![]), LINE).unwrap();
        assert_eq!(v, 0.0);
        assert_eq!(
            l,
            r#"{__error__="SampleExtractionErr", __error_details__="strconv.ParseFloat: parsing \"bob\": invalid syntax", app="svc", duration_ms="250.5", size="2KiB", status="200", took="1.5s"}"#
        );
        // A missing or empty label gives no sample at all (Loki issue 6713).
        assert!(sample(&uw("missing", None, vec![]), "a=1").is_none());
        assert!(sample(&uw("a", None, vec![]), "a=\"\" b=1").is_none());
        let (_, l) = sample(&uw("user", Some(UnwrapConversion::Duration), vec![]), LINE).unwrap();
        assert!(
            l.contains(r#"__error_details__="time: invalid duration \"bob\"""#),
            "{l}"
        );
    }

    /// Regression: a missing or empty unwrapped label made a
    /// `SampleExtractionErr` sample (and so a failed metric query); Loki
    /// skips such lines.
    #[test]
    fn unwrap_of_a_missing_or_empty_label_skips_the_line() {
        assert!(sample(&uw("missing", None, vec![]), "a=1").is_none());
        assert!(sample(&uw("a", None, vec![]), "a= b=2").is_none());
        assert!(sample(&uw("a", Some(UnwrapConversion::Bytes), vec![]), "b=2").is_none());
        assert_eq!(sample(&uw("a", None, vec![]), "a=0").unwrap().0, 0.0);
    }

    #[test]
    fn post_filters_run_after_unwrap() {
        let no_err = LabelFilterExpr::String(Matcher {
            name: "__error__".into(),
            op: MatchOp::Eq,
            value: "".into(),
        });
        assert!(sample(&uw("user", None, vec![no_err.clone()]), LINE).is_none());
        assert_eq!(
            sample(&uw("status", None, vec![no_err]), LINE).unwrap().0,
            200.0
        );
        let st = LabelFilterExpr::String(Matcher {
            name: "user".into(),
            op: MatchOp::Eq,
            value: "alice".into(),
        });
        assert!(sample(&uw("status", None, vec![st]), LINE).is_none());
    }
}
