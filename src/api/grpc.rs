//! Dapr's gRPC service `dapr.proto.runtime.v1.Dapr`, the lock RPCs and GetMetadata. Every
//! other RPC of Dapr's service is absent from our proto, so tonic answers UNIMPLEMENTED.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::metadata::describe;
use super::{unlock_status, Sidecar};
use crate::lock::TryLockOutcome;
use crate::proto::dapr::dapr_server::Dapr;
use crate::proto::dapr::{
    GetMetadataRequest, GetMetadataResponse, TryLockRequest, TryLockResponse, UnlockRequest,
    UnlockResponse,
};

pub struct DaprService {
    sidecar: Arc<Sidecar>,
}

impl DaprService {
    pub fn new(sidecar: Arc<Sidecar>) -> Self {
        DaprService { sidecar }
    }
}

#[tonic::async_trait]
impl Dapr for DaprService {
    async fn try_lock_alpha1(
        &self,
        request: Request<TryLockRequest>,
    ) -> Result<Response<TryLockResponse>, Status> {
        let r = request.into_inner();
        let outcome = self
            .sidecar
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
            .sidecar
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
        Ok(Response::new(describe(&self.sidecar)))
    }
}
