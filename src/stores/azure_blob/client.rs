//! Every call this store makes to Azure Blob Storage, straight over its REST API: the store's
//! logic sees typed operations (read a blob's properties, create it, write its metadata under
//! conditions, take, release or break its lease, list by prefix, create the container) and
//! never HTTP, so another client could replace this module alone.
//!
//! Why our own client rather than an SDK crate (issue 11 §5, its criteria in order):
//! - connection strings and account keys: the official `azure_storage_blob` 1.x has neither
//!   (no shared-key credential, no connection strings), so it cannot serve the portal's
//!   connection string that is how this store's users connect; the older `azure_storage_blobs`
//!   has both;
//! - a real emulator: Shared Key signing is what Azurite checks, and we test against it;
//! - maintained: `azure_storage_blobs` (0.21, October 2024) lives on the SDK's `legacy` branch
//!   and gets no further releases; the dozen requests we need are a stable, documented API
//!   we maintain here in a few hundred lines;
//! - light: `azure_storage_blobs` brings `azure_core` 0.21, `reqwest`, an XML parser and the
//!   generated `azure_svc_blobstorage`; this module adds only `hyper-rustls` to what dlock
//!   already builds (hyper, rustls, ring for HMAC-SHA256, base64, httpdate).
//!
//! Requests are authorised with the account key (Shared Key: an HMAC-SHA256 of the request's
//! canonical form, `shared_key.rs`) or carry a SAS token. Every response's `Date` feeds the
//! service clock (`clock.rs`).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Bytes;
use hyper::header::HeaderMap;
use hyper::{Method, Request};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::account::Credential;
use super::clock::ServiceClock;
use super::settings::Settings;
use super::shared_key;
use crate::lock::StoreError;

/// The REST API version asked for: recent enough for every operation used, old enough for
/// every Azurite in use.
const API_VERSION: &str = "2021-12-02";

pub(crate) struct BlobClient {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    account: String,
    credential: Credential,
    /// `scheme://host[:port]` of the blob endpoint.
    origin: String,
    /// The URL path of the container, e.g. `/devstoreaccount1/locks` or `/locks`.
    container_path: String,
    timeout: Duration,
    pub(crate) clock: ServiceClock,
}

/// The most of an answer's body the store reads. The longest answer it asks for, a page of a
/// listing (at most 5,000 names of at most 1,024 characters, in XML), stays well under it; a
/// longer one is not read into memory.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// Reads a body of at most `limit` bytes; a longer one is an error saying so, read no further.
async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, String>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(format!(
            "answered with a body longer than {limit} bytes, which the store does not read"
        )),
        Err(e) => Err(format!("cut the answer: {e}")),
    }
}

/// Why a request got no usable answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No answer: the service could not be reached or did not answer in time.
    Unreachable(String),
    /// An answer the store did not expect, with Azure's error code.
    Refused { status: u16, code: String },
}

impl Failure {
    /// Whether the service refused the credential (a wrong key, an expired or too narrow SAS).
    pub(crate) fn is_auth(&self) -> bool {
        matches!(
            self,
            Failure::Refused {
                status: 401 | 403,
                ..
            }
        )
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unreachable(reason) => write!(f, "{reason}"),
            Failure::Refused { status, code } => {
                write!(f, "Azure Blob Storage answered {status} {code}")
            }
        }
    }
}

impl std::error::Error for Failure {}

impl From<Failure> for StoreError {
    fn from(failure: Failure) -> StoreError {
        match failure {
            Failure::Unreachable(_) | Failure::Refused { status: 500.., .. } => {
                StoreError::unavailable(failure.to_string()).with_source(failure)
            }
            Failure::Refused { .. } => StoreError::failed(failure.to_string()).with_source(failure),
        }
    }
}

/// A blob's properties as the store needs them.
pub(crate) struct Properties {
    pub(crate) etag: String,
    /// The blob has an active lease (leased, or breaking).
    pub(crate) leased: bool,
    pub(crate) metadata: HashMap<String, String>,
}

