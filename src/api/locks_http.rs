//! dlock's own HTTP routes under `/dlock/v1/`: every call of `dlock.v1.Locks` but the held
//! session (a stream), with Dapr's body rules and error shape. 64-bit numbers are written as
//! strings, as protobuf's JSON mapping does, so JavaScript clients keep every digit.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::body::{
    self, AcquireBody, Body, ListBody, RawBody, ReleaseBody, ResourceBody, TryLockBody,
};
use super::locks_grpc::{acquired, lock_info};
use super::{auth, status, stores, ApiState};
use crate::lock::{ApiError, HeldLock};
use crate::proto::dlock::LockMode;

/// The routes, to be merged into the sidecar's router.
pub(crate) fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/dlock/v1/acquire/{store}", post(acquire))
        .route("/dlock/v1/renew/{store}", post(renew))
        .route("/dlock/v1/release/{store}", post(release))
        .route("/dlock/v1/inspect/{store}", post(inspect))
        .route("/dlock/v1/list/{store}", post(list))
        .route("/dlock/v1/force-release/{store}", post(force_release))
        .route("/dlock/v1/stores", get(list_stores))
}

async fn acquire(
    State(state): State<Arc<ApiState>>,
    Path(store): Path<String>,
    Body(b): Body<AcquireBody>,
) -> Result<Json<Value>, ApiError> {
    let grant = state.locks.acquire(b.request(store)?).await?;
    let answer = acquired(grant);
    Ok(Json(json!({
        "acquired": answer.acquired,
        "fencingToken": answer.fencing_token.to_string(),
        "hasFencing": answer.has_fencing,
        "holds": answer.holds,
    })))
}

async fn release(
    State(state): State<Arc<ApiState>>,
    Path(store): Path<String>,
    Body(b): Body<ReleaseBody>,
) -> Result<Json<Value>, ApiError> {
    let released = state.locks.release_holds(b.request(store)).await?;
    Ok(Json(json!({
        "status": status(released.outcome),
        "holdsRemaining": released.holds_left,
    })))
}

async fn renew(
    State(state): State<Arc<ApiState>>,
    Path(store): Path<String>,
    Body(b): Body<TryLockBody>,
) -> Result<Json<Value>, ApiError> {
    let outcome = state.locks.renew(b.request(store)).await?;
    Ok(Json(json!({ "status": status(outcome) })))
}

fn lock_json(held: HeldLock) -> Value {
    let info = lock_info(held);
    json!({
        "resourceId": info.resource_id,
        "lockOwner": info.lock_owner,
        "expiresInMs": info.expires_in_ms.to_string(),
        "fencingToken": info.fencing_token.to_string(),
        "waitingHere": info.waiting_here,
        "mode": mode_name(info.mode),
        "limit": info.limit,
        "holders": info.holders.iter().map(|holder| json!({
            "lockOwner": holder.lock_owner,
            "expiresInMs": holder.expires_in_ms.to_string(),
            "fencingToken": holder.fencing_token.to_string(),
            "holds": holder.holds,
        })).collect::<Vec<_>>(),
    })
}

/// A `LockMode` as protobuf's JSON mapping names it.
fn mode_name(mode: i32) -> &'static str {
    match LockMode::try_from(mode) {
        Ok(LockMode::Shared) => "SHARED",
        _ => "EXCLUSIVE",
    }
}

async fn inspect(
    State(state): State<Arc<ApiState>>,
    Path(store): Path<String>,
    Body(b): Body<ResourceBody>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        match state.locks.inspect(&store, &b.resource_id).await? {
            Some(held) => json!({ "held": true, "lock": lock_json(held) }),
            None => json!({ "held": false }),
        },
    ))
}

async fn list(
    State(state): State<Arc<ApiState>>,
    Path(store): Path<String>,
    Body(b): Body<ListBody>,
) -> Result<Json<Value>, ApiError> {
    let locks = state.locks.list(&store, &b.prefix).await?;
    Ok(Json(
        json!({ "locks": locks.into_iter().map(lock_json).collect::<Vec<_>>() }),
    ))
}

async fn force_release(
    State(state): State<Arc<ApiState>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    RawBody(bytes): RawBody,
) -> Result<Json<Value>, Response> {
    let given = headers.get(auth::ADMIN_HEADER).map(|v| v.as_bytes());
    auth::admin(&state.admin_token, given).map_err(|e| body::refuse(&bytes, e))?;
    let b: ResourceBody = body::parse(&bytes).map_err(|e| body::refuse(&bytes, e))?;
    let released = (state.locks.force_release(&store, &b.resource_id).await)
        .map_err(IntoResponse::into_response)?;
    Ok(Json(json!({ "released": released })))
}

async fn list_stores(State(state): State<Arc<ApiState>>) -> Json<Value> {
    Json(stores::json(stores::describe(&state)))
}
