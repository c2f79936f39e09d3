//! LogQL evaluation: runs parsed queries against storage.
//!
//! * `engine` — the entry point: parse, limits, dispatch.
//! * `logs` — log queries: pipeline per stream, first `limit` entries overall.
//! * `metric` — range and vector aggregations, binary operators, over a
//!   [`SampleSource`]; `store_source` is that source over storage.
//! * `value` — query parameters and result values; `error` — [`EvalError`].
//! * `tenants` — multi-tenant reads (`a|b`) with the `__tenant_id__` label.
//! * `context` — deadline, cancellation and work counters of one query.
//!
//! This room knows the AST, the pipeline and storage's narrow read interface;
//! it knows nothing of file layouts or HTTP.

pub mod context;
pub mod engine;
pub mod error;
pub mod logs;
pub mod metric;
pub mod selector;
pub mod source;
pub mod store_source;
pub mod tenants;
pub mod value;

pub use context::{QueryContext, QueryStats};
pub use engine::{Engine, QueryLimits};
pub use error::EvalError;
pub use source::SampleSource;
pub use value::*;
