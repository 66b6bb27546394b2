//! Dapr's gRPC service `dapr.proto.runtime.v1.Dapr`, the lock RPCs and GetMetadata. Every
//! other RPC of Dapr's service is absent from our proto, so tonic answers UNIMPLEMENTED.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::error::as_daprd;
use super::metadata::describe;
use super::{lock_request, status, ApiState};
use crate::lock::{self, TryLockOutcome};
use crate::proto::dapr::dapr_server::Dapr;
use crate::proto::dapr::{
    GetMetadataRequest, GetMetadataResponse, TryLockRequest, TryLockResponse, UnlockRequest,
    UnlockResponse,
};

pub(crate) struct DaprGrpc {
    state: Arc<ApiState>,
}

impl DaprGrpc {
    pub(crate) fn new(state: Arc<ApiState>) -> Self {
        DaprGrpc { state }
    }
}

#[tonic::async_trait]
impl Dapr for DaprGrpc {
    async fn try_lock_alpha1(
        &self,
        request: Request<TryLockRequest>,
    ) -> Result<Response<TryLockResponse>, Status> {
        let r = request.into_inner();
        let store = r.store_name.clone();
        let request = lock_request!(r);
        let outcome =
            (self.state.locks.try_lock(request).await).map_err(|e| as_daprd(e, &store))?;
        Ok(Response::new(TryLockResponse {
            success: matches!(outcome, TryLockOutcome::Granted(_)),
        }))
    }

    async fn unlock_alpha1(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let r = request.into_inner();
        let store = r.store_name.clone();
        let request = lock::UnlockRequest {
            store: r.store_name,
            resource_id: r.resource_id,
            owner: r.lock_owner,
        };
        let outcome = (self.state.locks.unlock(request).await).map_err(|e| as_daprd(e, &store))?;
        Ok(Response::new(UnlockResponse {
            status: status(outcome),
        }))
    }

    async fn get_metadata(
        &self,
        _request: Request<GetMetadataRequest>,
    ) -> Result<Response<GetMetadataResponse>, Status> {
        Ok(Response::new(describe(&self.state)))
    }
}
