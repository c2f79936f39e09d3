//! Ingestion endpoints: `POST /loki/api/v1/push` (and `/api/prom/push`) and
//! `POST /otlp/v1/logs`. Decoding, validation and storage happen in
//! `ingest`, on a blocking thread (the append waits for the WAL's fsync).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;

use crate::api::error::ApiError;
use crate::api::AppState;
use crate::ingest::PushError;
use crate::proto::otlp::collector::{ExportLogsPartialSuccess, ExportLogsServiceResponse};

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// `POST /loki/api/v1/push`: 204 when everything is in the WAL.
pub async fn push(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = st.single_tenant(&headers)?;
    let ct = header_str(&headers, header::CONTENT_TYPE).map(str::to_string);
    let ce = header_str(&headers, header::CONTENT_ENCODING).map(str::to_string);
    let st2 = st.clone();
    tokio::task::spawn_blocking(move || {
        st2.ingester
            .push(&tenant, ct.as_deref(), ce.as_deref(), &body)
    })
    .await??;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// google.rpc.Status, the body of OTLP/HTTP error responses.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn otlp_error(status: u16, message: String, json: bool) -> Response {
    // Collectors retry 429/502/503/504; Loki rewrites 500 to 503 for that.
    let status = if status == 500 { 503 } else { status };
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let grpc_code = match status {
        400 | 413 | 422 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        429 => 8,             // RESOURCE_EXHAUSTED
        _ => 14,              // UNAVAILABLE
    };
    let (ct, body) = if json {
        (
            "application/json",
            serde_json::json!({"code": grpc_code, "message": message})
                .to_string()
                .into_bytes(),
        )
    } else {
        (
            "application/x-protobuf",
            RpcStatus {
                code: grpc_code,
                message,
            }
            .encode_to_vec(),
        )
    };
    let mut r = (code, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    if status == 429 || status == 503 {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

/// `POST /otlp/v1/logs`: OTLP/HTTP, protobuf or JSON, answered in the
/// request's encoding with an `ExportLogsServiceResponse`.
pub async fn otlp_logs(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let ct = header_str(&headers, header::CONTENT_TYPE).map(str::to_string);
    let json = ct
        .as_deref()
        .is_some_and(|c| c.trim_start().starts_with("application/json"));
    // A body over the limit is answered in the request's encoding too.
    let max = st.config.ingest.max_recv_msg_size;
    let body = match body {
        Ok(b) if max == 0 || b.len() <= max => b,
        Ok(b) => {
            let e = PushError::too_large(format!(
                "message size too large than max ({} vs {max})",
                b.len()
            ));
            return otlp_error(e.status, e.message, json);
        }
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let e = PushError::too_large(format!("message size too large than max (> {max})"));
            return otlp_error(e.status, e.message, json);
        }
        Err(e) => return otlp_error(e.status().as_u16(), e.body_text(), json),
    };
    let tenant = match st.single_tenant(&headers) {
        Ok(t) => t,
        Err(e) => return otlp_error(e.status, e.message, json),
    };
    let ce = header_str(&headers, header::CONTENT_ENCODING).map(str::to_string);
    let st2 = st.clone();
    let res = tokio::task::spawn_blocking(move || {
        let req = crate::ingest::decode_otlp_http(
            ct.as_deref(),
            ce.as_deref(),
            &body,
            st2.config.ingest.max_decompressed_size,
        )?;
        st2.ingester.push_otlp(&tenant, req)
    })
    .await;
    let summary = match res {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return otlp_error(e.status, e.message, json),
        Err(e) => return otlp_error(500, e.to_string(), json),
    };
    let partial = (summary.rejected > 0).then(|| ExportLogsPartialSuccess {
        rejected_log_records: summary.rejected as i64,
        error_message: summary.message.clone(),
    });
    let (ct, body) = if json {
        let v = match &partial {
            Some(p) => {
                serde_json::json!({"partialSuccess": {"rejectedLogRecords": p.rejected_log_records.to_string(), "errorMessage": p.error_message}})
            }
            None => serde_json::json!({}),
        };
        ("application/json", v.to_string().into_bytes())
    } else {
        (
            "application/x-protobuf",
            ExportLogsServiceResponse {
                partial_success: partial,
            }
            .encode_to_vec(),
        )
    };
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}
