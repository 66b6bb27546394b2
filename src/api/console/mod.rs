//! The console: a web page on the HTTP port, at `/dlock/console`, that shows the sidecar's
//! stores, the held locks of each whole store with a countdown, and a feed of what this
//! sidecar saw, and can force-release a lock. It is three files built into the binary (no
//! CDN: servers are often air-gapped), and it holds no data itself: it loads without the API
//! token, asks for it when a data call says 401, and reads everything through the public
//! `/dlock/v1/` calls, which the token guards.

use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::ApiState;

const PAGE: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("console.js");
const STYLE: &str = include_str!("console.css");

/// The page's own files only: no inline script or style, no other origin, no framing (the
/// page handles tokens).
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; \
    base-uri 'none'";

pub(crate) fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route(
            "/dlock/console",
            get(|| file("text/html; charset=utf-8", PAGE)),
        )
        .route(
            "/dlock/console/console.js",
            get(|| file("text/javascript; charset=utf-8", SCRIPT)),
        )
        .route(
            "/dlock/console/console.css",
            get(|| file("text/css; charset=utf-8", STYLE)),
        )
}

async fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            // A new dlockd brings a new page: never a stale script against a newer API.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}
