//! OTLP/gRPC: `opentelemetry.proto.collector.logs.v1.LogsService/Export`
//! on its own listener (default 127.0.0.1:4317), gzip accepted. Same
//! ingestion and durability as the HTTP endpoints.

use std::sync::Arc;

use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use crate::api::AppState;
use crate::proto::otlp::collector::logs_service_server::{LogsService, LogsServiceServer};
use crate::proto::otlp::collector::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};

pub struct OtlpGrpc {
    pub state: Arc<AppState>,
}

fn status_for(code: u16, msg: String) -> Status {
    match code {
        400 | 413 | 422 => Status::invalid_argument(msg),
        401 => Status::unauthenticated(msg),
        403 => Status::permission_denied(msg),
        429 => Status::resource_exhausted(msg),
        _ => Status::unavailable(msg),
    }
}

#[tonic::async_trait]
impl LogsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let md = request.metadata();
        let org = md.get("x-scope-orgid").and_then(|v| v.to_str().ok());
        let authz = md.get("authorization").and_then(|v| v.to_str().ok());
        let org = self
            .state
            .authorize(authz, org, crate::api::auth::Access::Write)
            .map_err(|e| status_for(e.status, e.message))?;
        let mut headers = axum::http::HeaderMap::new();
        if let Some(hv) = org.and_then(|v| axum::http::HeaderValue::from_str(&v).ok()) {
            headers.insert("x-scope-orgid", hv);
        }
        let tenant = self
            .state
            .single_tenant(&headers)
            .map_err(|e| status_for(e.status, e.message))?;
        let st = self.state.clone();
        let req = request.into_inner();
        let summary = tokio::task::spawn_blocking(move || st.ingester.push_otlp(&tenant, req))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| status_for(e.status, e.message))?;
        let partial_success = (summary.rejected > 0).then_some(ExportLogsPartialSuccess {
            rejected_log_records: summary.rejected as i64,
            error_message: summary.message,
        });
        Ok(Response::new(ExportLogsServiceResponse { partial_success }))
    }
}

/// The tonic service with gzip and the push size limit
/// (`[ingest] max_recv_msg_size`, as for OTLP/HTTP; 0 = unlimited).
pub fn service(state: Arc<AppState>) -> LogsServiceServer<OtlpGrpc> {
    let max = match state.config.ingest.max_recv_msg_size {
        0 => usize::MAX,
        n => n,
    };
    LogsServiceServer::new(OtlpGrpc { state })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max)
}
