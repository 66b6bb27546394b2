//! The errors of Dapr's lock API. Each kind fixes the HTTP status, the `errorCode` and the gRPC
//! code (mapped in `api/error.rs`); the message is the text Dapr sends.

/// Which of Dapr's lock errors this is (SPEC.md §2, the error table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input: 400 ERR_MALFORMED_REQUEST, gRPC InvalidArgument.
    MalformedRequest,
    /// No lock store loaded at all: 500 ERR_LOCK_STORE_NOT_CONFIGURED, gRPC FailedPrecondition.
    StoreNotConfigured,
    /// No store of that name: 400 ERR_LOCK_STORE_NOT_FOUND, gRPC InvalidArgument.
    StoreNotFound,
    /// The key was refused or the store failed on try-lock: 500 ERR_TRY_LOCK, gRPC Internal.
    TryLockFailed,
    /// The key was refused or the store failed on unlock: 500 ERR_UNLOCK, gRPC Internal.
    UnlockFailed,
}

/// An error answered to a client of the lock API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }
}
