//! A small HTTP/1.1 JSON client for Dapr's HTTP API, used by `dlock bench` and the tests.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A keep-alive client bound to one sidecar.
#[derive(Clone)]
pub struct HttpClient {
    base: String,
    token: Option<String>,
    inner: Client<HttpConnector, Full<Bytes>>,
}

/// A response: status and body, and for the tests its content type.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    #[cfg(feature = "test-support")]
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl HttpClient {
    /// `base` is `http://host:port`; `token` is sent as `dapr-api-token`.
    pub fn new(base: &str, token: Option<String>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        HttpClient {
            base: base.trim_end_matches('/').to_string(),
            token,
            inner: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    pub async fn post(&self, path: &str, body: impl Into<Bytes>) -> Result<Answer, String> {
        self.send("POST", path, body.into(), &[]).await
    }

    /// A POST with extra headers (such as `dlock-admin-token`).
    #[cfg(feature = "test-support")]
    pub async fn post_with(
        &self,
        path: &str,
        body: impl Into<Bytes>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, String> {
        self.send("POST", path, body.into(), headers).await
    }

    #[cfg(feature = "test-support")]
    pub async fn get(&self, path: &str) -> Result<Answer, String> {
        self.send("GET", path, Bytes::new(), &[]).await
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Bytes,
        headers: &[(&str, &str)],
    ) -> Result<Answer, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(token) = &self.token {
            request = request.header("dapr-api-token", token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        let response = self.inner.request(request).await.map_err(|e| {
            format!(
                "HTTP request to {} failed: {}",
                self.base,
                super::connect::source_text(&e)
            )
        })?;
        let status = response.status().as_u16();
        #[cfg(feature = "test-support")]
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Answer {
            status,
            #[cfg(feature = "test-support")]
            content_type,
            body,
        })
    }
}
