//! Binding the two ports and serving until shutdown: every listen address gets an HTTP and a
//! gRPC listener (or, with daprd's --unix-domain-socket, each API gets one Unix socket); shutdown stops accepting, lets requests in flight finish, and gives up
//! waiting after a grace period (daprd's --dapr-graceful-shutdown-seconds).

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_stream::StreamExt;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;

use super::connections::{self, Admitted, Cap, ConnectionLimits};
use super::dapr_grpc::DaprGrpc;
use super::locks_grpc::LocksGrpc;
use super::{auth, dapr_http, ApiState};
use crate::metrics::layers::{GrpcMetricsLayer, HttpMetricsLayer, KnownStore};
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

/// Where one of the two APIs listens.
pub enum Listeners {
    /// A listener on every listen address, all on the same port.
    Tcp(Vec<TcpListener>),
    /// One Unix socket (daprd's --unix-domain-socket), and nothing on TCP.
    #[cfg(unix)]
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

impl Listeners {
    /// The addresses, as the ready line shows them: `127.0.0.1:3500 [::1]:3500` or
    /// `unix:/dir/dapr-app-http.socket`.
    pub fn describe(&self) -> String {
        match self {
            Listeners::Tcp(listeners) => listeners
                .iter()
                .filter_map(|l| l.local_addr().ok())
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" "),
            #[cfg(unix)]
            Listeners::Unix(_, path) => format!("unix:{}", path.display()),
        }
    }
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
    http_listeners: Listeners,
    grpc_listeners: Listeners,
    max_body_size: usize,
    limits: ConnectionLimits,
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

    let cap = Cap::new(limits.max_connections);
    let mut router = dapr_http::router(state.clone(), max_body_size);
    if let Some(metrics) = &state.metrics {
        let served = state.clone();
        let known_store: KnownStore =
            Arc::new(move |name| served.locks.registry().get(name).is_some());
        router = router.layer(HttpMetricsLayer::new(metrics.clone(), known_store));
    }
    match http_listeners {
        Listeners::Tcp(listeners) => {
            for listener in listeners {
                let served = serve_http(
                    listener,
                    router.clone(),
                    limits,
                    cap.clone(),
                    stopped.clone(),
                );
                servers.spawn(served);
            }
        }
        #[cfg(unix)]
        Listeners::Unix(listener, _) => {
            let served = serve_http(listener, router, limits, cap.clone(), stopped.clone());
            servers.spawn(served);
        }
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
    // Outermost, so that the calls the access gate closes are seen answered UNIMPLEMENTED.
    let grpc_metrics = state.metrics.clone().map(GrpcMetricsLayer::new);
    // A client host that vanishes without a FIN (a crash, a partition) stops answering
    // pings: its connection closes, its streams end, and its sessions release their locks.
    let grpc = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_streams)
        .http2_keepalive_interval(Some(limits.keepalive))
        .http2_keepalive_timeout(Some(limits.keepalive))
        .layer(tower::util::option_layer(grpc_metrics))
        .layer(tower::util::option_layer(state.access.grpc_layer()))
        .add_service(dapr)
        .add_service(locks);
    match grpc_listeners {
        Listeners::Tcp(listeners) => {
            for listener in listeners {
                let incoming = TcpIncoming::from(listener)
                    .with_nodelay(Some(true))
                    .with_keepalive(Some(limits.keepalive))
                    .with_keepalive_interval(Some(limits.keepalive));
                let served = grpc
                    .clone()
                    .serve_with_incoming_shutdown(admitted(incoming, &cap), stopped());
                servers.spawn(async move { report("gRPC", served.await) });
            }
        }
        #[cfg(unix)]
        Listeners::Unix(listener, _) => {
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
            let served = grpc.serve_with_incoming_shutdown(admitted(incoming, &cap), stopped());
            servers.spawn(async move { report("gRPC", served.await) });
        }
    }

    shutdown.signal.await;
    tracing::info!(
        "shutting down: no new requests; releasing the locks of held sessions and finishing \
         the requests in flight"
    );
    // Sessions release their locks and tell their clients, and waits end: the streams they
    // keep open then close, so the drain below finishes well within the grace period.
    state.locks.shut_down();
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

fn report<E: std::fmt::Display>(api: &str, served: Result<(), E>) {
    if let Err(e) = served {
        tracing::error!("{api} server failed: {e}");
    }
}

/// The connections of `incoming` that find a place under the cap; the others are closed.
fn admitted<IO>(
    incoming: impl tokio_stream::Stream<Item = io::Result<IO>>,
    cap: &Cap,
) -> impl tokio_stream::Stream<Item = io::Result<Admitted<IO>>> {
    let cap = cap.clone();
    incoming.filter_map(move |accepted| match accepted {
        Ok(io) => cap.admit().map(|place| Ok(Admitted::new(io, place))),
        Err(e) => Some(Err(e)),
    })
}

/// A listener of the HTTP port.
trait Acceptor: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept_one(&self) -> impl Future<Output = io::Result<Self::Io>> + Send;
    /// Probes a quiet connection for a live peer after `idle`, where the transport can.
    fn keep_alive(_io: &Self::Io, _idle: Duration) {}
}

impl Acceptor for TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept_one(&self) -> io::Result<Self::Io> {
        let (tcp, _) = self.accept().await?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    fn keep_alive(io: &Self::Io, idle: Duration) {
        // A plain HTTP/1 session has no pings of its own: TCP's probes find a vanished peer.
        let probes = socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval(idle);
        if let Err(e) = socket2::SockRef::from(io).set_tcp_keepalive(&probes) {
            tracing::debug!("can't set TCP keepalive on an HTTP connection: {e}");
        }
    }
}

#[cfg(unix)]
impl Acceptor for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept_one(&self) -> io::Result<Self::Io> {
        Ok(self.accept().await?.0)
    }
}

/// Accepts HTTP connections until `stopped` resolves, each served in a task of its own
/// within `limits`; returns once every connection has closed.
async fn serve_http<L: Acceptor, F: Future<Output = ()> + Send + 'static>(
    listener: L,
    router: Router,
    limits: ConnectionLimits,
    cap: Cap,
    stopped: impl Fn() -> F + Send + 'static,
) {
    let mut connections = JoinSet::new();
    let stop = stopped();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept_one() => match accepted {
                Ok(io) => {
                    L::keep_alive(&io, limits.keepalive);
                    // Over the cap, `io` is dropped here: closed at once.
                    if let Some(place) = cap.admit() {
                        let io = Admitted::new(io, place);
                        connections.spawn(connections::serve_http(io, router.clone(), limits, stopped()));
                    }
                }
                // Out of file descriptors, most likely: let connections close before trying again.
                Err(e) => {
                    tracing::warn!("HTTP port: can't accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    while connections.join_next().await.is_some() {}
}
