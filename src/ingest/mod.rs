//! Ingestion: from request bytes to validated streams handed to storage.
//!
//! This room owns push decoding (protobuf + snappy, JSON, gzip/deflate),
//! Loki's validation rules and their exact error texts, ingestion limits,
//! `service_name` discovery, `detected_level` detection, and the OTLP
//! mapping of resources, scopes and log records onto streams. It calls
//! storage through `Store::append` only.
//!
//! (Placeholder with the agreed API until the ingestion branch lands.)

use std::sync::Arc;

use crate::proto::otlp::collector::ExportLogsServiceRequest;
use crate::storage::Store;

#[derive(Clone, Debug, Default)]
pub struct IngestLimits {}

#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct OtlpConfig {}

#[derive(Debug, Default)]
pub struct IngestMetrics {}

#[derive(Debug, Clone, Default)]
pub struct PushSummary {}

#[derive(Debug, Clone, Default)]
pub struct OtlpSummary {
    pub accepted: usize,
    pub rejected: usize,
    pub message: String,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct PushError {
    pub status: u16,
    pub message: String,
}

pub struct Ingester {
    _store: Arc<Store>,
    metrics: IngestMetrics,
}

impl Ingester {
    pub fn new(store: Arc<Store>, _limits: IngestLimits, _otlp: OtlpConfig) -> Ingester {
        Ingester {
            _store: store,
            metrics: IngestMetrics::default(),
        }
    }
    pub fn push(
        &self,
        _tenant: &str,
        _ct: Option<&str>,
        _ce: Option<&str>,
        _body: &[u8],
    ) -> Result<PushSummary, PushError> {
        Ok(PushSummary::default())
    }
    pub fn push_otlp(
        &self,
        _tenant: &str,
        _req: ExportLogsServiceRequest,
    ) -> Result<OtlpSummary, PushError> {
        Ok(OtlpSummary::default())
    }
    pub fn metrics(&self) -> &IngestMetrics {
        &self.metrics
    }
}

pub fn decode_otlp_http(
    _ct: Option<&str>,
    _ce: Option<&str>,
    _body: &[u8],
    _max: usize,
) -> Result<ExportLogsServiceRequest, PushError> {
    Ok(ExportLogsServiceRequest::default())
}
