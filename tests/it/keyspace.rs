//! What dlock leaves in a store is bounded: after 10,000 distinct resource ids have been locked
//! and released, a private server of each store holds a constant number of entries, while one
//! key's fencing tokens still rise through an expiry and a sidecar restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::api::{Api, Protocol, SUCCESS};
use crate::support::backend::zookeeper_metadata;
use crate::support::dlockd::{component, Dlockd, Options};
use crate::support::locks::try_acquire;
use crate::support::servers::{Etcd, Redis, Zookeeper};

/// Distinct resource ids locked and released by each test, as the issue asks.
const IDS: usize = 10_000;
/// Calls in flight at once, so 10,000 pairs take seconds, not minutes.
const AT_ONCE: usize = 50;

fn sidecar_options(file: String) -> Options {
    Options::with_component("app", file)
}

/// Locks and releases `IDS` distinct ids through the sidecar's Dapr gRPC API.
async fn churn(sidecar: &Dlockd) {
    let api = Arc::new(Api::new(sidecar).await);
    let workers: Vec<_> = (0..AT_ONCE)
        .map(|worker| {
            let api = api.clone();
            tokio::spawn(async move {
                for id in (worker..IDS).step_by(AT_ONCE) {
                    let resource = format!("job-{id}");
                    let granted = api.lock(Protocol::Grpc, "store", &resource, "w", 30).await;
                    assert!(granted.unwrap(), "{resource} was not granted");
                    let released = api.unlock(Protocol::Grpc, "store", &resource, "w").await;
                    assert_eq!(released.unwrap(), SUCCESS, "{resource} was not released");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
}

/// One key's fencing tokens rise through an expiry and through a restart of the sidecar.
async fn tokens_keep_rising(options: Options) {
    let sidecar = Dlockd::start(options.clone());
    let locks = sidecar.locks().await;
    let first = try_acquire(&locks, "fenced", "a", 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let after_expiry = try_acquire(&locks, "fenced", "b", 1).await.unwrap();
    assert!(
        after_expiry > first,
        "{after_expiry} after expiry, {first} before"
    );
    sidecar.kill();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let sidecar = Dlockd::start(options);
    let locks = sidecar.locks().await;
    let after_restart = try_acquire(&locks, "fenced", "c", 1).await.unwrap();
    assert!(
        after_restart > after_expiry,
        "{after_restart} after a sidecar restart, {after_expiry} before"
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
}

async fn redis_keys(redis: &Redis) -> Vec<String> {
    let client = redis::Client::open(format!("redis://{}", redis.address())).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut connection)
        .await
        .unwrap()
}

#[tokio::test]
async fn redis_keeps_one_counter_whatever_the_ids() {
    let redis = Redis::start(&[]);
    let options = sidecar_options(component(
        "store",
        "lock.redis",
        &[("redisHost", &redis.address())],
    ));
    churn(&Dlockd::start(options.clone())).await;
    assert_eq!(redis_keys(&redis).await, ["dlock||fencing"]);
    tokens_keep_rising(options).await;
    assert_eq!(redis_keys(&redis).await, ["dlock||fencing"]);
}

#[tokio::test]
async fn redis_tokens_rise_above_a_counter_from_before_the_upgrade() {
    let redis = Redis::start(&[]);
    let client = redis::Client::open(format!("redis://{}", redis.address())).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    // Where earlier versions kept the key's own counter, kept forever. Tokens are at least the
    // server's clock in microseconds; this counter is above it (that is the year 2255), so it
    // is what decides the tokens here.
    let legacy = "dlock||fence||lock||app||old";
    let counted: u64 = 9_000_000_000_000_000;
    let _: () = redis::cmd("SET")
        .arg(legacy)
        .arg(counted)
        .query_async(&mut connection)
        .await
        .unwrap();
    let sidecar = Dlockd::start(sidecar_options(component(
        "store",
        "lock.redis",
        &[("redisHost", &redis.address())],
    )));
    let locks = sidecar.locks().await;
    let new = try_acquire(&locks, "new", "a", 30).await.unwrap();
    assert!(new < counted, "{new}");
    assert_eq!(try_acquire(&locks, "old", "a", 30).await, Some(counted + 1));
    assert_eq!(
        try_acquire(&locks, "new2", "a", 30).await,
        Some(counted + 2)
    );
    let left = redis_keys(&redis).await;
    assert!(!left.iter().any(|k| k == legacy), "{left:?}");
}

#[tokio::test]
async fn etcd_keeps_nothing_once_locks_are_released() {
    let etcd = Etcd::start(&[]);
    let options = sidecar_options(component(
        "store",
        "lock.etcd",
        &[("endpoints", &etcd.address())],
    ));
    churn(&Dlockd::start(options.clone())).await;
    let keys = || etcd.etcdctl(&["get", "", "--from-key", "--keys-only"]);
    assert_eq!(keys().trim(), "", "left in etcd");
    tokens_keep_rising(options).await;
    // The last lock expires with its lease; the sidecars' leases end when they stop.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !keys().trim().is_empty() {
        assert!(Instant::now() < deadline, "left in etcd: {}", keys());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The number of znodes the server holds, from its `srvr` answer.
fn znodes(zookeeper: &Zookeeper) -> usize {
    use std::io::{Read, Write};
    let mut answer = String::new();
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", zookeeper.port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    conn.write_all(b"srvr").unwrap();
    let _ = conn.read_to_string(&mut answer);
    let count = answer.lines().find_map(|l| l.strip_prefix("Node count: "));
    count
        .unwrap_or_else(|| panic!("srvr answered without a node count: {answer}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn zookeeper_reaps_the_key_nodes_of_released_locks() {
    let zookeeper = Zookeeper::start();
    let metadata = zookeeper_metadata(&zookeeper.address());
    let pairs: Vec<(&str, &str)> = metadata.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let options = sidecar_options(component("store", "lock.zookeeper", &pairs));
    // Before: ZooKeeper's own nodes (`/`, `/zookeeper`, its quota and config nodes).
    let own = znodes(&zookeeper);
    churn(&Dlockd::start(options.clone())).await;
    eprintln!("znodes right after the churn: {}", znodes(&zookeeper));
    tokens_keep_rising(options).await;
    // Empty key containers go when ZooKeeper's container manager next runs (every second on
    // the test servers); what stays is the root (`/dlock`) and the app's folder under it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while znodes(&zookeeper) > own + 2 {
        assert!(
            Instant::now() < deadline,
            "{} znodes left in ZooKeeper, {own} before",
            znodes(&zookeeper)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "znodes: {own} of ZooKeeper's own, {} now",
        znodes(&zookeeper)
    );
}
