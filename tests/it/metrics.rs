//! dlockd's Prometheus metrics, read as Prometheus reads them: daprd's names and labels after
//! real HTTP and gRPC calls, dlock's own counters and gauges, `promtool check metrics` on the
//! output, a real Prometheus server scraping a sidecar, the switches that turn metrics off,
//! and a store outage seen in the health gauge.

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dlock::cli::http_client::HttpClient;

use crate::support::api::{Api, Protocol, SUCCESS};
use crate::support::backend::{unique, Backend};
use crate::support::dlockd::{temp_dir, Dlockd, Options};
use crate::support::prometheus::{promtool_check, Prometheus};
use crate::support::servers::free_port;

const TRY_LOCK: &str = "/dapr.proto.runtime.v1.Dapr/TryLockAlpha1";
/// daprd's counters, whose names lack the `_total` promtool asks of a counter: kept as daprd
/// has them, so that daprd's dashboards work.
const DAPRD_COUNTERS: [&str; 3] = [
    "dapr_grpc_io_server_completed_rpcs",
    "dapr_http_server_request_count",
    "dapr_http_server_response_count",
];

/// The metrics as a scrape gets them.
async fn scrape(sidecar: &Dlockd) -> String {
    let address = sidecar.metrics.as_ref().expect("metrics are on");
    let answer = HttpClient::new(address, None)
        .get("/metrics")
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    String::from_utf8(answer.body.to_vec()).unwrap()
}

/// The value of the sample `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = text
        .lines()
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let rest = series.strip_prefix(name)?.strip_prefix('{')?;
            labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
                .then(|| value.parse().unwrap())
        })
        .collect();
    assert!(
        found.len() <= 1,
        "{name} {labels:?}: several series:\n{text}"
    );
    found.first().copied()
}

/// A sidecar that served TryLock and Unlock over both protocols, granting, refusing and
/// failing; returns it with the resource ids and owners it was given.
async fn busy_sidecar() -> (Dlockd, [String; 4]) {
    let sidecar = Dlockd::start(Options::in_memory());
    let api = Api::new(&sidecar).await;
    let (http_lock, grpc_lock) = (unique("metrics-http"), unique("metrics-grpc"));
    let (owner, other) = (unique("owner-a"), unique("owner-b"));
    assert_eq!(
        api.lock(Protocol::Http, "store", &http_lock, &owner, 60)
            .await,
        Ok(true)
    );
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &grpc_lock, &owner, 60)
            .await,
        Ok(true)
    );
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &grpc_lock, &other, 60)
            .await,
        Ok(false)
    );
    assert!(api
        .lock(Protocol::Grpc, "no-such-store", &grpc_lock, &owner, 60)
        .await
        .is_err());
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &grpc_lock, &other)
            .await,
        Ok(2)
    );
    assert_eq!(
        api.unlock(Protocol::Http, "store", &http_lock, &owner)
            .await,
        Ok(SUCCESS)
    );
    (sidecar, [http_lock, grpc_lock, owner, other])
}

#[tokio::test]
async fn daprds_names_and_labels_count_http_and_grpc_calls() {
    let (sidecar, _) = busy_sidecar().await;
    let text = scrape(&sidecar).await;
    let app = ("app_id", "app");
    let try_lock = ("grpc_server_method", TRY_LOCK);
    let rpcs = "dapr_grpc_io_server_completed_rpcs";
    let ok = ("grpc_server_status", "OK");
    assert_eq!(
        sample(&text, rpcs, &[app, try_lock, ok]),
        Some(2.0),
        "{text}"
    );
    let invalid = ("grpc_server_status", "InvalidArgument");
    assert_eq!(sample(&text, rpcs, &[app, try_lock, invalid]), Some(1.0));
    let unlock = (
        "grpc_server_method",
        "/dapr.proto.runtime.v1.Dapr/UnlockAlpha1",
    );
    assert_eq!(sample(&text, rpcs, &[app, unlock, ok]), Some(1.0));
    assert!(text.contains(&format!("# TYPE {rpcs} counter\n")), "{text}");
    assert!(
        !text.contains("_total{grpc_server"),
        "daprd's names: {text}"
    );
    // daprd's millisecond buckets, up to 100 s.
    let latency = "dapr_grpc_io_server_server_latency_bucket";
    assert_eq!(
        sample(&text, latency, &[app, try_lock, ok, ("le", "100000")]),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, latency, &[app, try_lock, ok, ("le", "+Inf")]),
        Some(2.0)
    );
    for sizes in [
        "dapr_grpc_io_server_received_bytes_per_rpc_count",
        "dapr_grpc_io_server_sent_bytes_per_rpc_count",
    ] {
        assert_eq!(sample(&text, sizes, &[app, try_lock]), Some(3.0), "{sizes}");
    }
    let received = "dapr_grpc_io_server_received_bytes_per_rpc_sum";
    assert!(sample(&text, received, &[app, try_lock]).unwrap() > 0.0);

    let http = [
        app,
        ("method", "POST"),
        ("path", "/v1.0-alpha1/lock/store"),
        ("status", "200"),
    ];
    for counted in [
        "dapr_http_server_request_count",
        "dapr_http_server_response_count",
        "dapr_http_server_latency_count",
    ] {
        assert_eq!(
            sample(&text, counted, &http),
            Some(1.0),
            "{counted}\n{text}"
        );
    }
    let unlock_path = ("path", "/v1.0-alpha1/unlock/store");
    assert_eq!(
        sample(&text, "dapr_http_server_request_count", &[app, unlock_path]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "dapr_http_server_request_bytes_count", &[app]),
        Some(2.0)
    );
    assert!(sample(&text, "dapr_http_server_response_bytes_sum", &[app]).unwrap() > 0.0);
}

