//! Bounds on the connections clients hold, so that slow, idle or simply many clients can't
//! take the sidecar's file descriptors and leave the application's own calls unanswered.
//!
//! - A cap on open connections (`--max-connections`), shared by the HTTP and gRPC ports. A
//!   connection over it is accepted and closed at once, which frees its descriptor and tells
//!   the client now, rather than leaving it in the listen queue.
//! - On the HTTP port, a request must arrive whole (head and body) within
//!   `--http-header-read-timeout` of its first byte, and a connection with no request for
//!   `--http-idle-timeout` is closed. hyper's own header timeout can't be used for this: it
//!   also runs while a kept-alive connection waits for its next request, so it would close
//!   every idle connection as early as a slow one.
//! - gRPC connections are HTTP/2 channels that SDKs keep open for the life of the app and use
//!   for long blocking acquires: they count against the cap but are never closed for idling.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

/// The most an HTTP/1 connection's read buffer grows to, and so the largest request head (its
/// request line and headers) accepted: a larger one is answered 431. hyper's default, about
/// 400 KiB per connection, let a burst of clients sending huge heads over thousands of
/// connections hold hundreds of MiB; 64 KiB is still 16 times what daprd reads
/// (`--dapr-http-read-buffer-size`, 4 KiB). Bodies are read through it in pieces, whatever
/// their size.
pub(crate) const MAX_READ_BUFFER: usize = 64 * 1024;

/// The bounds, from dlockd's flags.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// HTTP/2 ping interval and timeout, and TCP keepalive idle time (`--client-keepalive`).
    pub keepalive: Duration,
    /// Open requests per HTTP/2 connection (`--max-streams-per-connection`).
    pub max_streams: u32,
}

/// The places left under the connection cap.
#[derive(Clone)]
pub(crate) struct Cap {
    places: Arc<Semaphore>,
    max: usize,
}

impl Cap {
    pub(crate) fn new(max: usize) -> Cap {
        Cap {
            places: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// A place for a new connection, held while it is open; none when the cap is reached.
    pub(crate) fn admit(&self) -> Option<OwnedSemaphorePermit> {
        let place = self.places.clone().try_acquire_owned().ok();
        if place.is_none() {
            tracing::warn!(
                "refused a connection: {} are open, the most --max-connections allows",
                self.max
            );
        }
        place
    }
}

/// A connection's IO, holding its place under the cap for as long as it is open.
pub(crate) struct Admitted<IO> {
    pub(crate) io: IO,
    _place: OwnedSemaphorePermit,
}

impl<IO> Admitted<IO> {
    pub(crate) fn new(io: IO, place: OwnedSemaphorePermit) -> Self {
        Admitted { io, _place: place }
    }
}

impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected for Admitted<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Admitted<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Admitted<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// What one HTTP connection is doing, in milliseconds since it opened (0: not at all).
struct Activity {
    opened: Instant,
    /// When the first byte of a request not yet read whole arrived.
    reading_since: AtomicU64,
    /// When the connection last had nothing to do: opened, or answered its last request.
    quiet_since: AtomicU64,
    in_flight: AtomicUsize,
    /// Wakes the watchdog when a request starts arriving, which may bring its deadline closer.
    started: Notify,
}

impl Activity {
    fn now(&self) -> u64 {
        // At least 1, so that 0 keeps meaning "not".
        self.opened.elapsed().as_millis() as u64 + 1
    }

    fn at(&self, millis: u64) -> Instant {
        self.opened + Duration::from_millis(millis - 1)
    }

    /// Bytes arrived from the client.
    fn received(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self
                .reading_since
                .compare_exchange(0, self.now(), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.started.notify_one();
        }
    }

    /// The connection's next deadline, or none while a request is being served.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        match self.reading_since.load(Ordering::Acquire) {
            0 if self.in_flight.load(Ordering::Acquire) > 0 => None,
            0 => Some(self.at(self.quiet_since.load(Ordering::Acquire)) + limits.idle_timeout),
            since => Some(self.at(since) + limits.header_read_timeout),
        }
    }

