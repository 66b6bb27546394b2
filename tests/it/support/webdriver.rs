//! A real headless Chromium driven over WebDriver (W3C, HTTP and JSON), for the console's
//! tests: just the calls they make. Each `Browser` starts its own chromedriver on a loopback
//! port of its own (scripts/test.sh's `DLOCK_TEST_CHROMEDRIVER_PORT`, shifted by DLOCK_TEST_PORT_OFFSET, plus one per
//! browser this process started), with a fresh profile under the test temp dir; dropping it
//! ends the session, which closes Chromium, and kills the driver.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use super::dlockd::temp_dir;
use super::servers::shared;

/// W3C's name for an element reference in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    http: Client<HttpConnector, Full<Bytes>>,
}

/// An element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium session, 1280×900.
    pub async fn start() -> Browser {
        static STARTED: AtomicU16 = AtomicU16::new(0);
        let base: u16 = shared("DLOCK_TEST_CHROMEDRIVER_PORT").parse().unwrap();
        let port = base + STARTED.fetch_add(1, Ordering::Relaxed);
        let driver = Command::new(shared("DLOCK_TEST_CHROMEDRIVER"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
            http: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while !browser.ready().await {
            assert!(
                Instant::now() < deadline,
                "chromedriver on {port} did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = temp_dir("chromium");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": shared("DLOCK_TEST_CHROMIUM"),
                "args": [
                    "--headless=new",
                    // CI runs as root, where Chromium's sandbox cannot start.
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let answer = browser.call("POST", "/session", Some(capabilities)).await;
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        browser
    }

    async fn ready(&self) -> bool {
        let request = Request::get(format!("http://127.0.0.1:{}/status", self.port))
            .body(Full::new(Bytes::new()))
            .unwrap();
        match self.http.request(request).await {
            Ok(response) => response.status().is_success(),
            Err(_) => false,
        }
    }

    /// One WebDriver call; its `value`. A WebDriver error fails the test.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (value, status) = self.try_call(method, path, body).await;
        assert!(status < 300, "WebDriver {method} {path}: {status} {value}");
        value
    }

    async fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> (Value, u16) {
        let uri = format!("http://127.0.0.1:{}{path}", self.port);
        let body = body.map_or(Bytes::new(), |b| Bytes::from(b.to_string()));
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Full::new(body))
            .unwrap();
        let response = self
            .http
            .request(request)
            .await
            .expect("chromedriver answers");
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (answer["value"].clone(), status)
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", &self.at("/url"), Some(json!({ "url": url })))
            .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page; its answer.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        let body = json!({ "script": script, "args": args });
        self.call("POST", &self.at("/execute/sync"), Some(body))
            .await
    }

    /// Runs `script` until it answers something other than null or false, within `timeout`;
    /// that answer. The page changes on its own schedule, so a test asks until it sees.
    pub async fn wait_for(&self, what: &str, script: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let answer = self.run(script, json!([])).await;
            if !matches!(answer, Value::Null | Value::Bool(false)) {
                return answer;
            }
            assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The element `css` selects; the test fails if there is none.
    pub async fn find(&self, css: &str) -> Element {
        let body = json!({ "using": "css selector", "value": css });
        let answer = self.call("POST", &self.at("/element"), Some(body)).await;
        let id = answer[ELEMENT].as_str();
        Element(
            id.unwrap_or_else(|| panic!("no {css}: {answer}"))
                .to_string(),
        )
    }

    pub async fn click(&self, element: &Element) {
        let path = self.at(&format!("/element/{}/click", element.0));
        self.call("POST", &path, Some(json!({}))).await;
    }

    /// Types `text` into `element`, after clearing it.
    pub async fn type_into(&self, element: &Element, text: &str) {
        let clear = self.at(&format!("/element/{}/clear", element.0));
        self.call("POST", &clear, Some(json!({}))).await;
        let path = self.at(&format!("/element/{}/value", element.0));
        self.call("POST", &path, Some(json!({ "text": text })))
            .await;
    }

    /// Saves a PNG of the window to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let answer = self.call("GET", &self.at("/screenshot"), None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(answer.as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Drop cannot await: ending the session (which closes Chromium) is a plain blocking
        // HTTP request on the loopback.
        if !self.session.is_empty() {
            if let Ok(mut driver) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = driver.set_read_timeout(Some(Duration::from_secs(10)));
                let request = format!(
                    "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                    self.session
                );
                if driver.write_all(request.as_bytes()).is_ok() {
                    let _ = std::io::Read::read_to_end(&mut driver, &mut Vec::new());
                }
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
