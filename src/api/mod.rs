//! The front doors: Dapr's API (`dapr_http.rs`, `dapr_grpc.rs`) and dlock's own
//! (`locks_http.rs`, `locks_grpc.rs`), each over HTTP (axum) and gRPC (tonic). All of them call
//! the one core, `lock::LockService`, so the protocols can never disagree; errors map to Dapr's
//! codes in `error.rs` only.

pub mod auth;
pub mod body;
pub mod dapr_grpc;
pub mod dapr_http;
pub mod error;
pub mod locks_grpc;
pub mod locks_http;
pub mod metadata;
pub mod server;

use crate::lock::{LockService, OwnerChecked};
use crate::proto::dapr::unlock_response::Status;

/// Everything a request handler needs, shared by every front door.
pub struct ApiState {
    pub locks: LockService,
    /// Loaded secret stores as (name, type), reported by the metadata API.
    pub secret_stores: Vec<(String, String)>,
    pub api_token: auth::ApiToken,
    /// Required, with force release, in `dlock-admin-token`.
    pub admin_token: auth::ApiToken,
}

/// Dapr's unlock status for a release outcome (both doors answer it).
pub fn unlock_status(outcome: OwnerChecked) -> Status {
    match outcome {
        OwnerChecked::Applied => Status::Success,
        OwnerChecked::NotHeld => Status::LockDoesNotExist,
        OwnerChecked::HeldByOther => Status::LockBelongsToOthers,
    }
}
