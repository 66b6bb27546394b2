//! The one place where the lock API's errors become HTTP statuses, Dapr error codes and gRPC
//! codes (docs/contract.md §2's table).

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::lock::{ApiError, ErrorKind, Operation};

/// Dapr's HTTP error body.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorBody<'a> {
    #[serde(rename = "errorCode")]
    pub(crate) error_code: &'a str,
    pub(crate) message: &'a str,
}

/// The HTTP status and Dapr `errorCode` of an error kind.
pub(crate) fn http_status(kind: ErrorKind) -> (StatusCode, &'static str) {
    match kind {
        ErrorKind::MalformedRequest => (StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST"),
        ErrorKind::StoreNotConfigured => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_LOCK_STORE_NOT_CONFIGURED",
        ),
        ErrorKind::StoreNotFound => (StatusCode::BAD_REQUEST, "ERR_LOCK_STORE_NOT_FOUND"),
        ErrorKind::Failed(operation) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            match operation {
                Operation::TryLock => "ERR_TRY_LOCK",
                Operation::Unlock => "ERR_UNLOCK",
                Operation::Acquire => "ERR_ACQUIRE",
                Operation::Renew => "ERR_RENEW",
                Operation::Inspect => "ERR_INSPECT",
                Operation::List => "ERR_LIST",
                Operation::ForceRelease => "ERR_FORCE_RELEASE",
                Operation::Release => "ERR_RELEASE",
            },
        ),
        ErrorKind::Unsupported => (StatusCode::BAD_REQUEST, "ERR_NOT_SUPPORTED"),
        ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "ERR_FORBIDDEN"),
        ErrorKind::TooManyWaiters => (StatusCode::TOO_MANY_REQUESTS, "ERR_TOO_MANY_WAITERS"),
        ErrorKind::Reconfigured => (
            StatusCode::SERVICE_UNAVAILABLE,
            "ERR_LOCK_STORE_RECONFIGURED",
        ),
        ErrorKind::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "ERR_SHUTTING_DOWN"),
        ErrorKind::LimitMismatch => (StatusCode::CONFLICT, "ERR_LIMIT_MISMATCH"),
        ErrorKind::ModeConflict => (StatusCode::CONFLICT, "ERR_MODE_CONFLICT"),
        ErrorKind::HoldsMismatch => (StatusCode::CONFLICT, "ERR_HOLDS_MISMATCH"),
    }
}

pub(crate) fn grpc_code(kind: ErrorKind) -> tonic::Code {
    match kind {
        ErrorKind::MalformedRequest | ErrorKind::StoreNotFound => tonic::Code::InvalidArgument,
        ErrorKind::StoreNotConfigured
        | ErrorKind::Unsupported
        | ErrorKind::LimitMismatch
        | ErrorKind::ModeConflict
        | ErrorKind::HoldsMismatch => tonic::Code::FailedPrecondition,
        ErrorKind::Failed(_) => tonic::Code::Internal,
        ErrorKind::Forbidden => tonic::Code::PermissionDenied,
        ErrorKind::TooManyWaiters => tonic::Code::ResourceExhausted,
        ErrorKind::Reconfigured => tonic::Code::Aborted,
        ErrorKind::ShuttingDown => tonic::Code::Unavailable,
    }
}

/// Row 5 as Dapr's own calls answer it: daprd's text to the letter, `lock store <store> not
/// found`, which SDKs and clients may compare whole. The core's message goes on to name the
/// stores that are loaded, which is what shows a typo; Dapr's calls leave that to the log.
pub(crate) fn as_daprd(error: ApiError, store: &str) -> ApiError {
    if error.kind != ErrorKind::StoreNotFound {
        return error;
    }
    if first_time_unknown(store) {
        tracing::warn!(
            "a Dapr call named a store that is not loaded: {}",
            error.message
        );
    }
    ApiError::new(
        ErrorKind::StoreNotFound,
        format!("lock store {store} not found"),
    )
}

/// Whether `store` is an unknown name not logged before: a client that retries a wrong name
/// in a loop would otherwise flood the log. The names are bounded, so that a client naming a
/// new store at every call can't grow them without end; past the bound nothing more is logged.
fn first_time_unknown(store: &str) -> bool {
    const MOST: usize = 64;
    static LOGGED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let mut logged = LOGGED.lock().unwrap_or_else(PoisonError::into_inner);
    logged.len() < MOST && logged.insert(store.to_string())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error_code) = http_status(self.kind);
        let body = ErrorBody {
            error_code,
            message: &self.message,
        };
        (status, Json(body)).into_response()
    }
}

impl From<ApiError> for tonic::Status {
    fn from(error: ApiError) -> Self {
        tonic::Status::new(grpc_code(error.kind), error.message)
    }
}
