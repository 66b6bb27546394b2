//! Tokens. `DAPR_API_TOKEN`: when the sidecar's environment sets it, every request must carry
//! the same value in `dapr-api-token` (HTTP header or gRPC metadata), but the two HTTP health
//! routes. `DLOCK_ADMIN_TOKEN`: force release is refused unless it is set and the request
//! carries it in `dlock-admin-token`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use crate::lock::{ApiError, ErrorKind};

/// The header and metadata name carrying the API token.
pub(crate) const HEADER: &str = "dapr-api-token";
/// The header and metadata name carrying the admin token.
pub(crate) const ADMIN_HEADER: &str = "dlock-admin-token";

/// The token requests must present, if any. `Debug` never shows it.
#[derive(Clone, Default)]
pub struct ApiToken(Option<String>);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "ApiToken(set)"
        } else {
            "ApiToken(none)"
        })
    }
}

impl ApiToken {
    /// Reads a token from the environment (`DAPR_API_TOKEN`, `DLOCK_ADMIN_TOKEN`); an empty
    /// value means no token, as in daprd.
    pub fn from_env(variable: &str) -> Self {
        ApiToken(std::env::var(variable).ok().filter(|t| !t.is_empty()))
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// Whether a request presenting `given` may pass.
    pub(crate) fn admits(&self, given: Option<&[u8]>) -> bool {
        match &self.0 {
            None => true,
            Some(expected) => {
                given.is_some_and(|given| constant_time_eq(expected.as_bytes(), given))
            }
        }
    }
}

/// The check before a force release: the admin token must be configured and presented.
pub(crate) fn admin(token: &ApiToken, given: Option<&[u8]>) -> Result<(), ApiError> {
    if !token.is_set() {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "force release is disabled: the sidecar has no DLOCK_ADMIN_TOKEN",
        ));
    }
    if !token.admits(given) {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            format!("force release needs the admin token in {ADMIN_HEADER}"),
        ));
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The HTTP check: 401 with plain text `invalid api token`, as daprd answers.
pub(crate) async fn http_middleware(
    State(state): State<Arc<ApiState>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let exempt = path == "/v1.0/healthz" || path == "/v1.0/healthz/outbound";
    let given = request.headers().get(HEADER).map(|v| v.as_bytes());
    if exempt || state.api_token.admits(given) {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, "invalid api token").into_response()
    }
}

/// The gRPC check, as a tonic interceptor.
pub(crate) fn grpc_interceptor(
    token: ApiToken,
) -> impl Fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
    move |request: tonic::Request<()>| {
        let given = request.metadata().get(HEADER).map(|v| v.as_bytes());
        if token.admits(given) {
            Ok(request)
        } else {
            Err(tonic::Status::unauthenticated(
                "authentication error: missing or invalid dapr-api-token",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits() {
        let open = ApiToken(None);
        assert!(open.admits(None));
        let token = ApiToken(Some("t0k".into()));
        assert!(token.admits(Some(b"t0k")));
        assert!(!token.admits(Some(b"t0K")));
        assert!(!token.admits(Some(b"t0k ")));
        assert!(!token.admits(None));
        assert_eq!(format!("{token:?}"), "ApiToken(set)");
        assert!(admin(&ApiToken(None), Some(b"x")).is_err());
        assert!(admin(&token, Some(b"nope")).is_err());
        assert!(admin(&token, Some(b"t0k")).is_ok());
    }
}
