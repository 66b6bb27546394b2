//! Finding and calling the sidecar: the endpoint from `--endpoint`, else the environment Dapr
//! SDKs read (`DAPR_GRPC_ENDPOINT`, `DAPR_GRPC_PORT`), else daprd's default; and
//! `DAPR_API_TOKEN` sent with every call.

use std::time::Duration;

use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use super::Exit;
use crate::proto::dapr::dapr_client::DaprClient;
use crate::proto::dlock::locks_client::LocksClient;

pub(crate) const DEFAULT_GRPC: &str = "127.0.0.1:50001";
pub(crate) const DEFAULT_HTTP: &str = "127.0.0.1:3500";

/// A gRPC client of Dapr's service that presents the API token, if any.
pub type Client = DaprClient<InterceptedService<Channel, TokenInterceptor>>;

/// A gRPC client of dlock's own service that presents the API token, if any.
pub type Locks = LocksClient<InterceptedService<Channel, TokenInterceptor>>;

/// Adds `dapr-api-token` to every call when `DAPR_API_TOKEN` is set.
#[derive(Clone)]
pub struct TokenInterceptor(Option<AsciiMetadataValue>);

impl TokenInterceptor {
    pub(crate) fn from_env() -> Self {
        TokenInterceptor(
            std::env::var("DAPR_API_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
                .and_then(|t| t.parse().ok()),
        )
    }

    pub(crate) fn token(&self) -> Option<&str> {
        self.0.as_ref().and_then(|t| t.to_str().ok())
    }
}

impl Interceptor for TokenInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("dapr-api-token", token.clone());
        }
        Ok(request)
    }
}

/// The gRPC endpoint: the flag, else `DAPR_GRPC_ENDPOINT`, else `127.0.0.1:$DAPR_GRPC_PORT`,
/// else daprd's default port.
pub fn grpc_endpoint(flag: Option<&str>) -> String {
    endpoint(flag, "DAPR_GRPC_ENDPOINT", "DAPR_GRPC_PORT", DEFAULT_GRPC)
}

/// The HTTP endpoint, found the same way from `DAPR_HTTP_ENDPOINT` / `DAPR_HTTP_PORT`.
pub fn http_endpoint(flag: Option<&str>) -> String {
    endpoint(flag, "DAPR_HTTP_ENDPOINT", "DAPR_HTTP_PORT", DEFAULT_HTTP)
}

fn endpoint(flag: Option<&str>, endpoint_var: &str, port_var: &str, default: &str) -> String {
    let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let chosen = flag
        .map(str::to_string)
        .or_else(|| from_env(endpoint_var))
        .or_else(|| from_env(port_var).map(|port| format!("127.0.0.1:{port}")))
        .unwrap_or_else(|| default.to_string());
    if chosen.contains("://") {
        chosen
    } else {
        format!("http://{chosen}")
    }
}

/// Connects to the sidecar's gRPC port, failing within `timeout` if nobody answers.
pub(crate) async fn channel(endpoint: &str, timeout: Duration) -> Result<Channel, String> {
    Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| format!("'{endpoint}' is not a valid endpoint: {e}"))?
        .connect_timeout(timeout)
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| format!("can't reach the sidecar at {endpoint}: {}", source_text(&e)))
}

/// A client of Dapr's service on the sidecar.
pub async fn grpc(endpoint: &str, timeout: Duration) -> Result<Client, String> {
    Ok(dapr_on(channel(endpoint, timeout).await?))
}

/// A client of dlock's own service (`dlock.v1.Locks`) on the sidecar.
pub async fn locks(endpoint: &str, timeout: Duration) -> Result<Locks, String> {
    Ok(locks_on(channel(endpoint, timeout).await?))
}

/// A client of Dapr's service on an open channel.
pub(crate) fn dapr_on(channel: Channel) -> Client {
    DaprClient::with_interceptor(channel, TokenInterceptor::from_env())
}

/// A client of dlock's own service on an open channel.
pub(crate) fn locks_on(channel: Channel) -> Locks {
    LocksClient::with_interceptor(channel, TokenInterceptor::from_env())
}

/// Whether an answer came from a server that does not speak gRPC: an HTTP answer without
/// gRPC's status, such as the 404 a sidecar's HTTP port gives. tonic words these statuses
/// alone, as `grpc-status header missing, mapped from HTTP status code N`.
pub(crate) fn not_grpc(status: &tonic::Status) -> bool {
    status.message().starts_with("grpc-status header missing")
}

/// The innermost cause of an error, which is the useful part of a transport error.
pub(crate) fn source_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = error;
    while let Some(source) = inner.source() {
        inner = source;
    }
    inner.to_string()
}

/// Says what went wrong with a call and picks the exit.
pub(crate) fn report(endpoint: &str, status: &tonic::Status) -> Exit {
    if not_grpc(status) {
        errln!(
            "dlock: {endpoint} answered as an HTTP server, not as a sidecar's gRPC port ({}): \
             dlock speaks gRPC; give the sidecar's gRPC port (daprd's --dapr-grpc-port, 50001 \
             by default), not its HTTP port",
            status.message()
        );
        return Exit::Unreachable;
    }
    match status.code() {
        Code::Unavailable => {
            errln!(
                "dlock: can't reach the sidecar at {endpoint}: {}",
                status.message()
            );
            Exit::Unreachable
        }
        _ => {
            errln!("dlock: the sidecar refused: {}", status.message());
            Exit::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_order() {
        assert_eq!(
            endpoint(Some("h:1"), "DLOCK_T_E", "DLOCK_T_P", "d:2"),
            "http://h:1"
        );
        assert_eq!(
            endpoint(None, "DLOCK_T_E", "DLOCK_T_P", "d:2"),
            "http://d:2"
        );
        std::env::set_var("DLOCK_T_P", "7");
        assert_eq!(
            endpoint(None, "DLOCK_T_E", "DLOCK_T_P", "d:2"),
            "http://127.0.0.1:7"
        );
        std::env::set_var("DLOCK_T_E", "https://x:9");
        assert_eq!(
            endpoint(None, "DLOCK_T_E", "DLOCK_T_P", "d:2"),
            "https://x:9"
        );
    }
}
