//! The Prometheus tools the metrics tests use: `promtool check metrics`, and a Prometheus
//! server a test starts, scraping one sidecar every second, on the port scripts/test.sh gives
//! it (shifted by DLOCK_TEST_PORT_OFFSET), with its data under the test temp dir. Both come
//! from Debian's `prometheus` package, found through the variables scripts/test.sh sets.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dlock::cli::http_client::HttpClient;

use super::dlockd::temp_dir;
use super::servers::shared;

/// What `promtool check metrics` said of `text`: its exit code and the problems it printed.
pub fn promtool_check(text: &str) -> (i32, String) {
    let mut promtool = Command::new(shared("DLOCK_TEST_PROMTOOL"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), said)
}

/// A Prometheus server; killed when dropped.
pub struct Prometheus {
    child: Child,
    client: HttpClient,
}

impl Prometheus {
    /// Starts a server scraping `target` (`host:port`) every second, and waits until it is
    /// ready.
    pub async fn scraping(target: &str) -> Prometheus {
        let dir = temp_dir("prometheus");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
                 - job_name: dlockd\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let address = format!("127.0.0.1:{}", shared("DLOCK_TEST_PROMETHEUS_PORT"));
        let child = Command::new(shared("DLOCK_TEST_PROMETHEUS"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus starts");
        let prometheus = Prometheus {
            child,
            client: HttpClient::new(&format!("http://{address}"), None),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(answer) = prometheus.client.get("/-/ready").await {
                if answer.status == 200 {
                    return prometheus;
                }
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready on {address}; its log: {}",
                std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The value of an instant query that gives one series, through the HTTP query API; None
    /// while it gives none.
    pub async fn query(&self, promql: &str) -> Option<f64> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let answer = self.client.get(&path).await.ok()?;
        assert_eq!(
            answer.status,
            200,
            "{promql}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        let json = answer.json();
        assert_eq!(json["status"], "success", "{json}");
        let results = json["data"]["result"].as_array()?;
        assert!(results.len() <= 1, "{promql}: several series: {json}");
        results.first()?["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
