//! Dapr's gRPC service `dapr.proto.runtime.v1.Dapr`, the lock RPCs and GetMetadata. Every
//! other RPC of Dapr's service is absent from our proto, so tonic answers UNIMPLEMENTED.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::metadata::describe;
use super::{unlock_status, ApiState};
use crate::lock::TryLockOutcome;
use crate::proto::dapr::dapr_server::Dapr;
use crate::proto::dapr::{
    GetMetadataRequest, GetMetadataResponse, TryLockRequest, TryLockResponse, UnlockRequest,
    UnlockResponse,
};

pub struct DaprGrpc {
    state: Arc<ApiState>,
}

impl DaprGrpc {
    pub fn new(state: Arc<ApiState>) -> Self {
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
        let outcome = self
            .state
            .locks
            .try_lock(
                &r.store_name,
                &r.resource_id,
                &r.lock_owner,
                r.expiry_in_seconds,
            )
            .await?;
        Ok(Response::new(TryLockResponse {
            success: matches!(outcome, TryLockOutcome::Granted(_)),
        }))
    }

    async fn unlock_alpha1(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let r = request.into_inner();
        let outcome = self
            .state
            .locks
            .unlock(&r.store_name, &r.resource_id, &r.lock_owner)
            .await?;
        Ok(Response::new(UnlockResponse {
            status: unlock_status(outcome) as i32,
        }))
    }

    async fn get_metadata(
        &self,
        _request: Request<GetMetadataRequest>,
    ) -> Result<Response<GetMetadataResponse>, Status> {
        Ok(Response::new(describe(&self.state)))
    }
}
