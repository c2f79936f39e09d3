//! API errors and the one table that maps internal error kinds to HTTP
//! status codes. Loki answers errors with a plain-text body (not JSON),
//! `Content-Type: text/plain; charset=utf-8` and `X-Content-Type-Options:
//! nosniff`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::ingest::PushError;
use crate::logql::eval::EvalError;
use crate::logql::syntax::ParseError;
use crate::storage::StorageError;

/// An error answered to the client with `status` and `message`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, message)
    }
}

impl From<EvalError> for ApiError {
    fn from(e: EvalError) -> ApiError {
        ApiError::new(e.status(), e.to_string())
    }
}

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> ApiError {
        ApiError::bad_request(e.to_string())
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        match e {
            StorageError::InvalidMatcher(m) => ApiError::bad_request(m),
            StorageError::InvalidTenant(t) => {
                ApiError::bad_request(format!("invalid tenant ID: {t}"))
            }
            StorageError::ShuttingDown => ApiError::new(503, e.to_string()),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<PushError> for ApiError {
    fn from(e: PushError) -> ApiError {
        ApiError::new(e.status, e.message)
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        ApiError::internal(format!("internal error: {e}"))
    }
}

/// A plain-text response, as Loki writes errors.
pub fn text_response(status: u16, message: String) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (code, message).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut msg = self.message;
        if !msg.ends_with('\n') {
            msg.push('\n');
        }
        text_response(self.status, msg)
    }
}
