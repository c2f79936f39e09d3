//! Functions of metric queries: `vector(s)` and `label_replace`.

use regex::Regex;

use crate::labels::Labels;
use crate::logql::eval::EvalError;
use crate::logql::syntax::ast::LabelReplace;
use crate::logql::syntax::ParseError;

use super::{EvalCtx, Grid, Steps};

/// `vector(s)`: one series with no labels and the value `s` at every step.
pub fn vector_of(steps: Steps, v: f64) -> Grid {
    let mut g = Grid::new(steps.n);
    let row = g.row_mut(&Labels::new());
    for slot in row.vals.iter_mut() {
        *slot = Some(v);
    }
    g
}

/// Compiles `label_replace`'s regex, fully anchored as Prometheus does.
pub fn compile_anchored(re: &str) -> Result<Regex, EvalError> {
    Regex::new(&format!("^(?:{re})$")).map_err(|e| {
        EvalError::Parse(ParseError {
            line: 0,
            col: 0,
            msg: format!("invalid regex in label_replace: {e}"),
        })
    })
}

/// The labels of `labels` after `label_replace(_, dst, replacement, src,
/// regex)`: unchanged when the regex does not match the source value (a
/// missing label is the empty string), otherwise `dst` set to the expanded
/// replacement (`$1`, `${name}`), or removed when that is empty.
pub fn replace_labels(labels: &Labels, lr: &LabelReplace, re: &Regex) -> Labels {
    let src = labels.get(&lr.src).unwrap_or("");
    let Some(caps) = re.captures(src) else {
        return labels.clone();
    };
    let mut res = String::new();
    caps.expand(&lr.replacement, &mut res);
    let mut out = labels.clone();
    out.remove(&lr.dst);
    if !res.is_empty() {
        out.insert(lr.dst.clone(), res);
    }
    out
}

/// Evaluates `label_replace` over every step.
pub fn label_replace(ctx: &EvalCtx<'_>, lr: &LabelReplace) -> Result<Grid, EvalError> {
    let re = compile_anchored(&lr.regex)?;
    let input = ctx.eval(&lr.expr)?;
    let mut out = Grid::new(input.n);
    for row in &input.rows {
        let new = replace_labels(&row.labels, lr, &re);
        for (i, v) in row.vals.iter().enumerate() {
            if let Some(v) = v {
                out.set(&new, i, *v);
            }
        }
    }
    Ok(out)
}
