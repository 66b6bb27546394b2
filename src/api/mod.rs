//! The front doors: Dapr's API (`dapr_http.rs`, `dapr_grpc.rs`) and dlock's own
//! (`locks_http.rs`, `locks_grpc.rs`), each over HTTP (axum) and gRPC (tonic). All of them call
//! the one core, `lock::LockService`, so the protocols can never disagree; errors map to Dapr's
//! codes in `error.rs` only, owner-checked outcomes to status numbers in `status` only. The
//! console (`console/`) is a web page over dlock's HTTP calls and the event feed
//! (`events_http.rs`).

pub mod access;
pub mod auth;
pub(crate) mod body;
pub mod connections;
mod console;
pub(crate) mod dapr_grpc;
pub(crate) mod dapr_http;
pub(crate) mod error;
mod events_http;
pub(crate) mod locks_grpc;
pub(crate) mod locks_http;
pub(crate) mod metadata;
pub mod server;
pub(crate) mod stores;

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
    /// The endpoints each protocol serves (a Configuration's `spec.api`).
    pub access: access::ApiAccess,
    /// Where requests are counted, when metrics are on.
    pub metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

/// The core's `LockRequest` from a gRPC message that names a lock and its time to live:
/// Dapr's `TryLockRequest` and dlock's `RenewRequest` and `AcquireRequest` spell the four
/// fields alike, in types of their own.
macro_rules! lock_request {
    ($message:ident) => {
        crate::lock::LockRequest {
            store: $message.store_name,
            resource_id: $message.resource_id,
            owner: $message.lock_owner,
            expiry_in_seconds: $message.expiry_in_seconds,
        }
    };
}
pub(crate) use lock_request;

/// The status number answered for an unlock or a renewal, on every door: Dapr's
/// `UnlockResponse.Status`, which dlock's `LockStatus` numbers alike.
pub(crate) fn status(outcome: OwnerChecked) -> i32 {
    let status = match outcome {
        OwnerChecked::Applied => Status::Success,
        OwnerChecked::NotHeld => Status::LockDoesNotExist,
        OwnerChecked::HeldByOther => Status::LockBelongsToOthers,
    };
    status as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::dlock::LockStatus;

    #[test]
    fn dlock_numbers_the_statuses_as_dapr_does() {
        let pairs = [
            (OwnerChecked::Applied, LockStatus::Success),
            (OwnerChecked::NotHeld, LockStatus::LockDoesNotExist),
            (OwnerChecked::HeldByOther, LockStatus::LockBelongsToOthers),
        ];
        for (outcome, dlock) in pairs {
            assert_eq!(status(outcome), dlock as i32, "{outcome:?}");
        }
    }
}
