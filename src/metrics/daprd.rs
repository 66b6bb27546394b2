//! daprd's own metrics for the requests dlockd serves, with daprd's names, labels and buckets,
//! so a dashboard or alert written for daprd shows dlockd unchanged. daprd records them with
//! OpenCensus and exposes them through its Prometheus exporter in the classic text format,
//! which keeps a counter's name as it is (no `_total`): `dapr_grpc_io_server_completed_rpcs`,
//! `dapr_http_server_request_count`. daprd's HTTP metrics run in its default "increased
//! cardinality" mode, which labels each request with its path and also counts responses.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// daprd's latency buckets, in milliseconds (`spec.metric.latencyDistributionBuckets` unset).
const LATENCY_MS: [f64; 34] = [
    1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 13.0, 16.0, 20.0, 25.0, 30.0, 40.0, 50.0, 65.0, 80.0,
    100.0, 130.0, 160.0, 200.0, 250.0, 300.0, 400.0, 500.0, 650.0, 800.0, 1_000.0, 2_000.0,
    5_000.0, 10_000.0, 20_000.0, 50_000.0, 100_000.0,
];

/// daprd's size buckets, in bytes: 1 KiB to 4 GiB.
const SIZE_BYTES: [f64; 13] = [
    1024.0,
    2048.0,
    4096.0,
    16384.0,
    65536.0,
    262144.0,
    1048576.0,
    4194304.0,
    16777216.0,
    67108864.0,
    268435456.0,
    1073741824.0,
    4294967296.0,
];

/// One HTTP request as daprd's middleware records it.
pub(crate) struct HttpRequest<'a> {
    pub(crate) method: &'a str,
    /// The path label (`super::layers` decides it).
    pub(crate) path: &'a str,
    pub(crate) status: u16,
    /// The request's Content-Length, as daprd reads it (0 without one).
    pub(crate) request_bytes: u64,
    pub(crate) response_bytes: u64,
    pub(crate) elapsed_ms: f64,
}

/// One gRPC call as daprd's server interceptor records it.
pub(crate) struct GrpcCall<'a> {
    /// The full method, `/dapr.proto.runtime.v1.Dapr/TryLockAlpha1`.
    pub(crate) method: &'a str,
    /// The status code's name as Go's gRPC spells it (`OK`, `InvalidArgument`).
    pub(crate) status: &'a str,
    pub(crate) received_bytes: u64,
    pub(crate) sent_bytes: u64,
    pub(crate) elapsed_ms: f64,
}

pub(crate) struct Daprd {
    http_request_count: IntCounterVec,
    http_response_count: IntCounterVec,
    http_latency: HistogramVec,
    http_request_bytes: HistogramVec,
    http_response_bytes: HistogramVec,
    grpc_completed_rpcs: IntCounterVec,
    grpc_latency: HistogramVec,
    grpc_received_bytes: HistogramVec,
    grpc_sent_bytes: HistogramVec,
}

impl Daprd {
    /// The families, registered in `registry` (whose constant label is `app_id`).
    pub(crate) fn new(registry: &Registry) -> prometheus::Result<Self> {
        let http = ["method", "path", "status"];
        let grpc = ["grpc_server_method", "grpc_server_status"];
        Ok(Daprd {
            http_request_count: counter(
                registry,
                "dapr_http_server_request_count",
                "HTTP requests served, by method, path and status.",
                &http,
            )?,
            http_response_count: counter(
                registry,
                "dapr_http_server_response_count",
                "HTTP responses sent, by method, path and status.",
                &http,
            )?,
            http_latency: histogram(
                registry,
                "dapr_http_server_latency",
                "Time from an HTTP request's arrival to its response, in milliseconds.",
                &LATENCY_MS,
                &http,
            )?,
            http_request_bytes: histogram(
                registry,
                "dapr_http_server_request_bytes",
                "HTTP request bodies' sizes as their Content-Length gives them, in bytes.",
                &SIZE_BYTES,
                &[],
            )?,
            http_response_bytes: histogram(
                registry,
                "dapr_http_server_response_bytes",
                "HTTP response bodies' sizes, in bytes.",
                &SIZE_BYTES,
                &[],
            )?,
            grpc_completed_rpcs: counter(
                registry,
                "dapr_grpc_io_server_completed_rpcs",
                "gRPC calls completed, by method and status.",
                &grpc,
            )?,
            grpc_latency: histogram(
                registry,
                "dapr_grpc_io_server_server_latency",
                "Time from a gRPC call's arrival to the end of its response, in milliseconds.",
                &LATENCY_MS,
                &grpc,
            )?,
            grpc_received_bytes: histogram(
                registry,
                "dapr_grpc_io_server_received_bytes_per_rpc",
                "Bytes a gRPC call received, its messages as framed.",
                &SIZE_BYTES,
                &grpc[..1],
            )?,
            grpc_sent_bytes: histogram(
                registry,
                "dapr_grpc_io_server_sent_bytes_per_rpc",
                "Bytes a gRPC call sent, its messages as framed.",
                &SIZE_BYTES,
                &grpc[..1],
            )?,
        })
    }

    pub(crate) fn http(&self, request: &HttpRequest<'_>) {
        let status = request.status.to_string();
        let labels = [request.method, request.path, &status];
        self.http_request_count.with_label_values(&labels).inc();
        self.http_response_count.with_label_values(&labels).inc();
        self.http_latency
            .with_label_values(&labels)
            .observe(request.elapsed_ms);
        let none: [&str; 0] = [];
        self.http_request_bytes
            .with_label_values(&none)
            .observe(request.request_bytes as f64);
        self.http_response_bytes
            .with_label_values(&none)
            .observe(request.response_bytes as f64);
    }

    pub(crate) fn grpc(&self, call: &GrpcCall<'_>) {
        let labels = [call.method, call.status];
        self.grpc_completed_rpcs.with_label_values(&labels).inc();
        self.grpc_latency
            .with_label_values(&labels)
            .observe(call.elapsed_ms);
        self.grpc_received_bytes
            .with_label_values(&[call.method])
            .observe(call.received_bytes as f64);
        self.grpc_sent_bytes
            .with_label_values(&[call.method])
            .observe(call.sent_bytes as f64);
    }
}

/// A counter family, registered.
pub(super) fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let family = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(family.clone()))?;
    Ok(family)
}

/// A histogram family with these buckets, registered.
pub(super) fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
    labels: &[&str],
) -> prometheus::Result<HistogramVec> {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let family = HistogramVec::new(opts, labels)?;
    registry.register(Box::new(family.clone()))?;
    Ok(family)
}
