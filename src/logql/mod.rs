//! LogQL: syntax (parsing and printing), the per-line pipeline, and
//! evaluation of log and metric queries.

pub mod analysis;
pub mod eval;
pub mod log;
pub mod syntax;