    /// Resolves when the connection has overstayed: a request still arriving after the
    /// header-read timeout, or nothing asked for the idle timeout.
    async fn overstayed(&self, limits: ConnectionLimits) {
        loop {
            let started = self.started.notified();
            match self.deadline(&limits) {
                Some(deadline) if deadline <= Instant::now() => return,
                Some(deadline) => tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = started => {}
                },
                None => started.await,
            }
        }
    }
}

/// Marks, on the request it rides in, when the request has been read whole: the body
/// extractor calls it, and from then on serving it may take as long as it takes (a blocking
/// acquire waits).
#[derive(Clone)]
pub(crate) struct RequestRead(Arc<Activity>);

impl RequestRead {
    pub(crate) fn done(&self) {
        self.0.reading_since.store(0, Ordering::Release);
    }
}

/// The connection's IO, reporting each read that brought bytes.
struct Watched<IO> {
    io: IO,
    activity: Arc<Activity>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.received();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Serves one HTTP connection with `router` until the client closes it, it overstays its
/// limits (then it is closed without an answer, as a slow client gets nowhere anyway), or
/// `stopped` resolves (then it finishes the request in flight and closes).
pub(crate) async fn serve_http(
    io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    router: Router,
    limits: ConnectionLimits,
    stopped: impl Future<Output = ()>,
) {
    let activity = Arc::new(Activity {
        opened: Instant::now(),
        reading_since: AtomicU64::new(0),
        quiet_since: AtomicU64::new(1),
        in_flight: AtomicUsize::new(0),
        started: Notify::new(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let activity = activity.clone();
            activity.in_flight.fetch_add(1, Ordering::AcqRel);
            request
                .extensions_mut()
                .insert(RequestRead(activity.clone()));
            let answer = router.clone().oneshot(request);
            async move {
                let answer = answer.await;
                activity.reading_since.store(0, Ordering::Release);
                activity
                    .quiet_since
                    .store(activity.now(), Ordering::Release);
                activity.in_flight.fetch_sub(1, Ordering::AcqRel);
                answer
            }
        })
    };
    let io = TokioIo::new(Watched {
        io,
        activity: activity.clone(),
    });
    // HTTP/1.1, and HTTP/2 for a client that starts with its preface (daprd serves both; a
    // gRPC client pointed here by mistake then gets a 404 it can report).
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The watchdog below bounds reading; hyper's timer would also cut idle connections.
        .header_read_timeout(None)
        .max_buf_size(MAX_READ_BUFFER);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams)
        .keep_alive_interval(limits.keepalive)
        .keep_alive_timeout(limits.keepalive);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = activity.overstayed(limits) => {}
        () = stopped => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// The status line of the answer to a request whose head carries a header of `size` bytes.
    async fn status_with_header_of(size: usize) -> String {
        let (client, server) = tokio::io::duplex(1 << 20);
        let router = Router::new().route("/", get(|| async { "ok" }));
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            max_connections: 1,
            keepalive: Duration::from_secs(10),
            max_streams: 1,
        };
        let served = tokio::spawn(serve_http(server, router, limits, std::future::pending()));
        let (mut read, mut write) = tokio::io::split(client);
        let request = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(size)
        );
        write.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        read.read_to_end(&mut answer).await.unwrap();
        served.abort();
        let answer = String::from_utf8_lossy(&answer);
        answer.lines().next().unwrap_or_default().to_string()
    }

    #[tokio::test]
    async fn a_request_head_larger_than_the_read_buffer_is_refused_and_a_smaller_one_served() {
        assert_eq!(
            status_with_header_of(MAX_READ_BUFFER - 4096).await,
            "HTTP/1.1 200 OK"
        );
        assert_eq!(
            status_with_header_of(MAX_READ_BUFFER + 4096).await,
            "HTTP/1.1 431 Request Header Fields Too Large"
        );
        // What hyper took before the bound: a head of a few hundred KiB per connection.
        assert_eq!(
            status_with_header_of(300 * 1024).await,
            "HTTP/1.1 431 Request Header Fields Too Large"
        );
    }
}
