//! Dapr's HTTP API for locks, health and metadata (docs/contract.md §2).

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use serde_json::json;

use super::access::Endpoint;
use super::body::{Body, TryLockBody, UnlockBody};
use super::error::{as_daprd, ErrorBody};
use super::metadata::{describe, MetadataJson};
use super::{auth, console, events_http, locks_http, status, ApiState};
use crate::lock::{ApiError, TryLockOutcome};

/// The HTTP routes of one sidecar.
pub(crate) fn router(state: Arc<ApiState>, max_body_size: usize) -> Router {
    let serves = |endpoint| state.access.http_serves(endpoint);
    // A route the Configuration closes is not registered at all, as in daprd: it answers 404.
    let mut routes = Router::new()
        .route("/v1.0/healthz", get(healthy))
        .route("/v1.0/healthz/outbound", get(healthy));
    if serves(Endpoint::Lock) {
        routes = routes.route("/v1.0-alpha1/lock/{store}", post(try_lock));
    }
    if serves(Endpoint::Unlock) {
        routes = routes.route("/v1.0-alpha1/unlock/{store}", post(unlock));
    }
    if serves(Endpoint::Metadata) {
        routes = routes.route("/v1.0/metadata", get(metadata));
    }
    if serves(Endpoint::Dlock) {
        routes = routes
            .merge(locks_http::routes())
            .merge(events_http::routes());
    }
    let mut routes = routes
        .fallback(not_served)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::http_middleware,
        ));
    // Merged after the token check: the console's files hold no data, and its page asks
    // for the token that its data calls (the /dlock/v1/ routes above) need.
    if serves(Endpoint::Dlock) {
        routes = routes.merge(console::routes());
    }
    routes
        .layer(DefaultBodyLimit::max(max_body_size))
        .with_state(state)
}

async fn try_lock(
    State(state): State<Arc<ApiState>>,
    Path(store): Path<String>,
    Body(body): Body<TryLockBody>,
) -> Result<Response, ApiError> {
    let request = body.request(store.clone());
    let outcome = (state.locks.try_lock(request).await).map_err(|e| as_daprd(e, &store))?;
    let success = matches!(outcome, TryLockOutcome::Granted(_));
    Ok(Json(json!({ "success": success })).into_response())
}

async fn unlock(
    State(state): State<Arc<ApiState>>,
    Path(store): Path<String>,
    Body(body): Body<UnlockBody>,
) -> Result<Response, ApiError> {
    let request = body.request(store.clone());
    let outcome = (state.locks.unlock(request).await).map_err(|e| as_daprd(e, &store))?;
    Ok(Json(json!({ "status": status(outcome) })).into_response())
}

/// A route asked with a method it does not serve, in Dapr's error shape (axum's own answer
/// has no body, which SDKs cannot parse).
/// Every other path: an app configured for daprd that calls state, pub/sub or any other
/// building block here learns why nothing answers, instead of an empty 404.
async fn not_served(uri: Uri, headers: HeaderMap) -> Response {
    // A gRPC client pointed at this port by mistake gets the bare 404 that gRPC clients report
    // as "not a gRPC server" (dlock says which port to give instead); a JSON body would read to
    // them as a broken gRPC message.
    let grpc = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if grpc {
        return StatusCode::NOT_FOUND.into_response();
    }
    let message = format!(
        "{} is not served: dlockd serves Dapr's lock API (lock, unlock, metadata, healthz) and \
         its own under /dlock/v1/, less what the Configuration's spec.api closes; state, \
         pub/sub and Dapr's other building blocks need daprd",
        uri.path()
    );
    let body = ErrorBody {
        error_code: "ERR_NOT_SERVED",
        message: &message,
    };
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

async fn method_not_allowed(method: Method) -> Response {
    let message = format!("method {method} is not allowed on this route");
    let body = ErrorBody {
        error_code: "ERR_MALFORMED_REQUEST",
        message: &message,
    };
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

/// The sidecar binds its ports only once every component has loaded, so whenever it answers
/// at all it is ready.
async fn healthy() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn metadata(State(state): State<Arc<ApiState>>) -> Json<MetadataJson> {
    Json(describe(&state).into())
}
