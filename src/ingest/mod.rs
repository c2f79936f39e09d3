//! Ingestion: from request bytes to validated streams handed to storage.
//!
//! This room owns push decoding (protobuf + snappy, JSON, gzip/deflate),
//! Loki's validation rules and their exact error texts, ingestion limits,
//! `service_name` discovery, `detected_level` detection, and the OTLP
//! mapping of resources, scopes and log records onto streams. It calls
//! storage through `Store::append` only.