/// The answer to a write under conditions.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// Done; the blob's ETag after it.
    Done(String),
    /// A condition did not hold: the ETag moved, or the lease is another's or gone.
    Conflict,
}

/// What to do with a blob's lease.
pub(crate) enum LeaseAction<'a> {
    /// Take a lease that lasts until released or broken, with this id.
    Acquire(&'a str),
    Release(&'a str),
    /// End whoever's lease at once.
    Break,
}

struct Response {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Response {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn refused(&self) -> Failure {
        Failure::Refused {
            status: self.status,
            code: self.header("x-ms-error-code").to_string(),
        }
    }

    /// The answer to a conditional write: done, a failed condition, or a failure.
    fn written(self) -> Result<Written, Failure> {
        match self.status {
            200..=299 => Ok(Written::Done(self.header("etag").to_string())),
            404 | 409 | 412 => Ok(Written::Conflict),
            _ => Err(self.refused()),
        }
    }
}

impl BlobClient {
    pub(crate) fn new(settings: &Settings) -> Result<BlobClient, String> {
        let endpoint = &settings.account.blob_endpoint;
        let (scheme, rest) = endpoint
            .split_once("://")
            .ok_or_else(|| format!("'{endpoint}' is not a URL"))?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let provider = rustls::crypto::ring::default_provider();
        let builder = HttpsConnectorBuilder::new();
        let builder = if scheme == "https" {
            builder
                .with_provider_and_native_roots(provider)
                .map_err(|e| format!("no trusted root certificates for https: {e}"))?
        } else {
            // Plain http (the emulator): TLS is never used, so no roots are needed.
            let config = rustls::ClientConfig::builder_with_provider(provider.into())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            builder.with_tls_config(config)
        };
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_connect_timeout(Some(settings.request_timeout));
        let connector = builder.https_or_http().enable_http1().wrap_connector(http);
        let path = path.trim_end_matches('/');
        let container_path = if path.is_empty() {
            format!("/{}", settings.container)
        } else {
            format!("/{path}/{}", settings.container)
        };
        Ok(BlobClient {
            http: Client::builder(TokioExecutor::new()).build(connector),
            account: settings.account.name.clone(),
            credential: settings.account.credential.clone(),
            origin: format!("{scheme}://{host}"),
            container_path,
            timeout: settings.request_timeout,
            clock: ServiceClock::new(),
        })
    }

    /// The container's URL, for messages.
    /// `scheme://host[:port]` of the blob endpoint: never a credential.
    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    pub(crate) fn container_url(&self) -> String {
        format!("{}{}", self.origin, self.container_path)
    }

    /// Creates the container; true when it was created, false when it existed.
    pub(crate) async fn create_container(&self) -> Result<bool, Failure> {
        let answer = self
            .send(Method::PUT, None, &[("restype", "container")], Vec::new())
            .await?;
        match (answer.status, answer.header("x-ms-error-code")) {
            (201, _) => Ok(true),
            (409, "ContainerAlreadyExists") => Ok(false),
            _ => Err(answer.refused()),
        }
    }

    /// Asks for the container's properties, a cheap request whose answer carries the time:
    /// whether the container exists.
    pub(crate) async fn probe(&self) -> Result<bool, Failure> {
        let answer = self
            .send(Method::HEAD, None, &[("restype", "container")], Vec::new())
            .await?;
        match answer.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(answer.refused()),
        }
    }

    /// The blob's properties; `None` when it does not exist.
    pub(crate) async fn properties(&self, blob: &str) -> Result<Option<Properties>, Failure> {
        let answer = self.send(Method::HEAD, Some(blob), &[], Vec::new()).await?;
        match answer.status {
            200 => {}
            404 => return Ok(None),
            _ => return Err(answer.refused()),
        }
        let metadata = answer
            .headers
            .iter()
            .filter_map(|(name, value)| {
                let name = name.as_str().strip_prefix("x-ms-meta-")?;
                Some((name.to_string(), value.to_str().ok()?.to_string()))
            })
            .collect();
        Ok(Some(Properties {
            etag: answer.header("etag").to_string(),
            leased: matches!(answer.header("x-ms-lease-state"), "leased" | "breaking"),
            metadata,
        }))
    }

    /// Creates an empty blob unless one exists (a concurrent creator may win: either way, the
    /// blob exists afterwards). Creates the container first if it is missing.
    pub(crate) async fn create(&self, blob: &str) -> Result<(), Failure> {
        for _ in 0..2 {
            let headers = vec![
                ("x-ms-blob-type", "BlockBlob".to_string()),
                ("if-none-match", "*".to_string()),
            ];
            let answer = self.send(Method::PUT, Some(blob), &[], headers).await?;
            match (answer.status, answer.header("x-ms-error-code")) {
                (201, _) | (409, _) | (412, _) => return Ok(()),
                (404, "ContainerNotFound") => {
                    self.create_container().await?;
                }
                _ => return Err(answer.refused()),
            }
        }
        Err(Failure::Unreachable(
            "the container vanished as it was created".into(),
        ))
    }

    /// Replaces the blob's metadata if its ETag is still `if_match` (and, with a lease id,
    /// if that lease is the blob's active one).
    pub(crate) async fn set_metadata(
        &self,
        blob: &str,
        metadata: &[(&str, String)],
        lease_id: Option<&str>,
        if_match: &str,
    ) -> Result<Written, Failure> {
        let names: Vec<String> = metadata
            .iter()
            .map(|(name, _)| format!("x-ms-meta-{name}"))
            .collect();
        let mut headers: Vec<(&str, String)> = names
            .iter()
            .map(String::as_str)
            .zip(metadata.iter().map(|(_, value)| value.clone()))
            .collect();
        headers.push(("if-match", if_match.to_string()));
        if let Some(id) = lease_id {
            headers.push(("x-ms-lease-id", id.to_string()));
        }
        self.send(Method::PUT, Some(blob), &[("comp", "metadata")], headers)
            .await?
            .written()
    }

    /// Acts on the blob's lease, if its ETag is still `if_match` where one is given.
    pub(crate) async fn lease(
        &self,
        blob: &str,
        action: LeaseAction<'_>,
        if_match: Option<&str>,
    ) -> Result<Written, Failure> {
        let mut headers = match action {
            LeaseAction::Acquire(id) => vec![
                ("x-ms-lease-action", "acquire".to_string()),
                ("x-ms-lease-duration", "-1".to_string()),
                ("x-ms-proposed-lease-id", id.to_string()),
            ],
            LeaseAction::Release(id) => vec![
                ("x-ms-lease-action", "release".to_string()),
                ("x-ms-lease-id", id.to_string()),
            ],
            LeaseAction::Break => vec![
                ("x-ms-lease-action", "break".to_string()),
                ("x-ms-lease-break-period", "0".to_string()),
            ],
        };
        if let Some(etag) = if_match {
            headers.push(("if-match", etag.to_string()));
        }
        self.send(Method::PUT, Some(blob), &[("comp", "lease")], headers)
            .await?
            .written()
    }

    /// The names of the blobs whose names start with `prefix`, every page of them.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<String>, Failure> {
        let mut names = Vec::new();
        let mut marker = String::new();
        loop {
            let mut query = vec![
                ("restype", "container"),
                ("comp", "list"),
                ("prefix", prefix),
            ];
            if !marker.is_empty() {
                query.push(("marker", &marker));
            }
            let answer = self.send(Method::GET, None, &query, Vec::new()).await?;
            if answer.status != 200 {
                return Err(answer.refused());
            }
            let text = String::from_utf8_lossy(&answer.body);
            names.extend(elements(&text, "Name"));
            marker = elements(&text, "NextMarker").next().unwrap_or_default();
            if marker.is_empty() {
                return Ok(names);
            }
        }
    }

    /// Sends one request, signed or carrying the SAS, bounded by the request timeout.
    async fn send(
        &self,
        method: Method,
        blob: Option<&str>,
        query: &[(&str, &str)],
        headers: Vec<(&str, String)>,
    ) -> Result<Response, Failure> {
        let path = match blob {
            Some(blob) => format!("{}/{blob}", self.container_path),
            None => self.container_path.clone(),
        };
        let mut pairs: Vec<String> = query
            .iter()
            .map(|(name, value)| format!("{name}={}", url_encode(value)))
            .collect();
        let mut headers = headers;
        headers.push(("x-ms-version", API_VERSION.to_string()));
        headers.push(("x-ms-date", httpdate::fmt_http_date(SystemTime::now())));
        let has_body = method == Method::PUT;
        if has_body {
            headers.push(("content-length", "0".to_string()));
        }
        match &self.credential {
            Credential::Key(key) => {
                let signature =
                    shared_key::sign(key, &self.account, method.as_str(), &path, query, &headers);
                headers.push((
                    "authorization",
                    format!("SharedKey {}:{signature}", self.account),
                ));
            }
            Credential::Sas(token) => pairs.push(token.clone()),
        }
        let url = if pairs.is_empty() {
            format!("{}{path}", self.origin)
        } else {
            format!("{}{path}?{}", self.origin, pairs.join("&"))
        };
        let mut request = Request::builder().method(method).uri(&url);
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| Failure::Unreachable(format!("a request that can't be sent: {e}")))?;

        let sent = Instant::now();
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| {
                let mut reason = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(inner) = source {
                    reason = format!("{reason}: {inner}");
                    source = inner.source();
                }
                Failure::Unreachable(format!("{} unreachable: {reason}", self.origin))
            })?;
            let (parts, body) = response.into_parts();
            let body = read_body(body, MAX_ANSWER)
                .await
                .map_err(|reason| Failure::Unreachable(format!("{} {reason}", self.origin)))?;
            Ok(Response {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        let answer = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                Failure::Unreachable(format!(
                    "{} did not answer within {:?}",
                    self.origin, self.timeout
                ))
            })??;
        if let Some(date) = answer
            .headers
            .get("date")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
        {
            self.clock.observe(sent, Instant::now(), date);
        }
        Ok(answer)
    }
}

