//! Sample extraction for `| unwrap`: the label's value as f64, or through
//! `duration()`/`duration_seconds()` (seconds) or `bytes()`. The unwrapped
//! label is removed; a failed conversion keeps the sample with value 0 and
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

/// Extracts the sample; `None` when a post filter drops the entry.
pub(crate) fn unwrap(u: &Unwrap, post: &[LabelFilter], lbs: &mut Lbs) -> Option<f64> {
    let raw = lbs.get(&u.label).unwrap_or("");
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