#[tokio::test]
async fn dlocks_own_metrics_count_what_happened_and_name_no_lock_or_owner() {
    let (sidecar, given) = busy_sidecar().await;
    let text = scrape(&sidecar).await;
    let store = [("app_id", "app"), ("store", "store")];
    assert_eq!(sample(&text, "dlock_lock_grants_total", &store), Some(2.0));
    assert_eq!(
        sample(&text, "dlock_lock_refusals_total", &store),
        Some(1.0)
    );
    let releases = "dlock_lock_releases_total";
    let released = [store[1], ("outcome", "released")];
    assert_eq!(sample(&text, releases, &released), Some(1.0));
    let held_by_other = [store[1], ("outcome", "held_by_other")];
    assert_eq!(sample(&text, releases, &held_by_other), Some(1.0));
    // The gRPC lock is still held.
    assert_eq!(sample(&text, "dlock_locks_held", &store), Some(1.0));
    assert_eq!(sample(&text, "dlock_store_healthy", &store), Some(1.0));
    let calls = "dlock_store_request_duration_seconds_count";
    let try_lock = [store[1], ("operation", "try_lock")];
    assert_eq!(sample(&text, calls, &try_lock), Some(3.0));
    let unlock = [store[1], ("operation", "unlock")];
    assert_eq!(sample(&text, calls, &unlock), Some(2.0));
    let memory = sample(&text, "process_resident_memory_bytes", &[store[0]]).unwrap();
    assert!(memory > 1e6, "{memory}");
    // A sidecar this fresh may not have spent a clock tick (10 ms) yet.
    assert!(sample(&text, "process_cpu_seconds_total", &[store[0]]).unwrap() >= 0.0);
    let started = sample(&text, "process_start_time_seconds", &[store[0]]).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - 60.0..=now + 1.0).contains(&started),
        "started at {started}, now {now}"
    );
    for secret in given {
        assert!(!text.contains(&secret), "{secret} in the metrics:\n{text}");
    }
}

/// promtool parses the output and lints it; the only findings are daprd's own counter names,
/// which daprd's own output has too and which its dashboards query as they are.
#[tokio::test]
async fn promtool_accepts_the_output_but_for_daprds_own_counter_names() {
    let (sidecar, _) = busy_sidecar().await;
    let text = scrape(&sidecar).await;
    let (code, said) = promtool_check(&text);
    assert!(code == 0 || code == 3, "promtool exit {code}: {said}");
    let findings: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
    for finding in &findings {
        assert!(
            DAPRD_COUNTERS
                .iter()
                .any(|name| finding.starts_with(&format!("{name} "))),
            "promtool: {finding}\n{text}"
        );
    }
    assert!(
        findings
            .iter()
            .any(|f| f.starts_with("dapr_grpc_io_server_completed_rpcs ")),
        "promtool linted the output: {said}"
    );
}

/// A real Prometheus server scrapes the sidecar every second and answers the grant counter
/// through its query API.
#[tokio::test]
async fn prometheus_scrapes_the_grant_counter() {
    let sidecar = Dlockd::start(Options::with_component(
        "scraped",
        crate::support::dlockd::component("store", "lock.in-memory", &[]),
    ));
    let target = sidecar
        .metrics
        .as_ref()
        .unwrap()
        .trim_start_matches("http://");
    let prometheus = Prometheus::scraping(target).await;
    let api = Api::new(&sidecar).await;
    for protocol in [Protocol::Http, Protocol::Grpc, Protocol::Http] {
        let resource = unique("scraped");
        assert_eq!(
            api.lock(protocol, "store", &resource, "o", 60).await,
            Ok(true)
        );
    }
    let grants = "dlock_lock_grants_total{app_id=\"scraped\",store=\"store\"}";
    let http =
        "sum(dapr_http_server_request_count{app_id=\"scraped\",path=\"/v1.0-alpha1/lock/store\"})";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = (prometheus.query(grants).await, prometheus.query(http).await);
        if seen == (Some(3.0), Some(2.0)) {
            break;
        }
        assert!(Instant::now() < deadline, "Prometheus has {seen:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(prometheus.query("up{job=\"dlockd\"}").await, Some(1.0));
}

