//! From the AST's stream selector to storage matchers.

use crate::logql::eval::EvalError;
use crate::logql::syntax::ast;
use crate::storage::Matcher;

/// Compiles a selector's matchers for storage. A bad regex is a 400, with
/// the message Loki gives for it.
pub fn storage_matchers(sel: &[ast::Matcher]) -> Result<Vec<Matcher>, EvalError> {
    sel.iter()
        .map(|m| {
            m.to_storage().map_err(|e| {
                EvalError::BadRequest(format!(
                    "parse error : invalid regular expression {:?}: {e}",
                    m.value
                ))
            })
        })
        .collect()
}
