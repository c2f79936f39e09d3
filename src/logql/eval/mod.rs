//! LogQL evaluation: runs parsed queries against storage.
//!
//! `value` holds the result types (streams, matrix, vector, scalar) shared
//! with the HTTP layer. Log queries select streams through storage's
//! matchers, run the pipeline per stream and merge entries by time up to the
//! limit. Metric queries feed samples from a [`SampleSource`] into step-wise
//! range aggregations, then vector aggregations and binary operators.
//!
//! This room knows the AST, the pipeline and storage's narrow read interface;
//! it knows nothing of file layouts or HTTP.

pub mod error;
pub mod metric;
pub mod source;
pub mod value;

pub use error::EvalError;
pub use source::SampleSource;
pub use value::*;