/// A query value in a URL: everything but unreserved characters percent-encoded.
fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The text of every `<tag>…</tag>` in an XML answer, entities decoded. The answers this
/// store reads (List Blobs) are flat enough that this is all the XML it needs.
fn elements<'a>(xml: &'a str, tag: &'a str) -> impl Iterator<Item = String> + 'a {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let end = start + rest[start..].find(&close)?;
        let text = &rest[start..end];
        rest = &rest[end + close.len()..];
        Some(
            text.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_markers_from_a_listing() {
        let xml = "<?xml version=\"1.0\"?><EnumerationResults><Prefix>a</Prefix><Blobs>\
                   <Blob><Name>a~7C1</Name><Properties/></Blob>\
                   <Blob><Name>a&amp;b</Name></Blob></Blobs>\
                   <NextMarker>2!8!x</NextMarker></EnumerationResults>";
        assert_eq!(elements(xml, "Name").collect::<Vec<_>>(), ["a~7C1", "a&b"]);
        assert_eq!(elements(xml, "NextMarker").next().as_deref(), Some("2!8!x"));
        assert_eq!(elements("<NextMarker />", "NextMarker").next(), None);
        assert_eq!(url_encode("2!8 x/~"), "2%218%20x%2F~");
    }

    #[tokio::test]
    async fn an_answer_longer_than_the_limit_is_refused_unread() {
        let body = || Full::new(Bytes::from(vec![b'x'; 11]));
        assert_eq!(read_body(body(), 11).await.unwrap().len(), 11);
        let refused = read_body(body(), 10).await.unwrap_err();
        assert!(refused.contains("longer than 10 bytes"), "{refused}");
    }
}
