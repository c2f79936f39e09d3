//! Query parameters and result values, as the HTTP layer encodes them.

use crate::labels::Labels;
use crate::storage::Direction;

/// Parameters of one query evaluation (times in Unix ns).
#[derive(Clone, Debug)]
pub struct QueryParams {
    pub start: i64,
    pub end: i64,
    /// Step in ns; 0 for instant queries.
    pub step: i64,
    /// `interval` for log queries (ns), 0 when absent.
    pub interval: i64,
    pub limit: usize,
    pub direction: Direction,
    /// True for `/loki/api/v1/query`.
    pub instant: bool,
}

/// One entry of a log query result with its categorized labels.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultEntry {
    pub ts: i64,
    pub line: String,
    pub stream: Labels,
    pub structured_metadata: Labels,
    pub parsed: Labels,
}

/// A series of a matrix; timestamps in ms.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub metric: Labels,
    pub points: Vec<(i64, f64)>,
}

/// A sample of a vector; timestamp in ms.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub metric: Labels,
    pub ts_ms: i64,
    pub value: f64,
}

/// The result of a query.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryResult {
    /// Log query: entries in `direction` order, at most `limit`.
    Streams(Vec<ResultEntry>),
    Matrix(Vec<Series>),
    Vector(Vec<Sample>),
    /// (timestamp ms, value)
    Scalar(i64, f64),
}
