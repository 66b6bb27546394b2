//! The errors of the lock API. Each kind fixes the HTTP status, the `errorCode` and the gRPC
//! code (mapped in `api/error.rs`); the message is the text Dapr sends, for Dapr's calls.

/// The operation a request asked for; store failures are reported per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// Dapr's TryLockAlpha1.
    TryLock,
    /// Dapr's UnlockAlpha1.
    Unlock,
    Acquire,
    Renew,
    Inspect,
    List,
    ForceRelease,
    /// dlock's Release: one hold, or all of them.
    Release,
}

impl Operation {
    /// Dapr's wording for its calls, ours in the same style for the others.
    pub(crate) fn failure_prefix(self) -> &'static str {
        match self {
            Operation::TryLock => "failed to try acquiring lock",
            Operation::Unlock => "failed to release lock",
            Operation::Acquire => "failed to acquire lock",
            Operation::Renew => "failed to renew lock",
            Operation::Inspect => "failed to inspect lock",
            Operation::List => "failed to list locks",
            Operation::ForceRelease => "failed to force-release lock",
            Operation::Release => "failed to release lock",
        }
    }
}

/// Which error this is (docs/contract.md §2's table, and ours beyond it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// Bad input: 400 ERR_MALFORMED_REQUEST, gRPC InvalidArgument.
    MalformedRequest,
    /// No lock store loaded at all: 500 ERR_LOCK_STORE_NOT_CONFIGURED, gRPC FailedPrecondition.
    StoreNotConfigured,
    /// No store of that name: 400 ERR_LOCK_STORE_NOT_FOUND, gRPC InvalidArgument.
    StoreNotFound,
    /// The key was refused or the store failed: 500 ERR_TRY_LOCK, ERR_UNLOCK, … per
    /// operation, gRPC Internal.
    Failed(Operation),
    /// The store can't do what was asked (fencing, listing): 400 ERR_NOT_SUPPORTED, gRPC
    /// FailedPrecondition.
    Unsupported,
    /// An operator's action without the admin token: 403 ERR_FORBIDDEN, gRPC PermissionDenied.
    Forbidden,
    /// A blocking acquire past the sidecar's cap on waiters (`--max-waiters`): 429
    /// ERR_TOO_MANY_WAITERS, gRPC ResourceExhausted.
    TooManyWaiters,
    /// A wait ended because its store was reconfigured or removed by a reload: 503
    /// ERR_LOCK_STORE_RECONFIGURED, gRPC Aborted (gRPC's "retry at a higher level": asking
    /// again joins the new version's line).
    Reconfigured,
    /// A wait ended because the sidecar is shutting down: 503 ERR_SHUTTING_DOWN, gRPC
    /// Unavailable.
    ShuttingDown,
    /// A shared request whose limit differs from the current holders': 409
    /// ERR_LIMIT_MISMATCH, gRPC FailedPrecondition.
    LimitMismatch,
    /// A reentrant request in another mode than its owner holds: 409 ERR_MODE_CONFLICT, gRPC
    /// FailedPrecondition.
    ModeConflict,
    /// A release whose expected holds are neither the owner's holds nor one more: 409
    /// ERR_HOLDS_MISMATCH, gRPC FailedPrecondition.
    HoldsMismatch,
}

/// An error answered to a client of the lock API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct ApiError {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    /// A store failure (or refused key) during `operation`.
    pub(crate) fn failed(operation: Operation, detail: impl std::fmt::Display) -> Self {
        ApiError::new(
            ErrorKind::Failed(operation),
            format!("{}: {detail}", operation.failure_prefix()),
        )
    }
}
