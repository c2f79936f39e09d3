//! miniloki: Grafana Loki's job in one process on one machine.
//!
//! The modules follow the data's path:
//!
//! * [`api`] — HTTP (axum) and OTLP/gRPC (tonic) endpoints: Loki's paths,
//!   parameters, response shapes, status codes and error texts.
//! * [`ingest`] — push decoding, validation and limits, OTLP mapping,
//!   `service_name` and `detected_level` discovery.
//! * [`storage`] — WAL, in-memory heads, compressed chunks, the per-block
//!   label index, flushing and retention, behind a narrow interface.
//! * [`logql`] — the LogQL parser and AST, the per-line pipeline, and the
//!   evaluation of log and metric queries.
//! * [`labels`] — label sets, shared by every layer.
//! * [`limits`] — per-tenant limits: defaults and overrides, generic over
//!   the ingestion and query limit sets.
//! * [`config`] — flags, environment variables and the config file.
//! * [`fuzz`] — in-repo fuzzing of every decoder of untrusted bytes.
//! * [`proto`] — types generated from `schema/*.proto`.
//!
//! Dependencies point one way: `api` → (`ingest`, `logql`) → `storage`.

pub mod api;
pub mod config;
pub mod demo;
pub mod fuzz;
pub mod ingest;
pub mod labels;
pub mod limits;
pub mod loadgen;
pub mod logql;
pub mod proto;
pub mod soak;
pub mod storage;
pub mod units;
