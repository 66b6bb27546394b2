//! The layers that record daprd's request metrics: one around the HTTP routes, one in front of
//! the gRPC services, as daprd's HTTP middleware and gRPC interceptor record them.
//!
//! Labels stay bounded whatever clients send: an HTTP request that matches no route is
//! labelled with the empty path (daprd's label when it keeps no paths), and a route naming a
//! store that is not loaded with its template (`/v1.0-alpha1/lock/{store}`); a gRPC call
//! answered UNIMPLEMENTED (a method dlockd does not serve, or one the Configuration closes) is
//! not recorded, as grpc-go runs no interceptor for a method its server does not know.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use tonic::codegen::http;
use tower::{Layer, Service};

use super::daprd::{GrpcCall, HttpRequest};
use super::Metrics;

/// Whether a store of this name is loaded, so its name may be a path label.
pub(crate) type KnownStore = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Records every HTTP request; for `axum::Router::layer`, which runs it after routing, so
/// the matched route is known.
#[derive(Clone)]
pub(crate) struct HttpMetricsLayer {
    metrics: Arc<Metrics>,
    known_store: KnownStore,
}

impl HttpMetricsLayer {
    pub(crate) fn new(metrics: Arc<Metrics>, known_store: KnownStore) -> Self {
        HttpMetricsLayer {
            metrics,
            known_store,
        }
    }
}

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetrics<S>;

    fn layer(&self, inner: S) -> HttpMetrics<S> {
        HttpMetrics {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct HttpMetrics<S> {
    inner: S,
    layer: HttpMetricsLayer,
}

type Boxed<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> Service<http::Request<B>> for HttpMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Body,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Boxed<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let method = daprd_method(request.method());
        let path = path_label(
            request.uri().path(),
            request
                .extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str),
            &*self.layer.known_store,
        );
        let request_bytes = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        let metrics = self.layer.metrics.clone();
        let answered = self.inner.call(request);
        Box::pin(async move {
            let response = answered.await?;
            let size = response.body().size_hint();
            metrics.daprd.http(&HttpRequest {
                method,
                path: &path,
                status: response.status().as_u16(),
                request_bytes,
                // dlockd's answers are whole in memory, so their size is known here.
                response_bytes: size.exact().unwrap_or(size.lower()),
                elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
            });
            Ok(response)
        })
    }
}

/// The method as daprd labels it: a standard verb, else `UNKNOWN`.
fn daprd_method(method: &http::Method) -> &'static str {
    const VERBS: [&str; 9] = [
        "GET", "PUT", "POST", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    VERBS
        .into_iter()
        .find(|verb| *verb == method.as_str())
        .unwrap_or("UNKNOWN")
}

/// The path label: the path itself (daprd's default), but only for a route dlockd serves, and
/// with a store name only when that store is loaded. Every route naming a store ends with it.
fn path_label(path: &str, route: Option<&str>, known_store: &dyn Fn(&str) -> bool) -> String {
    match route {
        None => String::new(),
        Some(route) if route.ends_with("{store}") => {
            let store = path.rsplit('/').next().unwrap_or_default();
            if known_store(store) {
                path.to_string()
            } else {
                route.to_string()
            }
        }
        Some(route) => route.to_string(),
    }
}

/// Records every gRPC call when its response has been sent whole (or the client went away),
/// with the status from the response's trailers.
#[derive(Clone)]
pub(crate) struct GrpcMetricsLayer {
    metrics: Arc<Metrics>,
}

impl GrpcMetricsLayer {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        GrpcMetricsLayer { metrics }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct GrpcMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

type Answer = http::Response<tonic::body::Body>;

impl<S, B> Service<http::Request<B>> for GrpcMetrics<S>
where
    S: Service<http::Request<Counted<B>>, Response = Answer, Error = Infallible>,
    S::Future: Send + 'static,
    B: Body,
{
    type Response = Answer;
    type Error = Infallible;
    type Future = Boxed<Answer, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let call = Arc::new(Call {
            metrics: self.metrics.clone(),
            method: request.uri().path().to_string(),
            started: Instant::now(),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            status: Mutex::new(None),
        });
        let request = request.map(|body| Counted {
            inner: body,
            call: call.clone(),
            direction: Direction::Received,
        });
        let answered = self.inner.call(request);
        Box::pin(async move {
            let response = answered.await?;
            // A trailers-only answer (an error) carries its status in the head.
            if let Some(status) = grpc_status(response.headers()) {
                call.set_status(status);
            }
            Ok(response.map(|body| {
                tonic::body::Body::new(Counted {
                    inner: body,
                    call,
                    direction: Direction::Sent,
                })
            }))
        })
    }
}

/// One gRPC call in flight; recorded when the last body holding it is dropped.
struct Call {
    metrics: Arc<Metrics>,
    method: String,
    started: Instant,
    received: AtomicU64,
    sent: AtomicU64,
    status: Mutex<Option<tonic::Code>>,
}

impl Call {
    fn set_status(&self, code: tonic::Code) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = Some(code);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // No status: the response never ended (the client went away), which gRPC calls
        // cancelled.
        let code = self
            .status
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(tonic::Code::Cancelled);
        if code == tonic::Code::Unimplemented {
            return;
        }
        self.metrics.daprd.grpc(&GrpcCall {
            method: &self.method,
            status: go_code_name(code),
            received_bytes: *self.received.get_mut(),
            sent_bytes: *self.sent.get_mut(),
            elapsed_ms: self.started.elapsed().as_secs_f64() * 1000.0,
        });
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    Some(tonic::Code::from_i32(value))
}

/// A status code's name as grpc-go's `Code.String()` spells it, which daprd's label shows.
fn go_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Received,
    Sent,
}

/// A gRPC body that counts its bytes for its call, and reads the status from its trailers.
pub(crate) struct Counted<B> {
    inner: B,
    call: Arc<Call>,
    direction: Direction,
}

impl<B: Body + Unpin> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let counter = match self.direction {
                    Direction::Received => &self.call.received,
                    Direction::Sent => &self.call.sent,
                };
                counter.fetch_add(data.remaining() as u64, Ordering::Relaxed);
            } else if let Some(status) = frame.trailers_ref().and_then(grpc_status) {
                self.call.set_status(status);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_label_names_only_routes_served_and_stores_loaded() {
        let known = |store: &str| store == "lockstore";
        let lock = Some("/v1.0-alpha1/lock/{store}");
        assert_eq!(
            path_label("/v1.0-alpha1/lock/lockstore", lock, &known),
            "/v1.0-alpha1/lock/lockstore"
        );
        assert_eq!(
            path_label("/v1.0-alpha1/lock/random-123", lock, &known),
            "/v1.0-alpha1/lock/{store}"
        );
        assert_eq!(
            path_label("/v1.0/healthz", Some("/v1.0/healthz"), &known),
            "/v1.0/healthz"
        );
        assert_eq!(path_label("/wp-admin/x.php", None, &known), "");
    }

    #[test]
    fn methods_and_codes_are_spelled_as_daprd_spells_them() {
        assert_eq!(daprd_method(&http::Method::POST), "POST");
        let odd = http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(daprd_method(&odd), "UNKNOWN");
        assert_eq!(go_code_name(tonic::Code::Ok), "OK");
        assert_eq!(go_code_name(tonic::Code::Cancelled), "Canceled");
    }
}