/// `--enable-metrics=false`, or the Configuration's `spec.metric.enabled: false`: nothing
/// listens on the metrics port, and the ready line says metrics are off.
#[test]
fn either_switch_turns_metrics_off() {
    let config = temp_dir("metrics-config").join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nspec:\n  metric:\n    enabled: false\n",
    )
    .unwrap();
    let config = config.to_str().unwrap().to_string();
    for switch in [
        vec!["--enable-metrics=false".to_string()],
        vec!["--config".to_string(), config],
    ] {
        let port = free_port();
        let mut options = Options::in_memory();
        options.extra_args = switch.clone();
        options
            .extra_args
            .extend(["--metrics-port".to_string(), port.to_string()]);
        let sidecar = Dlockd::start(options);
        assert_eq!(sidecar.metrics, None, "{switch:?}");
        assert!(
            sidecar.logs().contains(" metrics off "),
            "{}",
            sidecar.logs()
        );
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "{switch:?}: something listens on {port}"
        );
    }
}

/// As daprd: a metrics port that can't be bound stops start-up, saying which flag to change.
#[test]
fn a_taken_metrics_port_stops_start_up_naming_the_flag() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut options = Options::in_memory();
    options.extra_args = vec!["--metrics-port".into(), port.to_string()];
    let failed = Dlockd::start_fails(options).output;
    assert!(
        failed.contains(&format!("metrics port: can't listen on 127.0.0.1:{port}")),
        "{failed}"
    );
    assert!(failed.contains("--metrics-port"), "{failed}");
}

/// A store whose server stops shows 0 in `dlock_store_healthy` and one more failure, and 1
/// again once it serves.
#[tokio::test]
async fn a_failing_store_flips_its_health_gauge() {
    let (mut server, file) = Backend::Redis.private_server().unwrap();
    let sidecar = Dlockd::start(Options::with_component("app", file));
    let api = Api::new(&sidecar).await;
    let store = [("store", "store")];
    let healthy = "dlock_store_healthy";
    assert_eq!(sample(&scrape(&sidecar).await, healthy, &store), Some(1.0));

    server.stop();
    let refused = api
        .lock(Protocol::Grpc, "store", &unique("down"), "o", 60)
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let text = scrape(&sidecar).await;
    assert_eq!(sample(&text, healthy, &store), Some(0.0), "{text}");
    assert_eq!(
        sample(&text, "dlock_store_failures_total", &store),
        Some(1.0)
    );

    server.resume();
    let back = unique("back");
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &back, "o", 60).await,
        Ok(true)
    );
    assert_eq!(sample(&scrape(&sidecar).await, healthy, &store), Some(1.0));
}

#[tokio::test]
async fn grants_refusals_and_waits_are_counted_by_mode() {
    let sidecar = Dlockd::start(Options::in_memory());
    let api = Api::new(&sidecar).await;
    let resource = unique("metrics-shared");
    let mut acquired = Vec::new();
    for owner in ["a", "b", "c"] {
        let body = serde_json::json!({"resourceId": resource, "lockOwner": owner,
            "expiryInSeconds": 30, "mode": "SHARED", "limit": 2, "waitTimeoutMs": 20});
        let answer = api.post("/dlock/v1/acquire/store", body.to_string()).await;
        acquired.push(answer.unwrap()["acquired"].clone());
    }
    assert_eq!(acquired, [true, true, false]);
    assert_eq!(
        api.lock(Protocol::Http, "store", &resource, "w", 30).await,
        Ok(false)
    );
    let text = scrape(&sidecar).await;
    let mode = |mode| [("store", "store"), ("mode", mode)];
    assert_eq!(
        sample(&text, "dlock_lock_grants_total", &mode("shared")),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "dlock_lock_grants_total", &mode("exclusive")),
        None
    );
    assert_eq!(
        sample(&text, "dlock_lock_refusals_total", &mode("shared")),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "dlock_lock_refusals_total", &mode("exclusive")),
        Some(1.0)
    );
    let waits = "dlock_lock_wait_seconds_count";
    let granted = [
        ("store", "store"),
        ("outcome", "granted"),
        ("mode", "shared"),
    ];
    assert_eq!(sample(&text, waits, &granted), Some(2.0));
    assert!(!text.contains(&resource), "a resource id in the metrics");
}
