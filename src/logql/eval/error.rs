//! Errors of query evaluation, each with the HTTP status Loki gives it.

use crate::logql::syntax::ParseError;
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The query text does not parse (400).
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// A pipeline stage could not be compiled, or a pipeline error reached a
    /// metric aggregation (400), e.g. `pipeline error: 'JSONParserErr' ...`.
    #[error("{0}")]
    Pipeline(String),
    /// A query limit was exceeded (400), with Loki's message.
    #[error("{0}")]
    Limit(String),
    /// A request that is valid LogQL but not allowed here (400), e.g. a log
    /// query on the instant endpoint.
    #[error("{0}")]
    BadRequest(String),
    /// The query ran past its timeout (504).
    #[error("request timed out, decrease the duration of the request or add more label matchers (prefer exact match over regex match) to reduce the amount of data processed")]
    Timeout,
    /// The client went away (499).
    #[error("the request was cancelled by the client")]
    Canceled,
    /// Storage failed (500).
    #[error("{0}")]
    Storage(#[from] StorageError),
}

impl EvalError {
    /// The HTTP status Loki answers with.
    pub fn status(&self) -> u16 {
        match self {
            EvalError::Parse(_)
            | EvalError::Pipeline(_)
            | EvalError::Limit(_)
            | EvalError::BadRequest(_) => 400,
            EvalError::Timeout => 504,
            EvalError::Canceled => 499,
            EvalError::Storage(_) => 500,
        }
    }
}
