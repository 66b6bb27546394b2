//! The metrics port (daprd's `--metrics-port`, 9090, on `--metrics-listen-address`, 0.0.0.0):
//! a plain HTTP server that answers every GET with the metrics in Prometheus's text format.
//! daprd serves them on every path (its handler sits at `/`), and the scrape configurations
//! written for it use `/` as well as Prometheus's usual `/metrics`, so dlockd does the same.
//! The port has no token: daprd's has none, and nothing on it is a secret (no resource ids, no
//! owners, no credentials).

use std::io;
use std::sync::Arc;

use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;

/// What a scrape answers: the metrics as they are now.
pub(crate) type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Prometheus's text exposition format, as daprd's exporter answers it.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds the metrics port on `host` (an IP address, or a name to resolve, as daprd takes
/// it). Port 0 picks a free one.
pub async fn bind(host: &str, port: u16) -> io::Result<TcpListener> {
    TcpListener::bind((host, port)).await.map_err(|e| {
        let address = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        io::Error::new(e.kind(), format!("can't listen on {address}: {e}"))
    })
}

/// Answers scrapes on `listener` for as long as the process runs.
pub async fn serve(listener: TcpListener, render: Render) {
    let router = Router::new().fallback(move |method: Method| {
        let render = render.clone();
        async move { scrape(&method, &*render) }
    });
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!("metrics port failed: {e}");
    }
}

fn scrape(method: &Method, render: &dyn Fn() -> String) -> Response {
    match *method {
        Method::GET => ([(header::CONTENT_TYPE, TEXT_FORMAT)], render()).into_response(),
        Method::HEAD => [(header::CONTENT_TYPE, TEXT_FORMAT)].into_response(),
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}
