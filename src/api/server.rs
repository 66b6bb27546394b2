//! Binding the two ports and serving until shutdown: every listen address gets an HTTP and a
//! gRPC listener; shutdown stops accepting, lets requests in flight finish, and gives up
//! waiting after a grace period (daprd's --dapr-graceful-shutdown-seconds).

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;

use super::dapr_grpc::DaprGrpc;
use super::locks_grpc::LocksGrpc;
use super::{auth, dapr_http, ApiState};
use crate::proto::dapr::dapr_server::DaprServer;
use crate::proto::dlock::locks_server::LocksServer;

/// Listeners bound on every address for one port. With port 0 the first address picks a free
/// port and the others use the same one.
pub async fn bind(addresses: &[IpAddr], port: u16, defaults: bool) -> io::Result<Vec<TcpListener>> {
    let mut listeners: Vec<TcpListener> = Vec::new();
    for &ip in addresses {
        let port = listeners
            .first()
            .map_or(Ok(port), |l| l.local_addr().map(|a| a.port()))?;
        let address = SocketAddr::new(ip, port);
        match TcpListener::bind(address).await {
            Ok(listener) => listeners.push(listener),
            // The default addresses include ::1, which a host without IPv6 lacks.
            Err(e) if defaults && ip.is_ipv6() => {
                tracing::debug!("not listening on {address}: {e}");
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("can't listen on {address}: {e}"),
                ))
            }
        }
    }
    Ok(listeners)
}

/// How the servers stop.
pub struct Shutdown<F> {
    /// Completes when shutdown begins.
    pub signal: F,
    /// How long requests in flight may take after that; None: no limit.
    pub grace: Option<Duration>,
}

/// Serves Dapr's API on the listeners until `shutdown.signal` completes. Returns false when
/// requests were still open when the grace period ran out.
pub async fn serve(
    state: Arc<ApiState>,
    http_listeners: Vec<TcpListener>,
    grpc_listeners: Vec<TcpListener>,
    max_body_size: usize,
    shutdown: Shutdown<impl Future<Output = ()>>,
) -> bool {
    let (stop, stopped) = watch::channel(false);
    let stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let mut servers = JoinSet::new();

    let router = dapr_http::router(state.clone(), max_body_size);
    for listener in http_listeners {
        let router = router.clone();
        let stopped = stopped();
        servers.spawn(async move {
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::error!("HTTP server failed: {e}");
            }
        });
    }

    let interceptor = auth::grpc_interceptor(state.api_token.clone());
    let dapr = InterceptedService::new(
        DaprServer::new(DaprGrpc::new(state.clone())).max_decoding_message_size(max_body_size),
        interceptor.clone(),
    );
    let locks = InterceptedService::new(
        LocksServer::new(LocksGrpc::new(state.clone())).max_decoding_message_size(max_body_size),
        interceptor,
    );
    for listener in grpc_listeners {
        let (dapr, locks) = (dapr.clone(), locks.clone());
        let stopped = stopped();
        servers.spawn(async move {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(dapr)
                .add_service(locks)
                .serve_with_incoming_shutdown(incoming, stopped)
                .await
            {
                tracing::error!("gRPC server failed: {e}");
            }
        });
    }

    shutdown.signal.await;
    tracing::info!("shutting down: no new requests; finishing those in flight");
    let _ = stop.send(true);
    let drain = async { while servers.join_next().await.is_some() {} };
    match shutdown.grace {
        None => {
            drain.await;
            true
        }
        Some(grace) => tokio::time::timeout(grace, drain).await.is_ok(),
    }
}
