//! A store outage as an operator sees it (issue 10, item 5): one warning when the store starts
//! failing (not one per call), its health in dlock's `Stores` call on both doors and in
//! `dlock status`, an info line when it recovers; Dapr's health endpoints unchanged throughout;
//! and the background probe, which tells an idle sidecar of an outage.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dlock::cli::http_client::HttpClient;
use dlock::proto::dlock::{StoreStatus, StoresRequest};

use crate::support::api::{Api, Protocol, SUCCESS};
use crate::support::backend::{unique, Backend};
use crate::support::dlockd::{Dlockd, Options};

/// The one store's status, over gRPC and over HTTP, checked to agree.
async fn store_status(sidecar: &Dlockd) -> StoreStatus {
    let answer = sidecar.locks().await.stores(StoresRequest {}).await;
    let answer = answer.unwrap().into_inner();
    assert_eq!(answer.app_id, "app");
    let [status] = <[StoreStatus; 1]>::try_from(answer.stores).unwrap();
    let http = sidecar.http_client().get("/dlock/v1/stores").await.unwrap();
    assert_eq!(http.status, 200);
    let json = http.json();
    assert_eq!(json["appId"], "app");
    let store = &json["stores"][0];
    assert_eq!(store["name"], status.name.as_str(), "{json}");
    assert_eq!(store["type"], status.r#type.as_str(), "{json}");
    assert_eq!(store["servers"][0], status.servers[0].as_str(), "{json}");
    assert_eq!(store["healthy"], status.healthy, "{json}");
    if !status.healthy {
        // Written as strings, as protobuf's JSON mapping writes 64-bit numbers.
        let since = status.failing_since_unix_ms.to_string();
        assert_eq!(store["failingSinceUnixMs"], since.as_str(), "{json}");
        assert!(store["lastError"].as_str().is_some_and(|e| !e.is_empty()));
    }
    status
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn count(logs: &str, text: &str) -> usize {
    logs.lines().filter(|l| l.contains(text)).count()
}

/// Waits until the sidecar's log has a line containing `text`.
async fn wait_for_log(sidecar: &Dlockd, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sidecar.logs().contains(text) {
        assert!(
            Instant::now() < deadline,
            "no '{text}' in:\n{}",
            sidecar.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops `backend`'s private server under a sidecar and makes calls, then resumes it: one
/// warning, the outage in `Stores` and `dlock status`, then the recovery logged and shown.
async fn outage_logged_once_shown_and_its_end_logged(backend: Backend) {
    let (mut server, file) = backend.private_server().unwrap();
    let sidecar = Dlockd::start(Options::with_component("app", file));
    let api = Api::new(&sidecar).await;
    let status = store_status(&sidecar).await;
    let address = status.servers[0].clone();
    assert!(status.healthy, "{status:?}");
    let type_name = backend.type_name();
    assert_eq!(status.r#type, type_name);
    let described = format!(
        "store\t{type_name}\t{address}\t{}\t",
        status.capabilities.join(",")
    );
    let (code, out) = sidecar.dlock_status();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{described}ok")), "{out}");

    let stopped_at = unix_ms();
    server.stop();
    for protocol in [
        Protocol::Grpc,
        Protocol::Http,
        Protocol::Grpc,
        Protocol::Http,
    ] {
        let refused = api.lock(protocol, "store", &unique("down"), "a", 60).await;
        assert!(
            refused.is_err(),
            "granted with the server away: {refused:?}"
        );
    }
    let failing = format!("lock store store ({type_name} at {address}) is failing: ");
    wait_for_log(&sidecar, &failing).await;
    let logs = sidecar.logs();
    assert_eq!(
        count(&logs, &failing),
        1,
        "one warning, not one per call:\n{logs}"
    );
    assert_eq!(count(&logs, "WARN dlock::lock::health"), 1, "{logs}");

    let status = store_status(&sidecar).await;
    assert!(!status.healthy, "{status:?}");
    assert!(
        (stopped_at..=unix_ms()).contains(&status.failing_since_unix_ms),
        "{status:?}"
    );
    assert!(!status.last_error.is_empty(), "{status:?}");
    let (code, out) = sidecar.dlock_status();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{described}failing since 20")),
        "{out}"
    );
    // Dapr's health endpoints keep daprd's meaning: the sidecar is up.
    for path in ["/v1.0/healthz", "/v1.0/healthz/outbound"] {
        let answer = sidecar.http_client().get(path).await.unwrap();
        assert_eq!(answer.status, 204, "{path}");
    }

    server.resume();
    let key = unique("back");
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &key, "b", 60).await,
        Ok(true)
    );
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &key, "b").await,
        Ok(SUCCESS)
    );
    let recovered =
        format!("lock store store ({type_name} at {address}) recovered after failing for");
    wait_for_log(&sidecar, &recovered).await;
    let logs = sidecar.logs();
    assert!(logs.contains("(4 failed calls)"), "{logs}");
    assert!(store_status(&sidecar).await.healthy);
    let (code, out) = sidecar.dlock_status();
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn a_redis_outage_is_logged_once_shown_and_its_end_logged() {
    outage_logged_once_shown_and_its_end_logged(Backend::Redis).await;
}

#[tokio::test]
async fn an_etcd_outage_is_logged_once_shown_and_its_end_logged() {
    outage_logged_once_shown_and_its_end_logged(Backend::Etcd).await;
}

#[tokio::test]
async fn a_zookeeper_outage_is_logged_once_shown_and_its_end_logged() {
    outage_logged_once_shown_and_its_end_logged(Backend::Zookeeper).await;
}

/// An idle sidecar (no lock calls at all) sees its store go away and come back through the
/// background probe: `dlock status` and the `dlock_store_healthy` gauge change within a few
/// probe intervals.
async fn an_idle_sidecar_notices_an_outage(backend: Backend) {
    let (mut server, file) = backend.private_server().unwrap();
    let sidecar = Dlockd::start(Options {
        extra_args: vec!["--health-probe-interval".into(), "200ms".into()],
        ..Options::with_component("app", file)
    });
    let gauge = || async {
        let metrics = sidecar.metrics.clone().unwrap();
        let page = HttpClient::new(&metrics, None)
            .get("/metrics")
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&page.body).to_string();
        text.lines()
            .find(|l| l.starts_with("dlock_store_healthy{"))
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(sidecar.dlock_status().0, 0);
    assert_eq!(gauge().await, "1");
    server.stop();
    let stopped = Instant::now();
    while sidecar.dlock_status().0 != 1 {
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "still ok with the server away:\n{}",
            sidecar.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gauge().await, "0");
    let failing = format!("lock store store ({}", backend.type_name());
    wait_for_log(&sidecar, &failing).await;
    server.resume();
    let resumed = Instant::now();
    while sidecar.dlock_status().0 != 0 {
        assert!(
            resumed.elapsed() < Duration::from_secs(20),
            "still failing with the server back:\n{}",
            sidecar.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(gauge().await, "1");
}

#[tokio::test]
async fn an_idle_sidecar_notices_a_redis_outage() {
    an_idle_sidecar_notices_an_outage(Backend::Redis).await;
}

#[tokio::test]
async fn an_idle_sidecar_notices_an_etcd_outage() {
    an_idle_sidecar_notices_an_outage(Backend::Etcd).await;
}

#[tokio::test]
async fn an_idle_sidecar_notices_a_zookeeper_outage() {
    an_idle_sidecar_notices_an_outage(Backend::Zookeeper).await;
}

/// A sidecar left with no lock store at all (its only component file removed) answers every
/// lock call with an error: `dlock status` says so and exits 1.
#[tokio::test]
async fn dlock_status_fails_when_no_store_is_served() {
    let sidecar = Dlockd::start(Options::in_memory());
    assert_eq!(sidecar.dlock_status().0, 0);
    std::fs::remove_file(sidecar.resources.clone().unwrap().join("s.yaml")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, out) = sidecar.dlock_status();
        if !out.contains("lock.in-memory") {
            assert_eq!(code, 1, "{out}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the store was never removed: {out}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
