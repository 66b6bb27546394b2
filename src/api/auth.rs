//! `DAPR_API_TOKEN`: when the sidecar's environment sets it, every request must carry the same
//! value in `dapr-api-token` (HTTP header or gRPC metadata), but the two HTTP health routes.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Sidecar;

/// The header and metadata name carrying the token.
pub const HEADER: &str = "dapr-api-token";

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
    /// Reads `DAPR_API_TOKEN`; an empty value means no token, as in daprd.
    pub fn from_env() -> Self {
        ApiToken(
            std::env::var("DAPR_API_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
        )
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// Whether a request presenting `given` may pass.
    pub fn admits(&self, given: Option<&[u8]>) -> bool {
        match &self.0 {
            None => true,
            Some(expected) => {
                given.is_some_and(|given| constant_time_eq(expected.as_bytes(), given))
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The HTTP check: 401 with plain text `invalid api token`, as daprd answers.
pub async fn http_middleware(
    State(sidecar): State<Arc<Sidecar>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let exempt = path == "/v1.0/healthz" || path == "/v1.0/healthz/outbound";
    let given = request.headers().get(HEADER).map(|v| v.as_bytes());
    if exempt || sidecar.api_token.admits(given) {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, "invalid api token").into_response()
    }
}

/// The gRPC check, as a tonic interceptor.
pub fn grpc_interceptor(
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
    }
}
